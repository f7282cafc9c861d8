"""The BIRD configuration grows with ServiceGroups plus Peers, not with their product
(issue 20): BIRD 2.0's parser is quadratic in ``{ }`` blocks, and with one export entry
per (neighbor set, group) a cluster whose Peers each select their own groups reached
80,000 lines and 16 s of ``bird -p`` at 1,000 groups / 500 peers (bench/README.md).

Each route gets its group's number once, where it enters from the kernel table
(``lbr_group``); a neighbor's export filter is one line whatever the number of groups it
exports; each group's actions are called by number from one function per session kind.
Checked here on the rendered text, and with BIRD's own parser when it is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lbroute.model import api
from lbroute.model.api import Router
from renderer.render import render_view
from renderer.view import build_view
from tests.test_view import bgp, group, node

NODE = node("node-a", "10.0.0.11")


def config(groups: int, peers: int) -> str:
    """``groups`` groups labelled by number, all exported to one peer; each of ``peers``
    more selects all but its own two of them (no two alike, for up to twice as many
    peers as groups): with an entry per group in each filter, a peer would cost blocks
    in proportion to the groups."""
    objects: list[dict[str, Any]] = [NODE, bgp("all", "100.65.0.1", 65099)]
    for i in range(groups):
        objects.append(
            group(
                f"g{i}",
                f"10.{i // 256}.{i % 256}.0/24",
                labels={"n": str(i)},
                bgp={"communities": [f"65000:{i}"]},
            )
        )
    for j in range(peers):
        first = j % groups
        chosen = [str(first), str((first + j // groups + 1) % groups)]
        selector = {"matchExpressions": [{"key": "n", "operator": "NotIn", "values": chosen}]}
        objects.append(
            bgp(
                f"p{j}",
                f"100.64.{j // 250}.{j % 250 + 1}",
                65100 + j,
                serviceGroupSelector=selector,
            )
        )
    model = api.load(objects)
    assert not model.errors
    return render_view(build_view(model, Router.BIRD, "node-a"))


def blocks(text: str) -> int:
    """``{ }`` blocks (a prefix set's ``{24,32}`` is none)."""
    return len(re.findall(r"\{(?!\d+,\d+\})", text))


def test_the_configuration_grows_with_groups_plus_peers() -> None:
    base = blocks(config(30, 20))
    more_peers = blocks(config(30, 40)) - base
    more_groups = blocks(config(60, 20)) - base
    # 20 more peers, each with its own selection: a protocol and a filter each, a fixed
    # number of blocks per peer whatever the number of groups
    assert more_peers == blocks(config(60, 40)) - blocks(config(60, 20))
    # 30 more groups: a function and a prefix set each, whatever the number of peers
    assert more_groups == blocks(config(60, 40)) - blocks(config(30, 40))


def test_an_export_filter_is_one_line_and_routes_carry_their_group_number() -> None:
    text = config(30, 20)
    filters = re.findall(r"^filter lbr_bgp_out_\w+ \{\n(.*?)^\}", text, re.M | re.S)
    assert len(filters) == 21
    for body in filters:
        lines = body.strip().splitlines()
        assert len(lines) == 2 and lines[1].strip() == "reject;"
        assert re.fullmatch(
            r"if lbr_group ~ \[[0-9, .]+\] then \{ lbr_bgp_actions_ebgp\(\); accept; \}",
            lines[0].strip(),
        )
    tags = re.findall(r"then lbr_group = (\d+); # ServiceGroup lbroute/(g\d+)", text)
    assert len(tags) == 30 and len({n for n, _ in tags}) == 30  # a number each
    arms = dict(re.findall(r"^    (\d+): lbr_sg_(g\d+)_bgp\(\); # ServiceGroup", text, re.M))
    assert arms == {n: g for n, g in tags}  # each number calls its own group's actions


@pytest.mark.skipif(shutil.which("bird") is None, reason="needs bird (the Debian package bird2)")
def test_bird_parses_it(tmp_path: Path) -> None:
    path = tmp_path / "bird.conf"
    path.write_text(config(30, 20), encoding="utf-8")
    done = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
