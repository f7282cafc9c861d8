"""What the lab benchmarks share: statistics, the machine, clean stops, the upstream
router's kernel table watched as it changes, and the agent's metrics.

Every benchmark script prints a JSON document (``--json PATH``) that
``bench/run_all.py`` turns into ``bench/RESULTS.md``; this module holds the pieces
they have in common. It starts nothing by itself: :class:`RouteMonitor` runs one
``ip monitor route`` that its ``with`` block stops.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
Json = dict[str, Any]


# -- clean stops ----------------------------------------------------------------------


class Stopped(Exception):
    """SIGTERM or SIGINT arrived: unwind through every ``finally``."""


def stop_on_signals() -> None:
    """Turn SIGTERM (``timeout``, ``kill``) into an exception, so that namespaces and
    daemons are removed by the ``finally`` blocks as after Ctrl-C."""

    def handler(signum: int, frame: FrameType | None) -> None:
        # Once: a second signal must not cut the cleanup short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Stopped(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def need_root() -> None:
    if os.geteuid() != 0:
        raise SystemExit("needs root: it creates network namespaces and starts routers")
    for tool in ("ip", "bird", "birdc", "vtysh"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (run make install)")


# -- statistics -----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100): an observed value, never interpolated."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> Json:
    """Median and spread (min, max) of repeated runs, plus the count."""
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def distribution(values: Sequence[float]) -> Json:
    """p50, p90, p99 and max of many samples."""
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
    }


# -- the machine ----------------------------------------------------------------------


def _version(cmd: list[str], pattern: str) -> str:
    exe = shutil.which(cmd[0])
    if exe is None:
        return "not installed"
    proc = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, check=False)
    m = re.search(pattern, proc.stdout + proc.stderr)
    return m.group(1) if m else "?"


def machine() -> Json:
    """Cores, memory, CPU model, kernel and the routers' versions."""
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "bird": _version(["bird", "--version"], r"version (\S+)"),
        "frr": _version(["vtysh", "--help"], r"version (\S+?)\)"),
        "iproute2": _version(["ip", "-V"], r"iproute2-([\d.]*\d)"),
    }


def write_json(path: Path | None, data: Json) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if path is None:
        sys.stdout.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def command_line() -> str:
    """How this script was run, as a reader would type it from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = str(script.relative_to(ROOT))
    except ValueError:
        shown = str(script)
    return " ".join([".venv/bin/python", shown, *sys.argv[1:]])


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the upstream's kernel table, as it changes ---------------------------------------

_ROUTE_TYPES = frozenset(
    {"local", "broadcast", "blackhole", "unreachable", "prohibit", "multicast", "anycast", "throw"}
)


@dataclass(frozen=True)
class RouteEvent:
    at: float
    """time.monotonic() when this process read the event's first line."""
    prefix: str
    deleted: bool
    text: str
    """The whole event (ECMP routes continue on indented lines)."""

    @property
    def gateways(self) -> tuple[str, ...]:
        return tuple(sorted(set(re.findall(r"\bvia (?:inet6? )?(\S+)", self.text))))


def parse_route_line(line: str) -> tuple[str, bool] | None:
    """(prefix, deleted) of the first line of an ``ip monitor route`` event."""
    words = line.split()
    if not words:
        return None
    deleted = words[0] == "Deleted"
    if deleted:
        words = words[1:]
    if words and words[0] in _ROUTE_TYPES:
        words = words[1:]
    if not words or not re.match(r"[0-9a-f:.]+(/\d+)?$", words[0]):
        return None
    prefix = words[0]
    if "/" not in prefix:
        prefix += "/128" if ":" in prefix else "/32"
    return prefix, deleted


@dataclass
class RouteMonitor:
    """``ip monitor route`` in one namespace, read by a thread of this process that
    stamps every event with ``time.monotonic()`` as it reads it.

    ``ip monitor`` flushes after every event, so the stamp trails the kernel's change
    by the pipe's latency (microseconds). Only events for prefixes that ``keep``
    accepts are stored. Listening is confirmed before ``__enter__`` returns: a marker
    route is added and deleted in a spare table until its event is read.
    """

    netns: str
    keep: Callable[[str], bool]
    events: list[RouteEvent] = field(default_factory=list)
    _proc: subprocess.Popen[str] | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _marker_seen: threading.Event = field(default_factory=threading.Event)

    MARKER = "198.19.255.254"

    def __enter__(self) -> RouteMonitor:
        self._proc = subprocess.Popen(
            ["ip", "-n", self.netns, "monitor", "route"],
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._thread = threading.Thread(target=self._read, name="route-monitor", daemon=True)
        self._thread.start()
        try:
            deadline = time.monotonic() + 10
            while not self._marker_seen.is_set():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ip monitor in {self.netns} reported nothing")
                marker = ["blackhole", self.MARKER, "table", "4000"]
                subprocess.run(["ip", "-n", self.netns, "route", "add", *marker], check=False)
                subprocess.run(["ip", "-n", self.netns, "route", "del", *marker], check=False)
                self._marker_seen.wait(0.2)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        current: RouteEvent | None = None
        for line in self._proc.stdout:
            at = time.monotonic()
            if line[:1].isspace():
                if current is not None:
                    current = RouteEvent(
                        current.at, current.prefix, current.deleted, current.text + line
                    )
                    with self._lock:
                        self.events[-1] = current
                continue
            current = None
            parsed = parse_route_line(line)
            if parsed is None:
                continue
            prefix, deleted = parsed
            if prefix == f"{self.MARKER}/32":
                self._marker_seen.set()
                continue
            if self.keep(prefix):
                current = RouteEvent(at, prefix, deleted, line)
                with self._lock:
                    self.events.append(current)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def snapshot(self) -> list[RouteEvent]:
        with self._lock:
            return list(self.events)

    def first(
        self, prefixes: Iterable[str], *, deleted: bool, after: float = 0.0
    ) -> dict[str, float]:
        """Each prefix's first event of that kind at or after ``after``."""
        wanted = set(prefixes)
        found: dict[str, float] = {}
        for event in self.snapshot():
            if event.deleted == deleted and event.prefix in wanted and event.at >= after:
                found.setdefault(event.prefix, event.at)
        return found


# -- the agent ------------------------------------------------------------------------


@contextlib.contextmanager
def paused(pid: int | None) -> Iterator[None]:
    """Process ``pid`` stopped (SIGSTOP) for the block, continued after. A floor that
    writes what a node's agent writes (routes and addresses of lbroute's protocol
    number) pauses the agent: it owns them, and reads kube-lb0 and its table back every
    30 s, so it would take the floor's away."""
    if pid is not None:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


METRICS_CLIENT = """
import sys, urllib.request
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode())
"""


def agent_metrics(netns: str, port: int) -> dict[str, float]:
    """The agent's Prometheus metrics, read inside the node's namespace (the agent
    serves them there): sample name with labels -> value."""
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", METRICS_CLIENT, str(port)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    found = {}
    for line in proc.stdout.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def applies(metrics: dict[str, float], result: str = "applied") -> int:
    """``lbroute_router_applies_total{result="applied"}`` (or ``"failed"``)."""
    return int(metrics.get(f'lbroute_router_applies_total{{result="{result}"}}', 0))


def wait_for(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what or 'condition'} not met within {timeout:g} s")
        time.sleep(interval)


def write_atomic(path: Path, text: str) -> None:
    """Readers (the agents) see the old file or the new one, never half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def endpoint_slice(i: int, endpoints: int, first: int) -> dict[str, Any]:
    """Service ``svc-NNNNN``'s EndpointSlice in namespace ``ns-(i % 50)``, with
    ``endpoints`` endpoints numbered from ``first`` as the API holds them (addresses,
    conditions, nodeName on 20 nodes, zone, targetRef)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"svc-{i:05d}-abcde",
            "namespace": f"ns-{i % 50}",
            "labels": {"kubernetes.io/service-name": f"svc-{i:05d}"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [
                    f"10.{(first + e) >> 16 & 255}.{(first + e) >> 8 & 255}.{(first + e) & 255}"
                ],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": f"node-{(first + e) % 20}",
                "zone": f"zone-{(first + e) % 3}",
                "targetRef": {
                    "kind": "Pod",
                    "name": f"app-{i}-{e}",
                    "namespace": f"ns-{i % 50}",
                },
            }
            for e in range(endpoints)
        ],
    }
