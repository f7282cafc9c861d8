"""Background threads never die silently: a failure ends the run, and the process exits 1.

The agent's source feeder and reporter thread, the allocator's lease thread and watch
feeder: each, failing unexpectedly (a bug, or hostile input reaching a code path), logs
the exception with its traceback and sets the run's stop event, so the run loop returns
rather than go on blind or unreported with /healthz green. ``run_allocator`` then
returns 1 (Kubernetes restarts the pod), and 0 when SIGTERM asked it to stop; the
signal handlers it installed are gone afterwards.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from allocator.controller import Allocator, Settings
from allocator.main import AllocatorOptions, run_allocator
from lbroute.kube.client import api_client
from lbroute.kube.directory import Snapshot
from lbroute.kube.reflector import KubernetesSource, Timing
from nodeagent.agent import Agent
from nodeagent.kubereport import KubeReporter
from nodeagent.settings import AgentSettings, RouterChecks
from nodeagent.status import Report, Status
from tests.fakeapi import FakeAPI

NS = "lbroute"
LEASE = "lbroute-allocator"
FAST = Timing(watch_seconds=(30, 40), backoff=(0.05, 0.2), connect_timeout=2)


def failure(caplog: pytest.LogCaptureFixture, message: str) -> logging.LogRecord:
    """The one ERROR record that says ``message``, with its traceback."""
    (record,) = [r for r in caplog.records if r.getMessage() == message]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    return record


def returns(run: Callable[[threading.Event], None], stop: threading.Event) -> None:
    """``run(stop)`` returns by itself (nobody else sets ``stop``)."""
    thread = threading.Thread(target=run, args=(stop,), daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the run loop went on"
    assert stop.is_set()


@pytest.fixture
def fake() -> Iterator[FakeAPI]:
    with FakeAPI(namespaces=("default", NS)) as api:
        yield api


# -- the agent ----------------------------------------------------------------------------


class BrokenSource:
    def snapshots(self, stop: threading.Event) -> Iterator[Snapshot]:
        raise RuntimeError("a bug in the source")


class NoSource:
    def snapshots(self, stop: threading.Event) -> Iterator[Snapshot]:
        return iter(())


class BrokenReporter(KubeReporter):
    def sync(self, report: Report) -> None:
        raise RuntimeError("a bug in the reporter")


def agent_settings(tmp_path: Path) -> AgentSettings:
    return AgentSettings(
        node="node-a", status_file=tmp_path / "status.json", checks=RouterChecks(interval=0.05)
    )


def test_the_agent_stops_when_its_source_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = Agent(agent_settings(tmp_path), BrokenSource())
    returns(agent.run, threading.Event())
    failure(caplog, "the object source failed")


def test_the_agent_stops_when_its_reporter_fails(
    fake: FakeAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = api_client(str(fake.kubeconfig(tmp_path / "kubeconfig")))
    reporter = BrokenReporter(client, node="node-a", namespace=NS)
    stop = threading.Event()
    reporter.start(on_failure=stop.set)
    try:
        agent = Agent(agent_settings(tmp_path), NoSource(), reporter=reporter)
        reporter.publish(
            Report(
                status=Status(node="node-a"),
                announced={},
                local=frozenset(),
                object_problems=(),
                node_problems=(),
                objects=(),
            )
        )
        returns(agent.run, stop)
    finally:
        reporter.stop()
    failure(caplog, "publishing the node's status failed")


# -- the allocator ------------------------------------------------------------------------


def hostile_lease(fake: FakeAPI) -> None:
    """A Lease held by another replica for a duration that is no number."""
    fake.put(
        "leases",
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE, "namespace": NS},
            "spec": {"holderIdentity": "other", "leaseDurationSeconds": "soon"},
        },
        NS,
    )


def allocator(fake: FakeAPI, tmp_path: Path) -> Allocator:
    client = api_client(str(fake.kubeconfig(tmp_path / "kubeconfig")))
    settings = Settings(
        identity="a",
        namespace=NS,
        lease_name=LEASE,
        lease_duration=2.0,
        renew_deadline=1.0,
        retry_period=0.1,
        timing=FAST,
        debounce=0.02,
        retry=0.1,
    )
    return Allocator(client, settings)


def test_the_allocator_stops_when_its_lease_thread_fails(
    fake: FakeAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hostile_lease(fake)
    returns(allocator(fake, tmp_path).run, threading.Event())
    (record,) = [r for r in caplog.records if r.getMessage() == "the lease failed; stopping"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is ValueError


class BrokenWatch(KubernetesSource):
    def snapshots(self, stop: threading.Event) -> Iterator[Snapshot]:
        raise RuntimeError("a bug in the watch")


def test_the_allocator_stops_when_its_watch_feeder_fails(
    fake: FakeAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = allocator(fake, tmp_path)
    a.source = BrokenWatch(api_client(str(fake.kubeconfig(tmp_path / "k2"))), namespace=NS)
    returns(a.run, threading.Event())
    failure(caplog, "the watch of Services and ServiceGroups failed; stopping")


def options(fake: FakeAPI, tmp_path: Path) -> AllocatorOptions:
    return AllocatorOptions(
        kubeconfig=fake.kubeconfig(tmp_path / "kubeconfig"),
        namespace=NS,
        metrics_port=0,
        lease_name=LEASE,
        identity="a",
    )


def test_run_allocator_exits_1_after_a_failure(
    fake: FakeAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hostile_lease(fake)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert run_allocator(options(fake, tmp_path)) == 1
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert "the allocator stopped because a part of it failed" in caplog.text


def test_run_allocator_exits_0_when_sigterm_asks_it_to_stop(fake: FakeAPI, tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)

    def holder() -> Any:
        lease = fake.get("leases", LEASE, NS)
        return lease and str(lease["spec"].get("holderIdentity") or "").startswith("a_")

    def terminate() -> None:
        deadline = time.monotonic() + 20
        while not holder() and time.monotonic() < deadline:
            time.sleep(0.02)
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler) and handler is not before
        handler(signal.SIGTERM, None)  # as the signal would, without sending one

    sender = threading.Thread(target=terminate, daemon=True)
    sender.start()
    assert run_allocator(options(fake, tmp_path)) == 0
    sender.join(timeout=5)
    assert signal.getsignal(signal.SIGTERM) == before
    lease = fake.get("leases", LEASE, NS)
    assert lease is not None and not lease["spec"].get("holderIdentity"), "handed back"
