"""How the agent tells that BIRD restarted: ``BirdDriver.generation()``.

BIRD prints its boot time as the wall clock minus the monotonic time since boot, so the
same daemon's "Last reboot on" moves by a millisecond now and then; taken as a restart,
that made the agent reload BIRD for nothing. The daemon's pid (the control socket's
peer) names the instance; where that pid is not visible (another pid namespace), a boot
time within half a second of the previous one is the same daemon.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeagent.routers import BirdDriver
from nodeagent.routers.process import Output

STATUS = """\
BIRD 2.0.12 ready.
BIRD 2.0.12
Router ID is 10.0.0.11
Current server time is 2026-11-28 01:04:00.000
Last reboot on {boot}
Last reconfiguration on 2026-11-28 01:03:44.076
Daemon is up and running
"""


class ScriptedBird(BirdDriver):
    """A BirdDriver whose BIRD answers ``show status`` from a script."""

    def __init__(self, boots: list[str | None], pid: int | None) -> None:
        super().__init__(Path("/nonexistent/bird.conf"), Path("/nonexistent/bird.ctl"))
        self.boots = boots
        self.pid = pid

    def _birdc(self, *command: str, verbose: bool = False) -> Output:
        assert command == ("show", "status")
        boot = self.boots.pop(0)
        if boot is None:
            return Output(1, "", "Unable to connect to server control socket")
        return Output(0, STATUS.format(boot=boot), "")

    def _daemon_pid(self) -> int | None:
        return self.pid


def generations(driver: ScriptedBird) -> list[str | None]:
    return [driver.generation() for _ in list(driver.boots)]


@pytest.mark.parametrize("pid", [None, 4242], ids=["boot-time", "pid"])
def test_a_wandering_boot_time_is_the_same_daemon(pid: int | None) -> None:
    boots = ["2026-11-28 01:03:44.076", "2026-11-28 01:03:44.077", "2026-11-28 01:03:44.076"]
    found = generations(ScriptedBird([*boots, *boots], pid))
    assert len(set(found)) == 1 and found[0] is not None


def test_without_a_visible_pid_a_new_boot_time_is_a_restart() -> None:
    boots = [
        "2026-11-28 01:03:44.076",
        "2026-11-28 01:03:44.077",
        None,  # BIRD down
        "2026-11-28 01:09:12.500",
        "2026-11-28 01:09:12.501",
    ]
    first, jitter, down, restarted, again = generations(ScriptedBird(boots, None))
    assert first == jitter == "2026-11-28 01:03:44.076"
    assert down is None
    assert restarted == again == "2026-11-28 01:09:12.500"


def test_the_pid_names_the_daemon() -> None:
    driver = ScriptedBird(["2026-11-28 01:03:44.076"] * 2, 4242)
    assert driver.generation() == "pid 4242"
    driver.pid = 4343
    assert driver.generation() == "pid 4343"


def test_an_unknown_time_format_is_compared_as_text() -> None:
    boots = ["28.11.2026 01:03:44", "28.11.2026 01:03:44", "28.11.2026 01:03:45"]
    assert generations(ScriptedBird(list(boots), None)) == boots
