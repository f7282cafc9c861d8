#!/usr/bin/env python3
"""Allocation through NetBox (issue 21): Services per second from a cold start, against
NetBox's own rate and the built-in allocator in the same run.

A real NetBox (tests/netbox/server.py: its own PostgreSQL, Redis and ``manage.py
runserver`` on loopback, from the cached, migrated database) with one /20 prefix, and
the allocator (allocator.controller) against the tests' protocol-level fake Kubernetes
API, over HTTP:

- first pass: N Services of a ServiceGroup with ``ipam.netbox``, from the allocator's
  start until every Service's status is written (each address recorded in NetBox);
- restart: a second allocator over the same Services and records, until its first pass
  is written, and that it changes nothing (no Service renumbered or written, no record
  made twice);
- built-in, same run: the same N Services from a built-in pool through the same fake
  API (the allocator's own cost without NetBox);
- floor, same run: NetBox alone, ``POST /api/ipam/prefixes/ID/available-ips/`` from one
  client in a loop, one address a request, then 50 a request as the allocator asks for
  new Services (what an address costs NetBox itself; the leader is one client).

    .venv/bin/python bench/netbox_bench.py [--services 1000] [--floor 200] [--json PATH]

Exits 1 without numbers when a Service is left without an address, two get one, or the
restart would change anything.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from benchlib import ROOT, Json, Stopped, command_line, log, machine, stop_on_signals, write_json

sys.path.insert(0, str(ROOT))

from allocator.controller import Allocator, Settings
from lbroute.kube.client import api_client
from lbroute.kube.reflector import Timing
from tests.fakeapi import FakeAPI
from tests.netbox.server import NetBoxServer, start

NS = "lbroute"
PREFIX = "10.96.0.0/20"
FLOOR_PREFIX = "10.97.0.0/20"


def group(name: str, url: str | None) -> Json:
    spec: Json = {"default": True}
    if url is None:
        spec["pools"] = [{"cidr": "10.98.0.0/20"}]
    else:
        spec["ipam"] = {
            "netbox": {
                "url": url,
                "tokenSecretRef": {"name": "netbox-token"},
                "prefixes": [PREFIX],
                "dnsName": "{name}.{namespace}.lb.example.com",
            }
        }
    return {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "ServiceGroup",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def services(n: int) -> list[Json]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"svc-{i:05}", "namespace": "default", "uid": f"uid-{i}"},
            "spec": {
                "type": "LoadBalancer",
                "loadBalancerClass": "lbroute.io/lbroute",
                "ports": [{"protocol": "TCP", "port": 80}],
            },
            "status": {"loadBalancer": {}},
        }
        for i in range(n)
    ]


def addressed(fake: FakeAPI) -> dict[str, str]:
    out = {}
    for s in fake.objects("services"):
        ingress = (s.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        if ingress:
            out[s["metadata"]["name"]] = ingress[0]["ip"]
    return out


def run_allocator(fake: FakeAPI, tmp: Path, identity: str, done: Callable[[], bool]) -> float:
    """Seconds from an allocator's start until ``done()``."""
    client = api_client(str(fake.kubeconfig(tmp / f"kubeconfig-{identity}")))
    settings = Settings(identity=identity, namespace=NS, timing=Timing(connect_timeout=5),
                        retry_period=0.5)  # fmt: skip
    allocator = Allocator(client, settings)
    allocator.recorder.bucket.rate = allocator.recorder.bucket.burst = 10**9
    stop = threading.Event()
    started = time.perf_counter()
    thread = threading.Thread(target=allocator.run, args=(stop,), daemon=True)
    thread.start()
    try:
        while not done():
            if time.perf_counter() - started > 3600:
                raise SystemExit(f"{identity}: not done within an hour")
            if not thread.is_alive():
                raise SystemExit(f"{identity}: the allocator stopped")
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        stop.set()
        thread.join(timeout=30)


def netbox_records(server: NetBoxServer) -> list[Json]:
    out: list[Json] = []
    url: str | None = f"/api/ipam/ip-addresses/?parent={PREFIX}&limit=1000&brief=true"
    while url:
        page = server.api("GET", url)
        out += page["results"]
        url = page["next"].split(server.url, 1)[1] if page["next"] else None
    return out


def body(text: str) -> Json:
    """An address object as the allocator makes one (its tag exists by then)."""
    return {"description": text, "status": "active", "role": "anycast",
            "tags": [{"slug": "lbroute"}], "dns_name": "floor.lb.example.com"}  # fmt: skip


def floor(server: NetBoxServer, n: int) -> Json:
    """NetBox alone: ``n`` available-ips POSTs from one client."""
    prefix = server.api("POST", "/api/ipam/prefixes/", {"prefix": FLOOR_PREFIX})
    session = requests.Session()
    session.headers["Authorization"] = f"Token {server.token}"
    url = f"{server.url}/api/ipam/prefixes/{prefix['id']}/available-ips/"
    times = []
    for i in range(n):
        t = time.perf_counter()
        r = session.post(url, json=body(f"floor {i}"), timeout=30)
        r.raise_for_status()
        times.append(time.perf_counter() - t)
    total = sum(times)
    # The same in batches of 50 objects a request, as the allocator asks.
    t = time.perf_counter()
    for i in range(0, n, 50):
        batch = [body(f"floor batch {j}") for j in range(i, i + 50)]
        session.post(url, json=batch, timeout=120).raise_for_status()
    batched = time.perf_counter() - t
    made = len(range(0, n, 50)) * 50
    return {"posts": n, "seconds": total, "per_s": n / total,
            "p50_ms": sorted(times)[n // 2] * 1000,
            "batched_addresses": made, "batched_seconds": batched,
            "batched_per_s": made / batched}  # fmt: skip


def bench(tmp: Path, n: int, floor_posts: int) -> Json:
    server = start()
    try:
        log(f"netbox: {server.url} up ({server.timings.summary()})")
        server.api("POST", "/api/ipam/prefixes/", {"prefix": PREFIX})
        token = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "netbox-token", "namespace": NS},
            "stringData": {"token": server.token},
        }
        objects = services(n)
        with FakeAPI(namespaces=("default", NS)) as fake:
            fake.put_all([group("nb", server.url), token, *objects])
            log(f"first pass: {n} Services through NetBox")
            first = run_allocator(fake, tmp, "first", lambda: len(addressed(fake)) == n)
            given = addressed(fake)
            if len(set(given.values())) != n:
                raise SystemExit("two Services got one address")
            records = netbox_records(server)
            if len(records) != n:
                raise SystemExit(f"{len(records)} NetBox records for {n} Services")
            log(f"  {first:.1f} s = {n / first:,.1f} Services/s; restart")
            writes_before = len(fake.requests)
            restart = restart_pass(fake, tmp)
            if addressed(fake) != given:
                raise SystemExit("the restart renumbered a Service")
            if len(netbox_records(server)) != n:
                raise SystemExit("the restart recorded an address twice")
            restart_writes = sum(
                1
                for r in fake.requests[writes_before:]
                if r.verb in ("create", "update", "patch") and r.resource == "services"
            )
        with FakeAPI(namespaces=("default", NS)) as fake:
            fake.put_all([group("pool", None), *objects])
            log(f"built-in: {n} Services from a pool")
            builtin = run_allocator(fake, tmp, "builtin", lambda: len(addressed(fake)) == n)
        log(f"floor: {floor_posts} available-ips POSTs to NetBox alone")
        alone = floor(server, floor_posts)
    finally:
        server.stop()
    return {
        "services": n,
        "first_pass_s": first,
        "services_per_s": n / first,
        "restart_pass_s": restart,
        "restart_service_writes": restart_writes,
        "builtin_s": builtin,
        "builtin_per_s": n / builtin,
        "floor": alone,
    }


def restart_pass(fake: FakeAPI, tmp: Path) -> float:
    """Seconds from a second allocator's start until its first pass is written."""
    client = api_client(str(fake.kubeconfig(tmp / "kubeconfig-restart2")))
    settings = Settings(identity="restart2", namespace=NS, timing=Timing(connect_timeout=5),
                        retry_period=0.5)  # fmt: skip
    allocator = Allocator(client, settings)
    stop = threading.Event()
    started = time.perf_counter()
    thread = threading.Thread(target=allocator.run, args=(stop,), daemon=True)
    thread.start()
    try:
        while allocator.passes < 1:
            if time.perf_counter() - started > 600:
                raise SystemExit("the restarted allocator made no pass in 10 minutes")
            time.sleep(0.02)
        return time.perf_counter() - started
    finally:
        stop.set()
        thread.join(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--floor", type=int, default=200, help="available-ips POSTs alone")
    parser.add_argument("--quick", action="store_true", help="200 Services, 50 POSTs")
    parser.add_argument("--json", type=Path, help="write the results here (default: stdout)")
    args = parser.parse_args()
    stop_on_signals()
    n, posts = (200, 50) if args.quick else (args.services, args.floor)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="lbroute-netbox-bench-") as tmp:
            results = bench(Path(tmp), n, posts)
    except Stopped:
        return 130
    r, f = results, results["floor"]
    print(f"first pass: {r['services']} Services through NetBox in {r['first_pass_s']:.1f} s "
          f"= {r['services_per_s']:.1f}/s; NetBox alone: {f['batched_per_s']:.1f} addresses/s "
          f"in batches of 50, {f['per_s']:.1f}/s one a request (p50 {f['p50_ms']:.0f} ms); "
          f"built-in pools: {r['builtin_per_s']:.0f}/s; restart "
          f"pass {r['restart_pass_s']:.2f} s, {r['restart_service_writes']} writes")  # fmt: skip
    document: Any = {
        "command": command_line(),
        "machine": machine(),
        "results": results,
        "wall_seconds": time.monotonic() - started,
    }
    write_json(args.json, document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
