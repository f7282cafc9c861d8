"""What the agent reports: a status document, Prometheus metrics and health endpoints.

The status document (JSON, written atomically to the status file after every change)
is what ``lbroute status`` prints and what the Kubernetes source will publish as the
node's NodeState. Metrics and ``/healthz`` ``/readyz`` are served on one port.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from lbroute.model.errors import ObjectRef, Problem


@dataclass(kw_only=True)
class LastApply:
    time: str = ""
    result: str = ""
    """Applied, Unchanged or Failed (the NodeState enum)."""
    error: str = ""
    duration: float = 0.0


@dataclass(kw_only=True)
class Status:
    node: str
    router: str = ""
    mode: str = ""
    config_hash: str = ""
    last_apply: LastApply = field(default_factory=LastApply)
    announced: list[dict[str, Any]] = field(default_factory=list)
    """[{address: '192.0.2.7/24', group: 'ns/name', services: ['ns/name', ...]}]"""
    sessions: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    updated: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Status:
        data = json.loads(text)
        data["last_apply"] = LastApply(**data.get("last_apply", {}))
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class Report:
    """Everything a reporter may publish after a pass, an apply or a session poll."""

    status: Status
    """A copy of the agent's status document."""
    announced: dict[ObjectRef, tuple[str, ...]]
    """Services announced from this node -> their addresses on kube-lb0."""
    local: frozenset[ObjectRef]
    """The ETP Local Services among them."""
    object_problems: tuple[Problem, ...]
    """What is wrong with an object whatever the node (the same on every node)."""
    node_problems: tuple[Problem, ...]
    """What is wrong only here (a Peer this node's router cannot run, a Service...)."""
    objects: tuple[dict[str, Any], ...]
    """The source's objects the pass used, as they are (with their status)."""
    agent: ObjectRef | None = None
    """The NodeAgent that configures this node."""


class Reporter(Protocol):
    def publish(self, report: Report) -> None:
        """Take the newest report; must return at once (publishing happens elsewhere)."""
        ...


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Metrics:
    """The agent's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.addresses = Gauge(
            "lbroute_announced_addresses",
            "Service addresses on the dummy interface, by family.",
            ["family"],
            registry=self.registry,
        )
        self.applies = Counter(
            "lbroute_router_applies",
            "Router configuration applies, by result (applied, failed).",
            ["result"],
            registry=self.registry,
        )
        self.render_seconds = Histogram(
            "lbroute_render_seconds",
            "Time to render the router configuration.",
            registry=self.registry,
        )
        self.apply_seconds = Histogram(
            "lbroute_apply_seconds",
            "Time to validate, write and reload the router configuration.",
            registry=self.registry,
        )
        self.sessions = Gauge(
            "lbroute_sessions",
            "Routing sessions by protocol and state, as the router reports them.",
            ["protocol", "state"],
            registry=self.registry,
        )
        self.invalid_objects = Gauge(
            "lbroute_invalid_objects",
            "Objects left out because they are invalid.",
            registry=self.registry,
        )
        self.netlink_errors = Counter(
            "lbroute_netlink_errors",
            "Addresses that could not be added or removed.",
            registry=self.registry,
        )
        self.events_dropped = Counter(
            "lbroute_events_dropped",
            "Kubernetes Events not sent because of the rate limit.",
            registry=self.registry,
        )


class Health:
    """Liveness: the main loop ran recently. Readiness: the first pass is done and the
    router runs a configuration lbroute applied."""

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
