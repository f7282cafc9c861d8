#!/usr/bin/env python3
"""Allocator benchmark: 10,000 Services across several pools, pure core and through the API.

Generates ServiceGroups and Services deterministically (plain dicts, as from YAML or the
API), then measures:

- core, first pass: parse every Service (allocator.service.parse_service) and allocate
  every address (allocator.ipam.allocate) when none has one yet;
- core, restart: the same with every Service holding what the first pass gave it (what
  a restarted allocator or a new leader computes); it must change nothing;
- core, one more Service: a full pass after one Service is added to the 10,000 (what
  each change cost the controller before its passes were incremental);
- controller, one change (``one_change_ms``): the controller's compute path
  (allocator.controller.Allocator.compute: the ServiceGroups loaded, the snapshot's
  Services looked up, the changed one parsed, allocator.ipam.incremental's pass) after
  one Service is added to the 10,000, one edited (it asks for another address) and one
  deleted, in milliseconds, each checked against a full pass; ``full_pass_s``: the same
  path from a cold start (every Service parsed, a full pass), the reference;
- peak memory of the first pass (tracemalloc) and the process's VmHWM;
- API (``--api-services``, 0 to skip): the controller (allocator.controller) against the
  protocol-level fake API server of the tests, over HTTP, from a cold start to every
  Service written (status, allocated-from annotation, Event): Services per second.

    .venv/bin/python bench/alloc_bench.py [--services 10000] [--api-services 2000] [--json FILE]

JSON keys: ``core`` (first_pass_s, restart_pass_s, one_more_pass_s,
one_more_allocate_only_s: lists of seconds, one per run), ``controller`` (services,
full_pass_s: seconds per run; one_change_ms: {"add", "edit", "delete"}: milliseconds per
run; one_change_median_ms: the medians; passes: how the incremental allocator counted
its passes), ``api`` when run.

The script exits 1 without numbers when a pass leaves a Service without its addresses,
gives one address to two Services that do not share it, or when the restart pass would
change anything: then it would be measuring the wrong thing.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import machine  # noqa: E402

from allocator.ipam import Allocation, allocate, invalid_groups  # noqa: E402
from allocator.service import parse_service, with_allocation  # noqa: E402
from lbroute.model import api  # noqa: E402

NS = "lbroute"
Obj = dict[str, Any]


def groups() -> list[Obj]:
    """Four groups, eight pools: IPv4 cidrs and ranges, IPv6 /64 and /112."""

    def group(name: str, pools: list[Obj], default: bool = False) -> Obj:
        return {
            "apiVersion": "lbroute.io/v1alpha1",
            "kind": "ServiceGroup",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"default": default, "pools": pools},
        }

    return [
        group("public", [{"cidr": "10.0.0.0/19"}, {"cidr": "10.0.32.0/20"},
                         {"cidr": "fd00:1::/64"}], default=True),
        group("campus", [{"range": "10.1.0.10-10.1.15.250", "subnet": "10.1.0.0/20"},
                         {"cidr": "fd00:2::/112"}]),
        group("edge", [{"cidr": "10.2.0.0/22"}, {"range": "10.2.8.0-10.2.9.255"}]),
        group("v6only", [{"cidr": "fd00:3::/64"}]),
    ]  # fmt: skip


def services(n: int, start: int = 0) -> list[Obj]:
    """n Services: by i mod 20, 12 single-stack IPv4 (default group), 3 dual-stack
    (RequireDualStack), 2 in campus (PreferDualStack), 1 in edge, 1 IPv6-only, and 1 in
    20 shares an address with its neighbour (same key, another port); 1 in 100 asks for
    an address of its own."""
    out = []
    for i in range(start, start + n):
        kind = i % 20
        annotations: dict[str, str] = {}
        spec: Obj = {
            "type": "LoadBalancer",
            "loadBalancerClass": "lbroute.io/lbroute",
            "ports": [{"protocol": "TCP", "port": 80 + (i % 2)}],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
        }
        if 12 <= kind < 15:
            spec.update(ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="RequireDualStack")
        elif kind in (15, 16):
            annotations["lbroute.io/service-group"] = "campus"
            spec.update(ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="PreferDualStack")
        elif kind == 17:
            annotations["lbroute.io/service-group"] = "edge"
        elif kind == 18:
            annotations["lbroute.io/service-group"] = "v6only"
            spec.update(ipFamilies=["IPv6"])
        elif kind == 19:
            annotations["lbroute.io/allow-shared-ip"] = f"pair-{i // 40}"
        if i % 100 == 7:
            annotations["lbroute.io/addresses"] = f"10.0.{8 + (i // 256) % 8}.{i % 256}"
        meta: Obj = {"name": f"svc-{i:05d}", "namespace": f"team-{i % 50:02d}", "uid": f"u{i}"}
        if annotations:
            meta["annotations"] = annotations
        out.append({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec,
                    "status": {"loadBalancer": {}}})  # fmt: skip
    return out


def one_pass(model: api.Model, objects: list[Obj]) -> Allocation:
    parsed = [parse_service(o, default_class=False) for o in objects]
    return allocate(
        model.service_groups,
        [p for p in parsed if p is not None],
        invalid_groups=invalid_groups(model.problems),
        namespace=NS,
    )


def check(result: Allocation, objects: list[Obj]) -> None:
    """Every Service addressed, no address given twice but where shared."""
    if result.failures:
        raise SystemExit(f"failures: {Counter(str(f.reason) for f in result.failures)}")
    holders: dict[str, list[str]] = {}
    share = {
        f"{o['metadata']['namespace']}/{o['metadata']['name']}": (
            o["metadata"]["namespace"],
            (o["metadata"].get("annotations") or {}).get("lbroute.io/allow-shared-ip"),
        )
        for o in objects
    }
    for a in result.assignments:
        if not a.addresses:
            raise SystemExit(f"{a.ref} got no address")
        for ip in a.addresses:
            holders.setdefault(str(ip), []).append(f"{a.ref.namespace}/{a.ref.name}")
    for ip, names in holders.items():
        keys = {share[n] for n in names}
        if len(names) > 1 and (len(keys) > 1 or None in {k for _, k in keys}):
            raise SystemExit(f"{ip} given to {names}")


def timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    times, out = [], None
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return times, out


def summary(times: list[float]) -> str:
    return f"{statistics.median(times):.3f} s [{min(times):.3f}-{max(times):.3f}]"


def vm_hwm() -> str:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "n/a"


def core(n: int, runs: int) -> dict[str, Any]:
    model = api.load(groups())
    if model.errors:
        raise SystemExit(f"the generated groups do not load: {model.errors}")
    objects = services(n)
    first_times, first = timed(lambda: one_pass(model, objects), runs)
    check(first, objects)
    by_ref = {(a.ref.namespace, a.ref.name): a for a in first.assignments}
    held = [
        with_allocation(o, a.addresses, a.allocated_from, label=a.label)
        for o in objects
        for a in [by_ref[(o["metadata"]["namespace"], o["metadata"]["name"])]]
    ]
    restart_times, restart = timed(lambda: one_pass(model, held), runs)
    if restart.changes():
        raise SystemExit(f"a restart would change {len(restart.changes())} Services")
    more = [*held, *services(1, start=n)]
    one_times, one = timed(lambda: one_pass(model, more), runs)
    if len(one.changes()) != 1:
        raise SystemExit(f"one new Service changed {len(one.changes())}")
    parsed = [p for p in (parse_service(o, default_class=False) for o in more) if p is not None]
    cached_times, _ = timed(lambda: allocate(model.service_groups, parsed, namespace=NS), runs)
    gc.collect()
    tracemalloc.start()
    one_pass(model, objects)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    addresses = sum(len(a.addresses) for a in first.assignments)
    return {
        "services": n,
        "addresses": addresses,
        "pools": len(first.pools),
        "first_pass_s": first_times,
        "restart_pass_s": restart_times,
        "one_more_pass_s": one_times,
        "one_more_allocate_only_s": cached_times,
        "services_per_s": n / statistics.median(first_times),
        "peak_tracemalloc_mib": peak / 2**20,
    }


def held_services(model: api.Model, n: int) -> list[Obj]:
    """n Services as a restarted allocator finds them: each with what a first pass gave
    it written (status, annotation, label) and a resourceVersion."""
    objects = services(n)
    first = one_pass(model, objects)
    by_ref = {(a.ref.namespace, a.ref.name): a for a in first.assignments}
    out = []
    for o in objects:
        a = by_ref[(o["metadata"]["namespace"], o["metadata"]["name"])]
        held = with_allocation(o, a.addresses, a.allocated_from, label=a.label)
        held["metadata"]["resourceVersion"] = "1"
        out.append(held)
    return out


def controller(n: int, runs: int) -> dict[str, Any]:
    """The controller's compute path after one change, against a cold start."""
    from allocator.controller import Allocator, Settings
    from lbroute.kube.client import api_client
    from lbroute.kube.directory import Snapshot
    from tests.fakeapi import FakeAPI

    model = api.load(groups())
    objects = held_services(model, n)
    base = Snapshot(objects=(*groups(), *objects))
    settings = Settings(identity="bench", namespace=NS)
    edited = n // 2 + 1  # a single-stack IPv4 Service of the default group
    free = "10.0.47.200"  # no Service holds it (checked below)

    def edit(o: Obj) -> Obj:
        out = copy.deepcopy(o)
        out["metadata"].setdefault("annotations", {})["lbroute.io/addresses"] = free
        out["metadata"]["resourceVersion"] = "2"
        return out

    def expect(snapshot: Snapshot, result: Allocation, changes: int) -> None:
        """The incremental pass gives what a full one does, with the expected changes."""
        parsed = [p for o in snapshot.objects if o["kind"] == "Service"
                  for p in [parse_service(o, default_class=False)] if p is not None]  # fmt: skip
        full = allocate(model.service_groups, parsed, namespace=NS)
        if result != full or result.changes() != full.changes():
            raise SystemExit("an incremental pass differs from a full one")
        if len(result.changes()) != changes:
            raise SystemExit(f"one change changed {len(result.changes())} Services")

    with tempfile.TemporaryDirectory() as tmp, FakeAPI(namespaces=(NS,)) as fake:
        client = api_client(str(fake.kubeconfig(Path(tmp) / "kubeconfig")))
        full_times: list[float] = []
        allocator: Any = None
        for _ in range(runs):
            allocator = Allocator(client, settings)
            times, (result, *_rest) = timed(functools.partial(allocator.compute, base), 1)
            full_times += times
        if result.changes():
            raise SystemExit(f"a restart would change {len(result.changes())} Services")
        if any(free in map(str, a.addresses) for a in result.assignments):
            raise SystemExit(f"{free} is held: pick another address for the edit")
        one: dict[str, list[float]] = {"add": [], "edit": [], "delete": []}
        for i in range(runs * 3):
            added = services(1, start=n + i)[0]
            added["metadata"]["resourceVersion"] = "1"
            k = edited + 20 * i
            before, after = base.objects[: 4 + k], base.objects[5 + k :]  # objects[k]
            cases = {
                "add": (Snapshot(objects=(*base.objects, added)), 1),
                "edit": (Snapshot(objects=(*before, edit(objects[k]), *after)), 1),
                "delete": (Snapshot(objects=(*before, *after)), 0),
            }
            for kind, (snapshot, changes) in cases.items():
                times, (result, *_rest) = timed(lambda s=snapshot: allocator.compute(s), 1)
                one[kind] += [t * 1000 for t in times]
                if i == 0:
                    expect(snapshot, result, changes)
                allocator.compute(base)  # back, for the next case
        passes = {"incremental": allocator.ipam.incremental, "full": allocator.ipam.full}
    return {
        "services": n,
        "full_pass_s": full_times,
        "one_change_ms": one,
        "one_change_median_ms": {k: statistics.median(v) for k, v in one.items()},
        "passes": passes,
    }


def through_api(n: int) -> dict[str, Any]:
    from allocator.controller import Allocator, Settings
    from lbroute.kube.client import api_client
    from lbroute.kube.reflector import Timing
    from tests.fakeapi import FakeAPI

    objects = services(n)
    with tempfile.TemporaryDirectory() as tmp, FakeAPI(namespaces=(NS,)) as fake:
        fake.put_all(groups())
        fake.put_all(objects)
        client = api_client(str(fake.kubeconfig(Path(tmp) / "kubeconfig")))
        settings = Settings(identity="bench", namespace=NS, timing=Timing(connect_timeout=5),
                            retry_period=0.5)  # fmt: skip
        allocator = Allocator(client, settings)
        allocator.recorder.bucket.rate = allocator.recorder.bucket.burst = 10**9  # every Event
        stop = threading.Event()
        start = time.perf_counter()
        thread = threading.Thread(target=allocator.run, args=(stop,), daemon=True)
        thread.start()
        while allocator.metrics.assigned._value.get() < n * 1.1 or allocator.passes < 1:
            if time.perf_counter() - start > 3600:
                raise SystemExit("the controller did not finish within an hour")
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        stop.set()
        thread.join(timeout=30)
        addressed = sum(
            1 for s in fake.objects("services") if (s["status"]["loadBalancer"].get("ingress"))
        )
        requests = len(fake.requests)
    if addressed != n:
        raise SystemExit(f"only {addressed} of {n} Services addressed through the API")
    return {"services": n, "seconds": elapsed, "services_per_s": n / elapsed,
            "requests": requests}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--api-services", type=int, default=2_000,
                        help="Services for the run through the fake API (0: skip it).")  # fmt: skip
    parser.add_argument("--json", type=Path, help="Also write the numbers here.")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": machine(),
        "core": core(args.services, args.runs),
    }
    c = result["core"]
    print(f"core: {c['services']} Services, {c['addresses']} addresses, {c['pools']} pools")
    print(f"  first pass (parse + allocate): {summary(c['first_pass_s'])}"
          f"  = {c['services_per_s']:,.0f} Services/s")  # fmt: skip
    print(f"  restart pass (nothing changes): {summary(c['restart_pass_s'])}")
    print(f"  one more Service:               {summary(c['one_more_pass_s'])}")
    print(f"  ... its Services parsed before (the controller keeps them by resourceVersion): "
          f"{summary(c['one_more_allocate_only_s'])}")  # fmt: skip
    print(f"  peak memory of a first pass: {c['peak_tracemalloc_mib']:.1f} MiB (tracemalloc)")
    result["controller"] = controller(args.services, args.runs)
    k = result["controller"]
    print(f"controller: compute after one change at {k['services']} Services "
          f"(median [min-max] of {len(k['one_change_ms']['add'])} runs)")  # fmt: skip
    for kind, ms in k["one_change_ms"].items():
        print(f"  one Service {kind + 'ed' if kind != 'delete' else 'deleted'}: "
              f"{statistics.median(ms):.1f} ms [{min(ms):.1f}-{max(ms):.1f}]")  # fmt: skip
    print(f"  a cold start (every Service parsed, a full pass): {summary(k['full_pass_s'])}")
    if args.api_services:
        result["api"] = through_api(args.api_services)
        a = result["api"]
        print(f"api: {a['services']} Services from a cold start to every status, annotation "
              f"and Event written: {a['seconds']:.1f} s = {a['services_per_s']:,.0f} Services/s "
              f"({a['requests']} requests)")  # fmt: skip
    result["vm_hwm"] = vm_hwm()
    print(f"process peak resident memory (VmHWM): {result['vm_hwm']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
