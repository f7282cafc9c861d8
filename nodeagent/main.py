"""The node agent as a process: what ``lbroute agent`` runs.

:func:`run_agent` builds the runtime around the :class:`~nodeagent.agent.Agent`: its
source of objects (a directory of manifests, or the Kubernetes API through
lbroute.kube), the reporter that publishes NodeState, Events and conditions (with the
API only), the ``/metrics``, ``/healthz`` and ``/readyz`` server, and SIGTERM and
SIGINT handling; then runs the agent until it is asked to stop.

Every thread of the process ends the run when it fails unexpectedly (logged with its
traceback): the source's feeder in the agent, the reporter's thread here. The process
then exits 1, and Kubernetes starts it again, rather than have it run on blind or
unreported while ``/healthz`` stays green.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from lbroute.kube.client import Api, api_client
from lbroute.kube.directory import DirectorySource, DirectoryWatcher, Source
from lbroute.kube.leases import KubeLeaseStore
from lbroute.kube.reflector import KubernetesSource, Timing, Watch
from lbroute.kube.serving import Health, serve, stopped_by_signals
from lbroute.model.logs import set_context
from nodeagent.agent import Agent
from nodeagent.kubereport import KubeReporter
from nodeagent.local.leasedir import DirectoryLeaseStore
from nodeagent.local.membership import LeaseStore
from nodeagent.settings import AgentSettings
from nodeagent.status import Metrics

log = logging.getLogger(__name__)

AGENT_TIMING = Timing(cached_lists=True, start_jitter=1.0)
"""The agent lists from the API server's watch cache, up to 1 s after it starts (one
agent per node: a cluster restarting at once does not list all in the same second)."""
AGENT_DEBOUNCE = 0.01
"""At most one snapshot every 10 ms while changes keep coming. The agent's own writes
(the groups' conditions, the announcing annotation) come back as watch events too, so a
longer window held a Service that came just after one of them (50 ms: 17 ms at the
median in the lab); a pass takes the newest snapshot only, so bursts still coalesce."""


@dataclass(frozen=True, kw_only=True)
class AgentOptions:
    """What ``lbroute agent`` was asked to run."""

    settings: AgentSettings
    """The agent's own settings."""
    source_dir: Path | None = None
    """Directory of manifests to watch; None: the Kubernetes API."""
    kubeconfig: Path | None = None
    """Kubeconfig for the API; None: the in-cluster service account."""
    context: str | None = None
    """Kubeconfig context; None: the current one."""
    namespace: str = "lbroute"
    """Namespace of the ServiceGroups, Peers, NodeAgents, Secrets and NodeStates."""
    metrics_port: int = 9473
    """Port for /metrics, /healthz and /readyz; 0 turns them off."""
    metrics_address: str = ""
    """Address to serve them on; empty: all."""
    watch: str = "auto"
    """Which Services and EndpointSlices to watch (lbroute.kube.reflector.Watch)."""


def run_agent(options: AgentOptions) -> int:
    """Run the agent until SIGTERM or SIGINT (0), or until a part of it fails (1).

    Raises :class:`~lbroute.model.errors.LbrouteError` when it cannot start or goes on
    (a kubeconfig that cannot be loaded, kube-lb0 that cannot be created), with a
    message for the user."""
    settings = options.settings
    set_context(component="agent", node=settings.node)  # on every log line (JSON format)
    metrics, health = Metrics(), Health()
    stop = threading.Event()
    source: Source
    reporter: KubeReporter | None = None
    store: LeaseStore | None = None
    kube_store: KubeLeaseStore | None = None
    if options.source_dir is not None:
        source = DirectorySource(options.source_dir)
        if settings.lease_dir is not None:
            store = DirectoryLeaseStore(settings.lease_dir, namespace=options.namespace)
    else:
        client = api_client(
            str(options.kubeconfig) if options.kubeconfig else None, context=options.context
        )
        source = KubernetesSource(
            client,
            node=settings.node,
            namespace=options.namespace,
            timing=AGENT_TIMING,
            debounce=AGENT_DEBOUNCE,
            watch=Watch(options.watch),
        )
        reporter = KubeReporter(
            client,
            node=settings.node,
            namespace=options.namespace,
            on_dropped_event=metrics.events_dropped.inc,
        )
        store = kube_store = KubeLeaseStore(Api(client), namespace=options.namespace)
    if options.metrics_port:
        serve(options.metrics_port, metrics, health, options.metrics_address)
    with stopped_by_signals(stop) as asked:
        if reporter is not None:
            reporter.start(on_failure=stop.set)
        agent = Agent(
            settings,
            source,
            metrics=metrics,
            health=health,
            reporter=reporter,
            lease_store=store,
            namespace=options.namespace,
        )
        watcher = None
        if agent.local is not None:  # a Lease that changes wakes the local loop at once
            if kube_store is not None:
                kube_store.reflector.on_change = agent.local.poke
            elif settings.lease_dir is not None:
                watcher = DirectoryWatcher(settings.lease_dir, agent.local.poke, debounce_ms=5)
                watcher.start()
        if kube_store is not None:
            kube_store.start()
        try:
            agent.run(stop)
        finally:
            if watcher is not None:
                watcher.stop()
            if kube_store is not None:
                kube_store.close()
            if reporter is not None:
                reporter.stop()
    if asked.is_set():
        return 0
    log.error("the agent stopped because a part of it failed (logged above)")
    return 1
