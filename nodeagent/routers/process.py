"""Running one router tool to its end: the one module of the agent that starts a process.

The parsers (``bird -p``, ``vtysh --dryrun``), ``birdc``, ``vtysh``, ``frr-reload.py``
and an operator's reload command all run through :func:`run` or :func:`call` and come
back as an :class:`Output`: exit status and what the tool printed, as text.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lbroute.model.errors import RouterToolMissing


@dataclass(frozen=True)
class Output:
    returncode: int | None
    """None when the command timed out."""
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(args: Sequence[str], timeout: float) -> Output:
    """Run ``args``; a timeout raises :class:`subprocess.TimeoutExpired`, a missing
    binary :class:`FileNotFoundError`."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    return Output(proc.returncode, proc.stdout, proc.stderr)


def call(args: Sequence[str], timeout: float) -> Output:
    """Run one router tool; a timeout is a failed result, a missing binary an error."""
    try:
        return run(args, timeout)
    except FileNotFoundError as exc:
        raise RouterToolMissing(f"{args[0]} not found") from exc
    except subprocess.TimeoutExpired:
        return Output(None, "", f"{Path(args[0]).name} timed out after {timeout:g} s")
