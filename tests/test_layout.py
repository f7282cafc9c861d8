"""README's "How the code is laid out" matches the tree and the import contracts: every
installed package is named there, every path it names exists, and its floors are the
order of the layers contract in pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def layout_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("### How the code is laid out")
    end = readme.find("\n#", start + 1)
    return readme[start : end if end != -1 else None]


def named_paths() -> set[str]:
    return set(re.findall(r"`([\w./{},-]+/?)`", layout_section()))


def table_rows() -> list[list[str]]:
    rows = [line for line in layout_section().splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows[1:]]


def test_every_package_is_named() -> None:
    named = named_paths()
    for package in PYPROJECT["tool"]["setuptools"]["packages"]:
        if package.startswith("renderer.templates") or package == "lbroute":
            continue  # the templates are named as renderer/templates; lbroute's modules below
        path = package.replace(".", "/") + "/"
        owner = path.split("/")[0] + "/"
        assert path in named or owner in named, f"{path} is not in the layout section"
    for module in sorted((ROOT / "lbroute").glob("*.py")):
        if module.name not in ("__init__.py", "__main__.py"):
            assert f"lbroute/{module.name}" in named, f"lbroute/{module.name} is not named"


def test_every_named_path_exists() -> None:
    for name in named_paths():
        if "{" in name:
            head, alternatives = name.split("{")
            paths = [head + alt for alt in alternatives.rstrip("/}").split(",")]
        else:
            paths = [name]
        for path in paths:
            if "/" in path or path.endswith(".py"):
                assert (ROOT / path).exists(), f"the layout section names {path}, not in the tree"


def test_floors_are_the_layers_contract_in_order() -> None:
    (contract,) = [
        c
        for c in PYPROJECT["tool"]["importlinter"]["contracts"]
        if c["type"] == "layers" and "containers" not in c
    ]
    floors: list[set[str]] = []
    for floor, packages, _what in table_rows():
        if floor:
            floors.append(set())
        for path in re.findall(r"`([\w./]+)`", packages):
            floors[-1].add(path.rstrip("/").removesuffix(".py").replace("/", "."))
    top = {"lbroute.cli", "lbroute.demo", "lbroute.lab"}  # one floor, three layers
    layers: list[set[str]] = []
    for layer in contract["layers"]:
        modules = {m.strip() for m in layer.split("|")}
        if layers and modules <= top and layers[-1] <= top:
            layers[-1] |= modules
        else:
            layers.append(modules)
    assert [sorted(f) for f in floors] == [sorted(layer) for layer in layers]
