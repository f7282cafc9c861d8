"""Bursts of configuration changes are coalesced: the agent applies a new router
configuration once no newer one arrived for ``settle`` seconds, and at the latest
``max_delay`` seconds after the first of the burst; only the newest text is applied.

The router here is a recorder of what it was asked to apply: these tests are about the
agent's scheduling, which no daemon can observe directly (the namespace tests cover
the real daemons).
"""

from __future__ import annotations

import time
from pathlib import Path

from nodeagent.agent import Agent, AgentSettings
from nodeagent.routers import ApplyResult, Session
from nodeagent.source import Snapshot


class RecordingRouter:
    def __init__(self) -> None:
        self.applied: list[str] = []

    def apply(self, text: str) -> ApplyResult:
        self.applied.append(text)
        return ApplyResult(ok=True)

    def is_current(self, text: str) -> bool:
        return False

    def generation(self) -> str | None:
        return "1"

    def sessions(self) -> list[Session]:
        return []


class NoSource:
    def snapshots(self, stop: object) -> list[Snapshot]:
        return []


def agent(tmp_path: Path, settle: float, max_delay: float) -> tuple[Agent, RecordingRouter]:
    settings = AgentSettings(
        node="node-a", settle=settle, max_delay=max_delay, status_file=tmp_path / "s.json"
    )
    a = Agent(settings, NoSource())
    router = RecordingRouter()
    a._driver = router
    return a, router


def test_a_burst_of_1000_changes_is_one_apply_of_the_newest(tmp_path: Path) -> None:
    a, router = agent(tmp_path, settle=0.2, max_delay=2.0)
    for i in range(1000):
        a._offer(f"config {i}\n")
    assert router.applied == []
    assert a._apply_due() > time.monotonic()  # still settling
    a.apply_pending()
    assert router.applied == ["config 999\n"]
    a._offer("config 999\n")  # the same text again: nothing pending
    assert a._apply_due() == float("inf")


def test_a_steady_stream_is_applied_no_later_than_max_delay(tmp_path: Path) -> None:
    a, _router = agent(tmp_path, settle=10.0, max_delay=0.5)
    first = time.monotonic()
    a._offer("config 0\n")
    a._offer("config 1\n")
    assert a._apply_due() <= first + 0.5 + 0.05


def test_a_quiet_change_is_applied_after_settle(tmp_path: Path) -> None:
    a, _router = agent(tmp_path, settle=0.2, max_delay=2.0)
    before = time.monotonic()
    a._offer("config\n")
    assert before + 0.2 <= a._apply_due() <= time.monotonic() + 0.2
