"""Every command module of cnnlab.cli is listed and really loaded; a missing one is an error."""

from __future__ import annotations

import argparse
import ast
import importlib
from pathlib import Path

import pytest

import cnnlab.cli as cli

CLI_DIR = Path(cli.__file__).parent


def _defines_register(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(n, ast.FunctionDef) and n.name == "register" for n in tree.body)


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(actions[0].choices) if actions else set()


def test_every_command_module_is_listed():
    found = {p.stem for p in CLI_DIR.glob("*.py") if _defines_register(p)}
    assert found, "no command module found: the test looks in the wrong place"
    assert found == set(cli._COMMAND_MODULES), (
        f"cli modules defining register(): {sorted(found)}; listed in _COMMAND_MODULES: "
        f"{sorted(cli._COMMAND_MODULES)}"
    )


@pytest.mark.parametrize("name", cli._COMMAND_MODULES)
def test_each_listed_module_registers_its_commands_in_the_parser(name):
    own = argparse.ArgumentParser(prog="x").add_subparsers()
    importlib.import_module(f"cnnlab.cli.{name}").register(own)
    assert own.choices, f"cnnlab.cli.{name}.register added no subcommand"
    assert set(own.choices) <= _subcommands(cli.build_parser())


def test_a_listed_module_that_cannot_be_found_is_an_error(monkeypatch):
    monkeypatch.setattr(cli, "_COMMAND_MODULES", (*cli._COMMAND_MODULES, "no_such_command"))
    with pytest.raises(ModuleNotFoundError, match="cnnlab.cli.no_such_command"):
        cli.build_parser()
