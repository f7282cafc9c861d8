"""When the agent applies a router configuration.

Bursts of configuration changes are coalesced: the agent applies a new router
configuration once no newer one arrived for ``settle`` seconds, and at the latest
``max_delay`` seconds after the first of the burst; only the newest text is applied.

An apply that failed for another reason than the parser rejecting the text (the router
not answering yet, a reload that did not take) is retried with backoff, a bounded number
of times; a rejected text is not retried until the input changes.

The router here is a recorder of what it was asked to apply: these tests are about the
agent's scheduling, which no daemon can observe directly (the namespace tests cover
the real daemons).

Addresses that only IS-IS announces reach kube-lb0 at most every ``isis_pace`` seconds
(the first change at once), every other address at once.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

from lbroute.kube.directory import Snapshot
from lbroute.model import api
from lbroute.model.errors import ObjectRef
from nodeagent.agent import Agent, AgentSettings, Pacer, isis_only
from nodeagent.desired import Announcement, DesiredState
from nodeagent.routers import ApplyResult, Session


class RecordingRouter:
    def __init__(self, *outcomes: ApplyResult) -> None:
        self.applied: list[str] = []
        self.outcomes = list(outcomes)
        """What the next applies return, in order; then success."""

    def apply(self, text: str) -> ApplyResult:
        self.applied.append(text)
        return self.outcomes.pop(0) if self.outcomes else ApplyResult(ok=True)

    def is_current(self, text: str) -> bool:
        return False

    def generation(self) -> str | None:
        return "1"

    def sessions(self) -> list[Session]:
        return []


class NoSource:
    def snapshots(self, stop: object) -> list[Snapshot]:
        return []


def agent(
    tmp_path: Path, settle: float = 0.2, max_delay: float = 2.0, *outcomes: ApplyResult
) -> tuple[Agent, RecordingRouter]:
    settings = AgentSettings(
        node="node-a",
        settle=settle,
        max_delay=max_delay,
        status_file=tmp_path / "s.json",
        retry_backoff=(1.0, 2.0, 4.0),
    )
    a = Agent(settings, NoSource())
    router = RecordingRouter(*outcomes)
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


DOWN = ApplyResult(ok=False, error="birdc: Unable to connect to server control socket")
REJECTED = ApplyResult(ok=False, error="bird -p: syntax error, line 3", rejected=True)


def retry_in(a: Agent) -> float:
    return a._retry_at - time.monotonic()


def test_an_apply_the_router_could_not_take_is_retried_with_backoff(tmp_path: Path) -> None:
    a, router = agent(tmp_path, 0.2, 2.0, DOWN, DOWN)
    a._offer("config\n")
    a.apply_pending()
    assert a.status.last_apply.result == "Failed"
    assert 0.9 < retry_in(a) <= 1.0
    a._retry()
    assert router.applied == ["config\n"] * 2
    assert 1.9 < retry_in(a) <= 2.0, "the second wait is longer"
    a._retry()
    assert router.applied == ["config\n"] * 3
    assert a.status.last_apply.result == "Applied"
    assert a._retry_at == float("inf")
    assert a.status.config_hash, "the configuration now runs"


def test_retries_stop_after_the_last_backoff_step(tmp_path: Path) -> None:
    a, router = agent(tmp_path, 0.2, 2.0, *[DOWN] * 10)
    a._offer("config\n")
    a.apply_pending()
    for _ in range(3):
        assert retry_in(a) < float("inf")
        a._retry()
    assert len(router.applied) == 4
    assert a._retry_at == float("inf"), "gave up: waits for a change or a router restart"
    a._offer("config\n")  # the same input again changes nothing
    assert a._pending is None and a._retry_at == float("inf")
    a._offer("config 2\n")  # a new one is applied as usual
    a.apply_pending()
    assert router.applied[-1] == "config 2\n"


def test_a_rejected_configuration_is_not_retried(tmp_path: Path) -> None:
    a, router = agent(tmp_path, 0.2, 2.0, REJECTED)
    a._offer("broken\n")
    a.apply_pending()
    assert a.status.last_apply.result == "Failed"
    assert a._retry_at == float("inf")
    a._offer("broken\n")
    assert a._pending is None, "the same rejected text is not tried again"
    assert router.applied == ["broken\n"]


def test_new_input_replaces_a_pending_retry(tmp_path: Path) -> None:
    a, router = agent(tmp_path, 0.2, 2.0, DOWN)
    a._offer("old\n")
    a.apply_pending()
    assert retry_in(a) < float("inf")
    a._offer("new\n")
    assert a._retry_at == float("inf"), "no retry of the old text"
    a.apply_pending()
    assert router.applied == ["old\n", "new\n"]


# -- pacing the addresses only IS-IS announces ------------------------------------------

A, B, C, D = (ipaddress.ip_interface(f"192.0.2.{i}/32") for i in (1, 2, 3, 4))
INF = float("inf")


def test_the_first_isis_change_is_programmed_at_once_and_the_next_waits() -> None:
    pacer = Pacer(0.25)
    paced = frozenset({A, B, C})
    assert pacer.target(frozenset({A, D}), paced, now=10.0) == (frozenset({A, D}), INF)
    # 50 ms later: B arrives (held back) and D goes (never held: not paced)
    assert pacer.target(frozenset({A, B}), paced, now=10.05) == (frozenset({A}), 10.25)
    # and then A goes too: still held as it was
    assert pacer.target(frozenset({B}), paced, now=10.1) == (frozenset({A}), 10.25)
    # due: everything as wanted, and a new window starts
    assert pacer.target(frozenset({B}), paced, now=10.25) == (frozenset({B}), INF)
    assert pacer.target(frozenset({B, C}), paced, now=10.3) == (frozenset({B}), 10.5)


def test_addresses_not_paced_are_never_held() -> None:
    pacer = Pacer(0.25)
    paced = frozenset({A})
    pacer.target(frozenset({A}), paced, now=0.0)
    for i, wanted in enumerate(({A, B}, {A, B, C}, {A}, {A, D})):
        assert pacer.target(frozenset(wanted), paced, now=0.01 * (i + 1)) == (
            frozenset(wanted),
            INF,
        )


def test_a_quiet_isis_change_is_programmed_at_once() -> None:
    pacer = Pacer(0.25)
    paced = frozenset({A, B})
    pacer.target(frozenset({A}), paced, now=0.0)
    assert pacer.target(frozenset({A, B}), paced, now=5.0) == (frozenset({A, B}), INF)


def group_obj(name: str, protocols: list[str], cidr: str) -> dict[str, object]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": "ServiceGroup",
        "metadata": {"name": name, "namespace": "lbroute"},
        "spec": {"protocols": protocols, "pools": [{"cidr": cidr}]},
    }


def test_only_addresses_that_only_isis_carries_are_paced() -> None:
    model = api.load(
        [
            group_obj("isis", ["isis"], "192.0.2.0/28"),
            group_obj("both", ["isis", "bgp"], "192.0.2.16/28"),
            group_obj("bgp", ["bgp"], "192.0.2.32/28"),
        ]
    )
    assert not model.problems

    def ann(group: str, address: str) -> Announcement:
        return Announcement(
            interface=ipaddress.ip_interface(address),
            group=ObjectRef(kind="ServiceGroup", namespace="lbroute", name=group),
            services=(),
        )

    desired = DesiredState(
        announcements=(
            ann("isis", "192.0.2.1/32"),
            ann("both", "192.0.2.17/32"),
            ann("bgp", "192.0.2.33/32"),
            ann("isis", "192.0.2.40/32"),  # shared with a BGP-only group
            ann("bgp", "192.0.2.40/32"),
        )
    )
    assert isis_only(model, desired) == {ipaddress.ip_interface("192.0.2.1/32")}
