"""FRR output is in FRR's canonical form: applied to real FRR daemons, every rendered
configuration reads back identically, so ``frr-reload.py --test`` finds nothing to change.

This is what keeps reloads minimal: a config that FRR would print differently would be
"changed" on every apply, and frr-reload.py would touch (and might reset) sessions that
did not change.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lbroute.model import api
from lbroute.model.manifests import read_manifests
from nodeagent.routers.frr_delta import frr_runs, frr_statements
from renderer.render import render_view
from renderer.view import build_view
from tests.netns.lab import FrrInstance, Netns
from tests.test_golden import ALL, CASES

FRR_CASES = [c for c in ALL if c.router is api.Router.FRR]


def _render(case_name: str, node: str) -> str:
    manifests = read_manifests([CASES / f"{case_name}.yaml"])
    assert manifests.errors == ()
    model = api.load(manifests.objects)
    view = build_view(model, api.Router.FRR, node, hostname=socket.gethostname())
    return render_view(view)


def _changes(output: str) -> list[str]:
    """Lines frr-reload.py --test would add or delete."""
    lines = []
    for line in output.splitlines():
        if " INFO: " in line or not line.strip() or set(line) <= {"="}:
            continue
        if line in ("Lines To Delete", "Lines To Add"):
            continue
        lines.append(line)
    return lines


@pytest.mark.parametrize("case", FRR_CASES, ids=lambda c: c.id)
def test_running_config_equals_rendered(
    case: object, golden_links: Netns, frr: FrrInstance, tmp_path: Path
) -> None:
    frr.start()
    config = tmp_path / "frr.conf"
    text = _render(case.name, case.node)  # type: ignore[attr-defined]
    config.write_text(text, encoding="utf-8")
    frr.reload_tool("--reload", config)
    check = frr.reload_tool("--test", config)
    assert check.returncode == 0, check.stderr
    assert _changes(check.stdout) == []
    # FRR prints the very statements rendered, line for line, so the driver's check
    # after an apply needs no frr-reload.py (nodeagent.routers.frr_delta.frr_runs).
    shown = frr.vtysh("show running-config").stdout
    running, rendered = frr_statements(shown) or {}, frr_statements(text) or {}
    differ = {h: (running.get(h), rendered.get(h)) for h in running.keys() | rendered.keys()
              if running.get(h) != rendered.get(h)}  # fmt: skip
    assert frr_runs(shown, text), differ
