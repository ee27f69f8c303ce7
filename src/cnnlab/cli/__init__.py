"""The ``cnnlab`` command: a thin map of subcommands over the library API.

Each module of this package registers a group of subcommands (``register(subparsers)``) and
does its rendering; the library below never prints.  A user mistake (any
:class:`~cnnlab.errors.CnnlabError`) becomes one ``error: ...`` line on stderr and exit status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cnnlab import __version__
from cnnlab.errors import CnnlabError

# Modules of this package that add subcommands, in the order `cnnlab --help` lists them.  Each
# must exist and define register(subparsers): a missing one is an ImportError, never skipped.
_COMMAND_MODULES = ("models", "analysis", "data", "train", "runs", "viz")

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlab",
        description="Understand, build, train and look inside convolutional neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"cnnlab.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except CnnlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `cnnlab models | head`
        return 0
