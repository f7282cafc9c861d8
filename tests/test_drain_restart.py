"""A drain survives an agent restart (issue 17): an agent restarted mid-drain continues
in the same phase with the same deadline, from the file next to its status file
(nodeagent.drain.began_file), instead of starting phase 1 again or forgetting it.

A restart is a new :class:`Drainer` (as a new agent process builds) on the same file,
with a monotonic clock that starts elsewhere (monotonic time means nothing across
processes) and a wall clock that went on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from lbroute.kube.directory import Snapshot
from nodeagent.agent import Agent
from nodeagent.drain import (
    Drainer,
    DrainState,
    Trigger,
    began_file,
    cancel_drain,
    read_began,
    request_drain,
    write_began,
)
from nodeagent.settings import AgentSettings
from renderer.view import Drain

WALL = 1_765_000_000.0
"""2025-12-06T05:46:40Z"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def started(path: Path, seconds: int = 30) -> tuple[Drainer, Clock, Clock]:
    """A Drainer that began a drain (``lbroute drain``) at WALL."""
    mono, wall = Clock(1000.0), Clock(WALL)
    d = Drainer(clock=mono, wall=wall, state_file=path)
    assert d.update((Trigger.COMMAND,), seconds)
    assert d.state is DrainState.DRAINING
    return d, mono, wall


def restarted(path: Path, after: float) -> tuple[Drainer, Clock]:
    """The agent's successor, ``after`` seconds later, on a monotonic clock of its own."""
    mono = Clock(5.0)
    return Drainer(clock=mono, wall=Clock(WALL + after), state_file=path), mono


def test_a_restart_mid_drain_keeps_the_phase_and_the_deadline(tmp_path: Path) -> None:
    path = tmp_path / "status.json.drain-began"
    first, _, _ = started(path)
    assert read_began(path) == WALL
    before = first.status()

    again, mono = restarted(path, after=20)
    assert again.update((Trigger.COMMAND,), 30) is True  # Serving (new process) -> Draining
    assert (again.state, again.phase) == (DrainState.DRAINING, Drain.DEPREFER)
    assert again.due() == 5.0 + 10, "10 s of the 30 are left, not 30 again"
    assert again.status() == before, "same since and withdraw-at timestamps"
    mono.now = 14.9
    assert not again.tick()
    mono.now = 15.0
    assert again.tick() and again.state is DrainState.DRAINED


def test_a_restart_after_the_deadline_is_drained_at_once(tmp_path: Path) -> None:
    path = tmp_path / "drain-began"
    started(path)
    again, _ = restarted(path, after=31)
    again.update((Trigger.COMMAND,), 30)
    assert (again.state, again.phase) == (DrainState.DRAINED, Drain.WITHDRAW)
    assert again.status().since == "2025-12-06T05:46:40Z"


def test_undrain_forgets_the_start_so_the_next_drain_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "drain-began"
    d, mono, wall = started(path)
    mono.now += 40
    wall.now += 40
    assert d.update((), 30) and d.phase is Drain.NONE
    assert not path.exists()
    wall.now += 100
    assert d.update((Trigger.LABEL,), 30)
    assert read_began(path) == WALL + 140
    again, _ = restarted(path, after=150)
    again.update((Trigger.LABEL,), 30)
    assert again.state is DrainState.DRAINING and again.due() == 5.0 + 20


def test_triggers_gone_while_the_agent_was_down_serve_and_forget(tmp_path: Path) -> None:
    path = tmp_path / "drain-began"
    started(path)
    again, _ = restarted(path, after=5)
    assert not again.update((), 30)
    assert again.state is DrainState.SERVING and not path.exists()
    # A drain after that is a new one.
    again.update((Trigger.COMMAND,), 30)
    assert again.status().since == "2025-12-06T05:46:45Z"


def test_a_drain_the_successor_keeps_is_not_written_again(tmp_path: Path) -> None:
    path = tmp_path / "drain-began"
    started(path)
    again, _ = restarted(path, after=20)
    again.update((Trigger.COMMAND,), 30)
    third, _ = restarted(path, after=25)  # a second restart, still mid-drain
    third.update((Trigger.COMMAND,), 30)
    assert third.due() == 5.0 + 5 and read_began(path) == WALL


def test_an_unreadable_file_starts_a_drain_afresh(tmp_path: Path) -> None:
    path = tmp_path / "drain-began"
    for text in ("not json", "[]", '{"began": "yesterday"}', '{"began": NaN}', "{}"):
        path.write_text(text)
        assert read_began(path) is None, text
        d, mono = restarted(path, after=0)
        d.update((Trigger.COMMAND,), 30)
        assert d.due() == mono.now + 30, text
    assert read_began(tmp_path / "missing") is None


def test_a_wall_clock_that_stepped_back_does_not_extend_the_drain(tmp_path: Path) -> None:
    path = tmp_path / "drain-began"
    write_began(path, WALL + 3600)  # began "in the future" for the successor
    d, mono = restarted(path, after=0)
    d.update((Trigger.COMMAND,), 30)
    assert d.due() == mono.now + 30


class Quiet:
    def snapshots(self, stop: threading.Event) -> Iterator[Snapshot]:
        return iter(())


def test_the_agent_keeps_the_start_next_to_its_status_file(tmp_path: Path) -> None:
    """Two agents one after the other on the same status file: the second one's drain
    began when the first one's did."""

    settings = AgentSettings(node="node-a", status_file=tmp_path / "status.json")
    first = Agent(settings, Quiet())
    first.drainer.update((Trigger.COMMAND,), 600)
    assert began_file(settings.status_file).exists()
    since = first.drainer.status().since
    second = Agent(settings, Quiet())
    second.drainer.update((Trigger.COMMAND,), 600)
    assert second.drainer.status().since == since
    assert second.drainer.state is DrainState.DRAINING


def test_a_start_that_cannot_be_kept_does_not_stop_the_drain(tmp_path: Path) -> None:
    d = Drainer(clock=Clock(0.0), wall=Clock(WALL), state_file=tmp_path / "none" / "began")
    assert d.update((Trigger.COMMAND,), 30) and d.state is DrainState.DRAINING
    assert d.update((), 30) and d.phase is Drain.NONE


def test_undrain_while_the_agent_is_stopped_makes_the_next_drain_a_new_one(
    tmp_path: Path,
) -> None:
    """Agent stopped mid-drain; ``lbroute undrain`` then ``lbroute drain`` before it
    starts again: the new drain starts at phase 1 with a full ``drainSeconds``."""
    status_file = tmp_path / "status.json"
    started(began_file(status_file))
    request_drain(status_file)
    assert cancel_drain(status_file)
    request_drain(status_file)
    again, mono = restarted(began_file(status_file), after=300)
    again.update((Trigger.COMMAND,), 30)
    assert again.state is DrainState.DRAINING and again.due() == mono.now + 30
