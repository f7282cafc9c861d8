"""Every example renders and validates cleanly for every router it names.

Each file directly in ``examples/`` is a setup of its own, with its Nodes. For each of
its Nodes and each router it names (its NodeAgents' ``router``; both when it names
none, since it is meant for either), ``lbroute render`` and ``lbroute validate`` (the
router's own parser) exit 0 and print no error and no warning. ``examples/lab`` is run
the same way on its two nodes, each with the router its NodeAgents give it. The files
in ``examples/invalid/`` are mistakes on purpose: each is refused with exit 1 and an
error that names an object and a field, without a traceback.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from lbroute.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ROUTERS = ("bird", "frr")
TOOLS = {"bird": "bird", "frr": "vtysh"}


def _docs(path: Path) -> list[dict[str, object]]:
    docs = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return [d for d in docs if isinstance(d, dict)]


def _names(path: Path, kind: str) -> list[str]:
    return [
        str(meta["name"])
        for d in _docs(path)
        if d.get("kind") == kind and isinstance(meta := d.get("metadata"), dict)
    ]


def _routers(path: Path) -> list[str]:
    named = {
        str(spec.get("router", "bird"))
        for d in _docs(path)
        if d.get("kind") == "NodeAgent" and isinstance(spec := d.get("spec"), dict)
    }
    return sorted(named) or list(ROUTERS)


CASES = [
    pytest.param(path, node, router, id=f"{path.name}-{node}-{router}")
    for path in sorted(EXAMPLES.glob("*.yaml"))
    for router in _routers(path)
    for node in _names(path, "Node")
]
LAB = EXAMPLES / "lab"
LAB_CASES = [pytest.param(node, id=f"lab-{node}") for node in _names(LAB / "cluster.yaml", "Node")]


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_clean(result: Result, what: str) -> None:
    assert result.exit_code == 0, f"{what}:\n{result.output}"
    noisy = [line for line in result.output.splitlines() if line.startswith(("error:", "warning:"))]
    assert not noisy, f"{what} is not clean:\n" + "\n".join(noisy)
    assert "Traceback" not in result.output


def test_every_example_is_covered() -> None:
    """Each example has Nodes to render for (the cases below are not empty)."""
    covered = {p.values[0] for p in CASES}
    assert covered == set(EXAMPLES.glob("*.yaml"))
    assert len(LAB_CASES) == 2


@pytest.mark.parametrize(("path", "node", "router"), CASES)
def test_example_renders_cleanly(path: Path, node: str, router: str) -> None:
    result = run("render", "-f", path, "--node", node, "--router", router)
    assert_clean(result, f"lbroute render -f examples/{path.name} --node {node} --router {router}")
    assert f"for node {node}" in result.output


@pytest.mark.parametrize(("path", "node", "router"), CASES)
def test_example_validates_cleanly(path: Path, node: str, router: str) -> None:
    if shutil.which(TOOLS[router]) is None:
        pytest.skip(f"{TOOLS[router]} is not installed")
    result = run("validate", "-f", path, "--node", node, "--router", router)
    assert_clean(
        result, f"lbroute validate -f examples/{path.name} --node {node} --router {router}"
    )
    assert f"OK: {router} accepts the managed configuration for node {node}" in result.output


@pytest.mark.parametrize("node", LAB_CASES)
def test_the_lab_example_validates_cleanly_on_each_node(node: str) -> None:
    if not all(shutil.which(t) for t in TOOLS.values()):
        pytest.skip("bird and vtysh are needed")
    result = run("validate", "-f", LAB, "--node", node)
    assert_clean(result, f"lbroute validate -f examples/lab --node {node}")
    assert "OK:" in result.output


def test_allocate_on_a_copy_of_the_lab_example_keeps_every_address(tmp_path: Path) -> None:
    """The lab's Services are what an allocator would have written: allocating again
    keeps each address (both families, each in its group) and warns of nothing."""
    copy = tmp_path / "lab"
    shutil.copytree(LAB, copy)
    before = (copy / "services.yaml").read_bytes()
    result = run("allocate", "-f", copy)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output and "release" not in result.output, result.output
    assert "assign" not in result.output and "wrote" not in result.output, result.output
    assert (copy / "services.yaml").read_bytes() == before, "nothing to write"


@pytest.mark.parametrize(
    "path", sorted((EXAMPLES / "invalid").glob("*.yaml")), ids=lambda p: p.name
)
def test_invalid_examples_are_refused_naming_object_and_field(path: Path) -> None:
    result = run("render", "-f", path, "--node", "node-a", "--router-id", "10.0.0.11")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert errors, result.output
    for line in errors:
        assert " lbroute/" in line and ": spec" in line, line
