"""Every BIRD golden runs in a real BIRD: the daemon starts with it (managed mode) or
loads it through ``include`` from a host configuration (include mode), and every
protocol lbroute rendered is up or trying to connect, none failed to start.

``bird -p`` only parses; this catches what BIRD refuses when it actually starts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lbroute.model import api
from tests.netns.lab import BirdInstance, Netns
from tests.test_golden import ALL

BIRD_CASES = [c for c in ALL if c.router is api.Router.BIRD]


def _protocols(bird: BirdInstance) -> dict[str, str]:
    """Protocol name -> state, from ``birdc show protocols``."""
    out = bird.birdc("show", "protocols").stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"(lbr_\S+|device1)\s+(\S+)\s+\S+\s+(\S+)", line)
        if m:
            found[m.group(1)] = m.group(3)
    return found


@pytest.mark.parametrize("case", BIRD_CASES, ids=lambda c: c.id)
def test_bird_runs_the_golden(
    case: object, golden_links: Netns, bird: BirdInstance, tmp_path: Path
) -> None:
    golden = case.golden.read_text(encoding="utf-8")  # type: ignore[attr-defined]
    config = tmp_path / "bird.conf"
    if "(include mode)" in golden:
        fragment = tmp_path / "lbroute.conf"
        fragment.write_text(golden, encoding="utf-8")
        config.write_text(
            f'router id 10.0.0.11;\nprotocol device {{}}\ninclude "{fragment}";\n', encoding="utf-8"
        )
    else:
        config.write_text(golden, encoding="utf-8")
    bird.start(config)
    states = _protocols(bird)
    expected = set(re.findall(r"^protocol \S+(?: v[23]| ng)? (lbr_\w+|device1)", golden, re.M))
    assert expected, "no lbroute protocol found in the golden"
    assert expected <= set(states), (expected, states)
    assert not [p for p, s in states.items() if s in ("down", "failed")], states
