"""The allocator as a process: what ``lbroute allocator`` runs.

:func:`run_allocator` builds the runtime around the
:class:`~allocator.controller.Allocator`: the API client (lbroute.kube), this replica's
unique name in the Lease, the ``/metrics``, ``/healthz`` and ``/readyz`` server, and
SIGTERM and SIGINT handling; then runs the allocator until it is asked to stop.

When a thread of the allocator fails unexpectedly (the lease thread, the watch feeder;
logged with its traceback), the run ends and the process exits 1, so that Kubernetes
starts it again rather than have it run on while ``/healthz`` stays green.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from allocator.controller import Allocator, Settings
from allocator.metrics import AllocatorMetrics
from lbroute import __version__
from lbroute.kube.client import api_client
from lbroute.kube.serving import Health, serve, stopped_by_signals
from lbroute.model.logs import set_context

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class AllocatorOptions:
    """What ``lbroute allocator`` was asked to run."""

    kubeconfig: Path | None = None
    """Kubeconfig for the API; None: the in-cluster service account."""
    context: str | None = None
    """Kubeconfig context; None: the current one."""
    namespace: str = "lbroute"
    """Namespace of the ServiceGroups and of the Lease."""
    default_class: bool = False
    """Also serve LoadBalancer Services that set no loadBalancerClass."""
    metrics_port: int = 9474
    """Port for /metrics, /healthz and /readyz; 0 turns them off."""
    metrics_address: str = ""
    """Address to serve them on; empty: all."""
    lease_name: str = "lbroute-allocator"
    """Name of the Lease the replicas elect their leader with."""
    identity: str | None = None
    """This replica's name in the Lease (None: the host name); a random suffix is added."""


def run_allocator(options: AllocatorOptions) -> int:
    """Run the allocator until SIGTERM or SIGINT (0), or until a part of it fails (1).

    Raises :class:`~lbroute.model.errors.LbrouteError` when it cannot start (a
    kubeconfig that cannot be loaded), with a message for the user."""
    set_context(component="allocator")  # on every log line (JSON format)
    client = api_client(
        str(options.kubeconfig) if options.kubeconfig else None, context=options.context
    )
    client.user_agent = f"lbroute-allocator/{__version__}"
    name = f"{options.identity or socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    settings = Settings(
        identity=name,
        namespace=options.namespace,
        default_class=options.default_class,
        lease_name=options.lease_name,
    )
    metrics, health = AllocatorMetrics(), Health()
    if options.metrics_port:
        serve(options.metrics_port, metrics, health, options.metrics_address)
    stop = threading.Event()
    with stopped_by_signals(stop) as asked:
        Allocator(client, settings, metrics=metrics, health=health).run(stop)
    if asked.is_set():
        return 0
    log.error("the allocator stopped because a part of it failed (logged above)")
    return 1
