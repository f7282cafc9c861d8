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


def test_python_only_install_names_no_debian_package() -> None:
    script = (ROOT / "scripts" / "install-deps.sh").read_text(encoding="utf-8")
    guard = script.index("if ! $python_only")
    assert script.index("apt-get install") > guard, "apt-get runs only without --python-only"
