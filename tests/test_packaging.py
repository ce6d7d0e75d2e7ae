"""The wheel holds the whole tree: pyproject lists every package (by hand: `index` and `cli` are generic names,
so nothing is found automatically) and its package data covers every file that is not Python source.
.ci/run builds and installs the wheel itself."""
from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = ("cli", "index", "retrieval")


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_dirs() -> set[str]:
    """Every folder of the three top-level packages that holds Python source, as a dotted name."""
    found = set()
    for top in TOP:
        for path in (ROOT / top).rglob("*.py"):
            if "__pycache__" not in path.parts:
                found.add(".".join(path.parent.relative_to(ROOT).parts))
    return found


def test_pyproject_lists_exactly_the_packages_in_the_tree():
    listed = set(_setuptools()["packages"])
    tree = _package_dirs()
    assert tree - listed == set(), "packages missing from pyproject.toml [tool.setuptools] packages"
    assert listed - tree == set(), "pyproject.toml lists packages that are not in the tree"
    for name in tree:
        assert (ROOT / name.replace(".", "/") / "__init__.py").is_file(), f"{name} has no __init__.py"


def test_package_data_covers_every_file_that_is_not_python():
    data = _setuptools().get("package-data", {})
    for name in _package_dirs():
        folder = ROOT / name.replace(".", "/")
        for path in folder.rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            if any(".".join(parent.relative_to(ROOT).parts) in _package_dirs()
                   for parent in path.parents if folder in parent.parents):
                continue  # a sub-package's file: checked with that package
            rel = path.relative_to(folder).as_posix()
            assert any(fnmatch.fnmatch(rel, pattern) for pattern in data.get(name, [])), \
                f"{path.relative_to(ROOT)} is not package data of {name} in pyproject.toml"
