"""The import contract of src/cnnlab: imports only point down.

Layers, lowest first (README, "Layout"); a module may import its own layer or lower ones:

    errors, _io, _lazy, _typed, geometry  <  layers  <  notation  <  zoo  <  analysis, data
    <  train  <  viz  <  course  <  cli

and besides: ``analysis`` and ``data`` import neither each other nor the zoo (the analysis
reads any nn.Module), and the bottom layer imports no torch.  The top-level lazy
``cnnlab/__init__.py`` (and ``__main__``) are exempt.

Every module is parsed with :mod:`ast`, so imports written inside functions count as much as
those at the top; so does a string naming an existing cnnlab module (a lazy ``import_module``
table), and ``from cnnlab import NAME`` counts as an import of the module that defines NAME.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# layer -> rank; equal ranks may import each other unless FORBIDDEN says otherwise.
LAYERS: dict[str, int] = {
    "errors": 0,
    "_io": 0,
    "_lazy": 0,
    "_typed": 0,
    "geometry": 0,
    "layers": 1,
    "notation": 2,
    "zoo": 3,
    "analysis": 4,
    "data": 4,
    "train": 5,
    "viz": 6,
    "course": 7,
    "cli": 8,
}
EXEMPT = {"__init__", "__main__"}  # cnnlab/__init__.py (lazy re-exports) and python -m cnnlab
FORBIDDEN = {  # (importer layer, imported layer): why
    ("analysis", "data"): "analysis and data import neither each other",
    ("data", "analysis"): "analysis and data import neither each other",
    ("analysis", "zoo"): "analysis works on any nn.Module and imports nothing of the zoo",
    ("data", "zoo"): "data imports nothing of the zoo",
}
NO_THIRD_PARTY = {
    "errors": {"torch"},
    "_io": {"torch"},
    "_lazy": {"torch"},
    "_typed": {"torch"},
    "geometry": {"torch", "numpy"},
}

_MODULE_STRING = re.compile(r"cnnlab(\.[A-Za-z_]\w*)+")


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    importer: str
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.importer} imports {self.imported}: {self.rule}"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _exports(root: Path) -> dict[str, str]:
    """cnnlab/__init__.py's lazy table: public name -> the module that defines it."""
    init = root / "cnnlab" / "__init__.py"
    if not init.is_file():
        return {}
    for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"))):
        if isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.Dict):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets):
                return {
                    k.value: v.value
                    for k, v in zip(node.value.keys, node.value.values, strict=True)
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
                }
    return {}


def _is_module(root: Path, name: str) -> bool:
    """Whether ``name`` is a module or package of the tree (a string such as "cnnlab.json" is
    a file name, not an import)."""
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _target(root: Path, base: str, name: str, exports: dict[str, str]) -> str:
    """The module ``from base import name`` really imports."""
    if base != "cnnlab":
        return f"{base}.{name}" if base else name
    if name in exports:
        return exports[name]  # cnnlab's lazy re-export: the module that defines it
    package = root / "cnnlab"
    if (package / f"{name}.py").is_file() or (package / name / "__init__.py").is_file():
        return f"cnnlab.{name}"
    return "cnnlab"  # an attribute of the package itself (__version__)


def imports_of(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file at ``path``: statements
    anywhere (in functions too), relative ones resolved, and strings naming a cnnlab module."""
    module = _module_name(root, path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    exports = _exports(root)
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                found.append((node.lineno, _target(root, base, alias.name, exports)))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _MODULE_STRING.fullmatch(node.value)
            and _is_module(root, node.value)
        ):
            found.append((node.lineno, node.value))
    return found


def _layer(name: str) -> str | None:
    """The layer of a cnnlab module name (None for the top-level package itself)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "cnnlab" else None


def check(root: Path) -> list[Violation]:
    """Every breach of the contract in the ``cnnlab`` package under ``root``."""
    violations: list[Violation] = []
    for path in sorted((root / "cnnlab").rglob("*.py")):
        importer = _module_name(root, path)
        here = _layer(importer)
        if here is None or here in EXEMPT:
            continue
        rel = path.relative_to(root).as_posix()
        if here not in LAYERS:
            violations.append(
                Violation(rel, 1, importer, "-", f"'{here}' is in no layer of the contract")
            )
            continue
        for line, name in imports_of(root, path):
            top = name.split(".")[0]
            if top in NO_THIRD_PARTY.get(here, ()):
                rule = f"{here} is the bottom layer and imports no {top}"
                violations.append(Violation(rel, line, importer, name, rule))
            there = _layer(name)
            if top != "cnnlab" or there is None or there == here:
                continue
            if there in EXEMPT:
                continue
            if there not in LAYERS:
                rule = f"'{there}' is in no layer of the contract"
            elif LAYERS[there] > LAYERS[here]:
                rule = (
                    f"imports point down: {here} (layer {LAYERS[here]}) may not import "
                    f"{there} (layer {LAYERS[there]})"
                )
            elif (here, there) in FORBIDDEN:
                rule = FORBIDDEN[(here, there)]
            else:
                continue
            violations.append(Violation(rel, line, importer, name, rule))
    return violations


def test_cnnlab_keeps_the_import_contract():
    assert (SRC / "cnnlab" / "geometry.py").is_file(), "the test looks in the wrong place"
    violations = check(SRC)
    assert not violations, "import contract broken:\n" + "\n".join(map(str, violations))


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = tmp_path / "cnnlab" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_a_deliberate_violation_is_found_with_its_file_line_and_rule(tmp_path):
    root = _tree(
        tmp_path,
        {
            "__init__.py": '_EXPORTS = {"create_model": "cnnlab.zoo"}\n',
            "geometry.py": "import math\nfrom cnnlab import __version__\n",
            "zoo/__init__.py": "from cnnlab import geometry\n",
            "analysis/__init__.py": "",
            "analysis/core.py": "import os\n\n\ndef f():\n    from cnnlab.zoo import x\n",
            "analysis/lazy.py": 'TABLE = {"name": "cnnlab.viz.grid", "file": "cnnlab.json"}\n',
            "data/__init__.py": "from . import loader\n",
            "data/loader.py": "from cnnlab import create_model\nfrom ..analysis import core\n",
            "viz/__init__.py": "from cnnlab.data import loader\n",
            "viz/grid.py": "",
            "errors.py": "import torch\n",
            "stray.py": "",
        },
    )
    found = {(v.file, v.line, v.imported): v.rule for v in check(root)}
    assert found == {
        ("cnnlab/analysis/core.py", 5, "cnnlab.zoo.x"): FORBIDDEN[("analysis", "zoo")],
        ("cnnlab/analysis/lazy.py", 1, "cnnlab.viz.grid"): (
            "imports point down: analysis (layer 4) may not import viz (layer 6)"
        ),
        ("cnnlab/data/loader.py", 1, "cnnlab.zoo"): FORBIDDEN[("data", "zoo")],
        ("cnnlab/data/loader.py", 2, "cnnlab.analysis.core"): FORBIDDEN[("data", "analysis")],
        ("cnnlab/errors.py", 1, "torch"): "errors is the bottom layer and imports no torch",
        ("cnnlab/stray.py", 1, "-"): "'stray' is in no layer of the contract",
    }
    message = str(next(v for v in check(root) if v.file == "cnnlab/analysis/core.py"))
    assert message == (
        "cnnlab/analysis/core.py:5: cnnlab.analysis.core imports cnnlab.zoo.x: "
        "analysis works on any nn.Module and imports nothing of the zoo"
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from . import rules\n", "cnnlab.analysis.rules"),
        ("from .rules import base\n", "cnnlab.analysis.rules.base"),
        ("from .. import errors\n", "cnnlab.errors"),
        ("import cnnlab.geometry as g\n", "cnnlab.geometry"),
    ],
)
def test_relative_and_aliased_imports_resolve(tmp_path, source, expected):
    root = _tree(
        tmp_path, {"errors.py": "", "analysis/__init__.py": "", "analysis/core.py": source}
    )
    assert imports_of(root, root / "cnnlab" / "analysis" / "core.py") == [(1, expected)]
