"""Health and metrics over HTTP, as Kubernetes probes and Prometheus ask for them.

One port serves ``/metrics`` (the caller's Prometheus registry), ``/healthz`` (liveness:
the main loop ran recently, else 503 and the kubelet restarts the container) and
``/readyz`` (readiness: the caller says when it is ready). The agent and the allocator
each serve their own metrics this way, and stop on SIGTERM or SIGINT through
:func:`stopped_by_signals`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Health:
    """Liveness: the main loop called :meth:`beat` recently. Readiness: ``ready``, as
    its owner sets it (the agent: its first pass is done and the router runs a
    configuration lbroute applied; the allocator: its watches have listed)."""

    def __init__(self, stale_after: float = 30.0) -> None:
        self.stale_after = stale_after
        self._beat = time.monotonic()
        self.ready = False
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
    """Serve /metrics, /healthz and /readyz on ``port`` in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, ctype, code = generate_latest(metrics.registry), CONTENT_TYPE_LATEST, 200
            elif self.path == "/healthz":
                ok = health.live
                body, ctype, code = (
                    (b"ok\n" if ok else b"stalled\n"),
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

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="lbroute-http", daemon=True).start()
    return server


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
