"""Health and metrics over HTTP, as Kubernetes probes and Prometheus ask for them.

One port serves ``/metrics`` (the caller's Prometheus registry), ``/healthz`` (liveness:
the main loop ran recently, else 503 and the kubelet restarts the container) and
``/readyz`` (readiness: the caller says when it is ready). The agent and the allocator
each serve their own metrics this way, and stop on SIGTERM or SIGINT through
:func:`stopped_by_signals`.

The port listens on one address when given one (``--metrics-address``): the agent runs
in the node's network namespace, where "all addresses" would include every network the
node is on, so the DaemonSets give it the node's own address (``status.hostIP``, which
is where the kubelet probes a host-network pod and Prometheus scrapes it), or
``127.0.0.1`` where only something on the node reads it. IPv4 or IPv6; an address that
is not this node's is an error at start, not a silent fallback to all of them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from lbroute.model.errors import ServingError, quote


class Health:
    """Liveness: the main loop called :meth:`beat` recently. Readiness: ``ready``, as
    its owner sets it (the agent: its first pass is done and the router runs a
    configuration lbroute applied; the allocator: its watches have listed)."""

    def __init__(self, stale_after: float = 30.0) -> None:
        self.stale_after = stale_after
        self._beat = time.monotonic()
        self.ready = False
        self.degraded: dict[str, str] = {}
        """What works less than it should without making the process unhealthy (the
        allocator: an external IPAM that does not answer), shown by /healthz: what -> why."""
        self._lock = threading.Lock()

    def beat(self) -> None:
        with self._lock:
            self._beat = time.monotonic()

    @property
    def live(self) -> bool:
        with self._lock:
            return time.monotonic() - self._beat < self.stale_after


class Registered(Protocol):
    """Anything with a Prometheus registry: the agent's or the allocator's metrics."""

    registry: CollectorRegistry


def serve(port: int, metrics: Registered, health: Health, host: str = "") -> ThreadingHTTPServer:
    """Serve /metrics, /healthz and /readyz on ``port`` of ``host`` (an IP address of this
    node; empty: every IPv4 address) in a daemon thread. Raises ServingError when the
    address is not an IP address or not this node's, or the port is taken."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, ctype, code = generate_latest(metrics.registry), CONTENT_TYPE_LATEST, 200
            elif self.path == "/healthz":
                ok = health.live
                notes = "".join(f"degraded: {k}: {v}\n" for k, v in sorted(health.degraded.items()))
                body, ctype, code = (
                    (b"ok\n" if ok else b"stalled\n") + notes.encode(),
                    "text/plain",
                    200 if ok else 503,
                )
            elif self.path == "/readyz":
                ok = health.ready
                body, ctype, code = (
                    (b"ok\n" if ok else b"not ready\n"),
                    "text/plain",
                    200 if ok else 503,
                )
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server_class = ThreadingHTTPServer
    if host:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ServingError(
                f"metrics address {quote(host)} is not an IP address; give one of this "
                "node's addresses (its InternalIP), 127.0.0.1 or ::1, or none for all"
            ) from None
        if address.version == 6:
            server_class = _ThreadingHTTPServer6
    try:
        server = server_class((host, port), Handler)
    except OSError as exc:
        raise ServingError(
            f"cannot serve metrics on {quote(host or '*')} port {port}: {exc.strerror or exc}"
        ) from exc
    threading.Thread(target=server.serve_forever, name="lbroute-http", daemon=True).start()
    return server


class _ThreadingHTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextlib.contextmanager
def stopped_by_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """SIGTERM and SIGINT set ``stop``, and the event yielded (asked to stop, as
    opposed to stopping after a failure); the previous handlers are back afterwards."""
    asked = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        asked.set()
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield asked
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
