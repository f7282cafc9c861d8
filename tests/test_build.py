"""The README's commands as make runs them: lint needs no routing daemon, test installs
everything first, and the dependency installer skips pip when nothing changed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(target: str) -> list[str]:
    """The commands ``make TARGET`` would run, in order, without running them."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_lint_installs_only_the_virtualenv() -> None:
    commands = dry_run("lint")
    installs = [c for c in commands if "install-deps.sh" in c]
    assert installs == ["./scripts/install-deps.sh --python-only"]
    assert any("mypy" in c for c in commands)
    assert any("lint-imports" in c for c in commands)


def test_test_installs_the_daemons_before_anything_runs() -> None:
    commands = dry_run("test")
    assert commands[0] == "./scripts/install-deps.sh"
    assert commands[-1].startswith(".venv/bin/pytest")


RECORD = """#!/bin/sh
echo "$(basename "$0") $*" >> "$LBROUTE_TEST_CALLS"
"""
FAKE_PYTHON = """#!/bin/sh
# A python3 whose ensurepip is there or not ($LBROUTE_TEST_ENSUREPIP), and whose
# venv cannot be made without it.
if [ "$1" = -c ] || [ "$1 $2" = "-m venv" ]; then
    [ "$LBROUTE_TEST_ENSUREPIP" = yes ] && [ "$1" = -c ] && exit 0
    echo "Error: ensurepip is not available" >&2
    exit 1
fi
exit 1
"""


def install_deps(tmp_path: Path, *args: str, ensurepip: bool) -> tuple[int, str, list[str]]:
    """Run scripts/install-deps.sh in a copy of the repository with a PATH of stubs:
    no routing daemon or probe installed, apt-get/tee/chmod/rm recorded (nothing on the
    host changes), a python3 with or without ensurepip. Its exit code, its stderr and
    the recorded commands."""
    repo, stubs = tmp_path / "repo", tmp_path / "bin"
    (repo / "scripts").mkdir(parents=True)
    stubs.mkdir()
    shutil.copy(ROOT / "scripts" / "install-deps.sh", repo / "scripts")
    shutil.copy(ROOT / "pyproject.toml", repo)
    for tool in ("apt-get", "tee", "chmod", "rm"):
        (stubs / tool).write_text(RECORD, encoding="utf-8")
    (stubs / "python3").write_text(FAKE_PYTHON, encoding="utf-8")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    for tool in ("bash", "sh", "id", "sha256sum", "cut", "cat", "dirname", "basename"):
        real = shutil.which(tool)
        assert real is not None, tool
        (stubs / tool).symlink_to(real)
    calls = tmp_path / "calls"
    calls.touch()
    env = {
        "PATH": str(stubs),
        "LBROUTE_TEST_CALLS": str(calls),
        "LBROUTE_TEST_ENSUREPIP": "yes" if ensurepip else "no",
    }
    out = subprocess.run(
        [str(stubs / "bash"), str(repo / "scripts" / "install-deps.sh"), *args],
        env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return out.returncode, out.stderr, calls.read_text(encoding="utf-8").splitlines()


def _installed(calls: list[str]) -> list[str]:
    """The packages of the apt-get install recorded ([] when none ran)."""
    for call in calls:
        if call.startswith("apt-get install"):
            return call.partition("--no-install-recommends")[2].split()
    return []


@pytest.mark.parametrize("args", [(), ("--python-only",)])
def test_without_ensurepip_python3_venv_is_installed_first(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    code, err, calls = install_deps(tmp_path, *args, ensurepip=False)
    installed = _installed(calls)
    assert "python3-venv" in installed, calls
    if args:
        assert installed == ["python3-venv"], "the venv alone: no routing daemon"
    else:
        assert {"bird2", "frr", "iproute2", "ndisc6"} <= set(installed)
    # The stub python still has no ensurepip: the script says what is missing.
    assert code == 1
    assert "needs the python3-venv package" in err


def test_python_only_installs_no_debian_package(tmp_path: Path) -> None:
    code, err, calls = install_deps(tmp_path, "--python-only", ensurepip=True)
    assert not [c for c in calls if c.startswith("apt-get")], calls
    assert code == 1 and "python3-venv" in err  # the stub cannot make a venv
