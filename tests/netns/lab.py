"""The namespace primitives the root-only tests use; they live in :mod:`lbroute.lab`,
which the demo uses too."""

import os
import re
import shutil
from collections.abc import Mapping, Sequence

import pytest

from lbroute.lab import BirdInstance, FrrInstance, Lan, Netns, alive, kill, run, veth, vtysh_conf

__all__ = [
    "BirdInstance",
    "FrrInstance",
    "Lan",
    "Netns",
    "alive",
    "kill",
    "needs_root",
    "run",
    "veth",
    "vtysh_conf",
]


def needs_root(tools: tuple[str, ...] = ("ip", "bird", "birdc", "vtysh")) -> None:
    """Skip the test (or a module's lab set up before it) without root or ``tools``."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (run make install)")


_CLOCK = re.compile(r"(\d\d):(\d\d):(\d\d(?:\.\d+)?)$")


def same_since(
    now: Mapping[str, str] | Sequence[str] | None,
    before: Mapping[str, str] | Sequence[str] | None,
    slack: float = 0.05,
) -> bool:
    """Two readings of sessions' "since" (BIRD's ``show protocols``) name the same
    session starts. BIRD prints the start from its monotonic clock through the wall
    clock, so two readings of one start can differ by a millisecond; a reset moves it
    by far more than ``slack`` seconds. Values that are not a time must be equal."""
    if now is None or before is None:
        return now is before
    if isinstance(now, Mapping) != isinstance(before, Mapping) or len(now) != len(before):
        return False
    if isinstance(now, Mapping) and isinstance(before, Mapping):
        if now.keys() != before.keys():
            return False
        pairs = [(now[k], before[k]) for k in now]
    else:
        pairs = list(zip(now, before, strict=True))
    for a, b in pairs:
        ma, mb = _CLOCK.search(a), _CLOCK.search(b)
        if ma is None or mb is None or a[: ma.start()] != b[: mb.start()]:
            if a != b:
                return False
            continue
        seconds = [
            int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) for m in (ma, mb)
        ]
        if abs(seconds[0] - seconds[1]) > slack:
            return False
    return True
