"""The agent asks its router how it is (generation, sessions) in a thread of its own:
the loop keeps handling what comes meanwhile, and what the probe found reaches the
status when it is done. With FRR a session poll is seven vtysh calls; asked in the loop,
it held back the passes of Services that came during it (bench/RESULTS.md, the FRR
latency rows' p99)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from nodeagent.agent import Agent
from nodeagent.local.runner import LocalReport
from nodeagent.routers import Session
from nodeagent.settings import AgentSettings, RouterChecks
from nodeagent.status import Status
from tests.test_drain_restart import Quiet


class SlowRouter:
    """A router whose session poll hangs until released."""

    def __init__(self) -> None:
        self.polling = threading.Event()
        self.release = threading.Event()
        self.callers: set[str] = set()

    def generation(self) -> str:
        self.callers.add(threading.current_thread().name)
        return "pid 1"

    def sessions(self) -> list[Session]:
        self.polling.set()
        self.release.wait(10)
        return [Session(name="10.0.0.1", protocol="bgp", state="Established", since="1s")]


def _status(path: Path) -> Status | None:
    return Status.from_json(path.read_text(encoding="utf-8")) if path.exists() else None


def _until(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_the_loop_goes_on_while_the_router_is_asked(tmp_path: Path) -> None:
    settings = AgentSettings(
        node="node-a", status_file=tmp_path / "status.json", checks=RouterChecks(interval=0.05)
    )
    agent = Agent(settings, Quiet())
    router = SlowRouter()
    agent._driver = router  # type: ignore[assignment]
    stop = threading.Event()
    loop = threading.Thread(target=agent.run, args=(stop,), name="the-loop", daemon=True)
    loop.start()
    try:
        assert router.polling.wait(10), "the probe polls the sessions"
        # While the poll hangs, the loop handles what comes: a report of the local loop.
        agent._events.put(LocalReport(problems=("warning: handled during the poll",)))
        written = _until(
            lambda: "warning: handled during the poll" in (_status(settings.status_file)
                                                           or Status(node="x")).problems
        )  # fmt: skip
        assert written, "the loop waited for the router"
        assert (_status(settings.status_file) or Status(node="x")).sessions == []
        router.release.set()
        assert _until(lambda: bool((_status(settings.status_file) or Status(node="x")).sessions))
    finally:
        router.release.set()
        stop.set()
        loop.join(timeout=10)
    assert not loop.is_alive()
    assert "the-loop" not in router.callers and router.callers == {"lbroute-router-probe"}
    assert (_status(settings.status_file) or Status(node="x")).sessions[0].name == "10.0.0.1"
