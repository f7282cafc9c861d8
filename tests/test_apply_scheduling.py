"""When the agent applies a router configuration (nodeagent.scheduler), and when it
programs the addresses only IS-IS announces (nodeagent.pacing).

Bursts of configuration changes are coalesced: the agent applies a new router
configuration once no newer one arrived for ``settle`` seconds, and at the latest
``max_delay`` seconds after the first of the burst; only the newest text is applied.

An apply that failed for another reason than the parser rejecting the text (the router
not answering yet, a reload that did not take) is retried with backoff, a bounded number
of times; a rejected text is not retried until the input changes. Coming back to the
text the router runs applies nothing; a router restart applies the newest text again.

The schedule is driven as the agent drives it (offer, take what is due, apply, report
the outcome) with a clock of the test's own, against a router that records what it was
asked to apply: the agent's scheduling is not something a daemon can observe directly
(the namespace tests cover the real daemons).

Addresses that only IS-IS announces reach kube-lb0 at most every ``isis_pace`` seconds
(the first change at once), every other address at once.
"""

from __future__ import annotations

import ipaddress
import logging

import pytest

from lbroute.model import api
from lbroute.model.errors import ObjectRef
from nodeagent.desired import Announcement, DesiredState
from nodeagent.pacing import Pacer, isis_only
from nodeagent.routers import ApplyResult, Outcome
from nodeagent.scheduler import ApplySchedule, Offer
from nodeagent.settings import ApplyTiming

INF = float("inf")
OK = ApplyResult()
DOWN = ApplyResult(
    outcome=Outcome.UNAVAILABLE, error="birdc: Unable to connect to server control socket"
)
REJECTED = ApplyResult(outcome=Outcome.REJECTED, error="bird -p: syntax error, line 3")
NOT_CONVERGED = ApplyResult(
    outcome=Outcome.NOT_CONVERGED, error="frr-reload.py --test still finds: no hostname x"
)


class RecordingRouter:
    def __init__(self, *outcomes: ApplyResult) -> None:
        self.applied: list[str] = []
        self.outcomes = list(outcomes)
        """What the next applies return, in order; then success."""

    def apply(self, text: str) -> ApplyResult:
        self.applied.append(text)
        return self.outcomes.pop(0) if self.outcomes else ApplyResult()


def schedule(settle: float = 0.2, max_delay: float = 2.0) -> ApplySchedule:
    return ApplySchedule(
        ApplyTiming(settle=settle, max_delay=max_delay, retry_backoff=(1.0, 2.0, 4.0))
    )


def apply_due(s: ApplySchedule, router: RecordingRouter, now: float) -> list[str]:
    """What the agent's loop does at ``now``: apply whatever is due, report each outcome."""
    applied: list[str] = []
    while (text := s.take(now)) is not None:
        applied.append(text)
        s.done(text, router.apply(text), now)
    return applied


def applied_now(text: str, router: RecordingRouter, now: float = 0.0) -> ApplySchedule:
    """A schedule whose router runs ``text`` since ``now``."""
    s = schedule()
    s.offer(text, now)
    assert apply_due(s, router, s.due()) == [text]
    return s


# -- coalescing -----------------------------------------------------------------------


def test_a_burst_of_1000_changes_is_one_apply_of_the_newest() -> None:
    s, router = schedule(settle=0.2, max_delay=2.0), RecordingRouter()
    for i in range(1000):
        assert s.offer(f"config {i}\n", now=10.0 + i * 0.0001) is Offer.PENDING
    last = 10.0 + 999 * 0.0001
    assert apply_due(s, router, last) == []
    assert s.due() == pytest.approx(last + 0.2), "still settling"
    assert apply_due(s, router, s.due()) == ["config 999\n"]
    assert router.applied == ["config 999\n"]
    assert s.offer("config 999\n", now=11.0) is Offer.CURRENT, "the same text again"
    assert s.pending is None and s.due() == INF


def test_a_steady_stream_is_applied_no_later_than_max_delay() -> None:
    s, router = schedule(settle=10.0, max_delay=0.5), RecordingRouter()
    first = 100.0
    for i in range(5):
        s.offer(f"config {i}\n", now=first + 0.1 * i)
        assert s.due() == pytest.approx(first + 0.5)
    assert apply_due(s, router, first + 0.49) == []
    s.offer("config 5\n", now=first + 0.5)
    assert apply_due(s, router, first + 0.5) == ["config 5\n"]


def test_a_quiet_change_is_applied_after_settle() -> None:
    s, router = schedule(settle=0.2, max_delay=2.0), RecordingRouter()
    s.offer("config\n", now=5.0)
    assert s.due() == pytest.approx(5.2)
    assert apply_due(s, router, 5.19) == []
    assert apply_due(s, router, 5.2) == ["config\n"]
    assert s.applied == "config\n" and s.due() == INF


# -- failures and retries ---------------------------------------------------------------


def test_an_apply_the_router_could_not_take_is_retried_with_backoff() -> None:
    s, router = schedule(), RecordingRouter(DOWN, DOWN)
    s.offer("config\n", now=0.0)
    assert apply_due(s, router, 0.2) == ["config\n"]
    assert s.failed == "config\n" and s.applied is None
    assert s.retry_at == pytest.approx(1.2) and s.due() == s.retry_at
    assert apply_due(s, router, 1.1) == []
    assert apply_due(s, router, 1.2) == ["config\n"]
    assert router.applied == ["config\n"] * 2
    assert s.retry_at == pytest.approx(3.2), "the second wait is longer"
    assert apply_due(s, router, 3.2) == ["config\n"]
    assert router.applied == ["config\n"] * 3
    assert s.applied == "config\n" and s.failed is None, "the configuration now runs"
    assert s.retry_at == INF and s.retries == 0


def test_a_configuration_the_router_took_but_does_not_run_is_retried() -> None:
    """Issue 14: not converged is not rejected: retried on the backoff like a router
    that did not answer."""
    s, router = schedule(), RecordingRouter(NOT_CONVERGED, NOT_CONVERGED)
    s.offer("config\n", now=0.0)
    assert apply_due(s, router, 0.2) == ["config\n"]
    assert s.failed == "config\n" and s.retry_at == pytest.approx(1.2)
    assert apply_due(s, router, 1.2) == ["config\n"]
    assert s.retry_at == pytest.approx(3.2)
    assert apply_due(s, router, 3.2) == ["config\n"]
    assert s.applied == "config\n" and s.failed is None


def test_retries_stop_after_the_last_backoff_step(caplog: pytest.LogCaptureFixture) -> None:
    s, router = schedule(), RecordingRouter(*[DOWN] * 10)
    s.offer("config\n", now=0.0)
    now = s.due()
    apply_due(s, router, now)
    for _ in range(3):
        assert s.retry_at < INF
        now = s.retry_at
        apply_due(s, router, now)
    assert len(router.applied) == 4
    assert s.retry_at == INF, "gave up: waits for a change or a router restart"
    assert "giving up after 4 attempts; waiting for a change" in caplog.text
    assert s.offer("config\n", now + 1) is Offer.FAILED_BEFORE, "the same input changes nothing"
    assert s.pending is None and s.retry_at == INF
    assert s.offer("config 2\n", now + 2) is Offer.PENDING, "a new one is applied as usual"
    assert apply_due(s, router, s.due()) == ["config 2\n"]
    assert router.applied[-1] == "config 2\n"


def test_a_rejected_configuration_is_not_retried() -> None:
    s, router = schedule(), RecordingRouter(REJECTED)
    s.offer("broken\n", now=0.0)
    apply_due(s, router, 0.2)
    assert s.failed == "broken\n"
    assert s.retry_at == INF
    assert s.offer("broken\n", now=1.0) is Offer.FAILED_BEFORE
    assert s.pending is None, "the same rejected text is not tried again"
    assert apply_due(s, router, 100.0) == []
    assert router.applied == ["broken\n"]


def test_new_input_replaces_a_pending_retry() -> None:
    s, router = schedule(), RecordingRouter(DOWN)
    s.offer("old\n", now=0.0)
    apply_due(s, router, 0.2)
    assert s.retry_at < INF
    s.offer("new\n", now=0.5)
    assert s.retry_at == INF, "no retry of the old text"
    assert apply_due(s, router, s.due()) == ["new\n"]
    assert router.applied == ["old\n", "new\n"]


def test_the_same_text_again_keeps_its_planned_retry() -> None:
    s, router = schedule(), RecordingRouter(DOWN)
    s.offer("config\n", now=0.0)
    apply_due(s, router, 0.2)
    assert s.offer("config\n", now=0.5) is Offer.FAILED_BEFORE
    assert s.retry_at == pytest.approx(1.2)
    assert apply_due(s, router, 1.2) == ["config\n"]
    assert s.applied == "config\n"


def test_back_to_the_running_text_applies_nothing_and_clears_the_failure() -> None:
    router = RecordingRouter(OK, REJECTED)
    s = applied_now("good\n", router)
    s.offer("broken\n", now=1.0)
    assert apply_due(s, router, s.due()) == ["broken\n"]
    assert s.failed == "broken\n" and s.applied == "good\n"
    assert s.offer("good\n", now=2.0) is Offer.RECOVERED, "unchanged: the fix applies nothing"
    assert s.failed is None and s.pending is None and s.due() == INF
    assert s.offer("good\n", now=3.0) is Offer.CURRENT
    assert apply_due(s, router, 100.0) == []
    assert router.applied == ["good\n", "broken\n"]


def test_back_to_the_running_text_while_a_retry_is_planned_cancels_it() -> None:
    router = RecordingRouter(OK, DOWN)
    s = applied_now("good\n", router)
    s.offer("new\n", now=1.0)
    apply_due(s, router, s.due())
    assert s.retry_at < INF
    assert s.offer("good\n", now=1.5) is Offer.RECOVERED
    assert s.retry_at == INF and s.failed is None
    assert apply_due(s, router, 100.0) == []


# -- a router that runs the text already, or restarted ----------------------------------


def test_a_router_that_runs_the_first_text_already_gets_nothing() -> None:
    s = schedule()
    assert s.fresh, "nothing known: only the router can tell what it runs"
    s.adopt("config\n")
    assert not s.fresh and s.applied == "config\n" and s.due() == INF
    assert s.offer("config\n", now=1.0) is Offer.CURRENT


def test_a_restarted_router_gets_the_running_text_again_at_once() -> None:
    router = RecordingRouter()
    s = applied_now("config\n", router)
    text = s.restarted()
    assert text == "config\n"
    assert s.applied is None and s.pending is None
    s.done(text, router.apply(text), now=5.0)
    assert s.applied == "config\n"
    assert router.applied == ["config\n"] * 2


def test_a_restart_applies_the_pending_text_rather_than_the_running_one() -> None:
    router = RecordingRouter()
    s = applied_now("old\n", router)
    s.offer("new\n", now=1.0)
    assert s.restarted() == "new\n"
    assert s.pending is None and s.due() == INF


def test_a_restart_tries_a_failed_text_again_and_drops_its_retry() -> None:
    s, router = schedule(), RecordingRouter(REJECTED)
    s.offer("broken\n", now=0.0)
    apply_due(s, router, 0.2)
    assert s.restarted() == "broken\n", "the new daemon may take it"
    assert s.failed is None and s.retry_at == INF


def test_a_restart_before_any_text_applies_nothing() -> None:
    assert schedule().restarted() is None


def test_a_retry_is_logged_with_its_delay_and_attempt(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    s, router = schedule(), RecordingRouter(DOWN)
    s.offer("config\n", now=0.0)
    apply_due(s, router, 0.2)
    assert "applying again in 1 s (attempt 2)" in caplog.text


# -- pacing the addresses only IS-IS announces ------------------------------------------

A, B, C, D = (ipaddress.ip_interface(f"192.0.2.{i}/32") for i in (1, 2, 3, 4))


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
