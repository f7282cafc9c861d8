#!/usr/bin/env python3
"""What one agent lists, receives and keeps from the Kubernetes API, watching every
Service and EndpointSlice (``--watch all``, as before) or only lbroute's (``labeled``).

The protocol-level fake API server of the tests (tests/fakeapi.py) holds ``--services``
Services in 50 namespaces, ``--lbroute`` of them lbroute's (``type: LoadBalancer``, class
lbroute.io/lbroute, an address and the allocator's ``lbroute.io/allocated-group`` label),
the rest ClusterIP, and one EndpointSlice per Service with ``--endpoints`` endpoints in
all (addresses, conditions, nodeName, zone, targetRef: what the API holds; the fake copies
the Service's labels onto it as the EndpointSlice controller does). For each mode, a
fresh Python process runs the agent's source (lbroute.kube.reflector.KubernetesSource,
the agent's Timing, the real ``kubernetes`` client over HTTP) until its first snapshot,
then the parent changes one endpoint of a ClusterIP Service's slice and then one of an
lbroute Service's slice. Measured per mode:

- what the lists return: objects and bytes of JSON (the fake's answer to the agent's
  lists of Services and EndpointSlices, its label selector applied);
- watch events the agent receives for each of the two changes (snapshots it yields);
- VmRSS of that process after its first snapshot (the source's view, Python and the
  client: not the whole agent, whose other parts keep the parsed Services), and the time
  to the first snapshot.

    .venv/bin/python bench/watch_bench.py [--services 10000] [--endpoints 100000] \
        [--lbroute 1000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import command_line, endpoint_slice, log, machine, write_json  # noqa: E402

from lbroute.model.vocabulary import SERVICE_GROUP_LABEL  # noqa: E402
from tests.fakeapi import FakeAPI, labels_match, parse_label_selector  # noqa: E402

NS = "lbroute"
Obj = dict[str, Any]

CHILD = r"""
import json, sys, threading, time
from pathlib import Path
from lbroute.kube.client import api_client
from lbroute.kube.reflector import KubernetesSource, Watch
from nodeagent.main import AGENT_TIMING

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

t0 = time.perf_counter()
source = KubernetesSource(api_client(sys.argv[1]), node="node-0", namespace="lbroute",
                          timing=AGENT_TIMING, watch=Watch(sys.argv[2]))
stop = threading.Event()
count = 0
for snapshot in source.snapshots(stop):
    count += 1
    kinds = {}
    for o in snapshot.objects:
        kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
    print(json.dumps({"snapshot": count, "seconds": time.perf_counter() - t0,
                      "rss_kib": rss(), "objects": kinds}), flush=True)
"""


def service(i: int, ours: bool) -> Obj:
    ns = f"ns-{i % 50}"
    meta: Obj = {"name": f"svc-{i:05d}", "namespace": ns}
    spec: Obj = {
        "type": "ClusterIP",
        "clusterIP": f"10.96.{i >> 8 & 255}.{i & 255}",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        "selector": {"app": f"app-{i}"},
    }
    status: Obj = {"loadBalancer": {}}
    if ours:
        meta["labels"] = {SERVICE_GROUP_LABEL: "public"}
        meta["annotations"] = {"lbroute.io/allocated-from": "public:198.18.64.0/18"}
        spec.update(type="LoadBalancer", loadBalancerClass="lbroute.io/lbroute")
        status = {"loadBalancer": {"ingress": [{"ip": f"198.18.{64 + i // 250}.{i % 250 + 1}"}]}}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec, "status": status}


def cluster_objects(services: int, endpoints: int, lbroute: int) -> list[Obj]:
    group = {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "ServiceGroup",
        "metadata": {"name": "public", "namespace": NS},
        "spec": {"pools": [{"cidr": "198.18.64.0/18"}]},
        "status": {"labeledServices": True},
    }
    every = max(1, services // max(1, lbroute)) if lbroute else services + 1
    objs: list[Obj] = [group]
    per = endpoints // services
    for i in range(services):
        objs.append(service(i, ours=lbroute > 0 and i % every == 0 and i // every < lbroute))
        objs.append(endpoint_slice(i, per, i * per))
    return objs


def listed(fake: FakeAPI, selector: str) -> dict[str, int]:
    """What a list of Services and of EndpointSlices with ``selector`` returns."""
    wanted = parse_label_selector(selector)
    out: dict[str, int] = {}
    for kind in ("services", "endpointslices"):
        items = [
            o for o in fake.objects(kind) if labels_match(wanted, o["metadata"].get("labels") or {})
        ]
        out[f"{kind}_objects"] = len(items)
        out[f"{kind}_bytes"] = len(json.dumps({"items": items}))
    return out


def touch(fake: FakeAPI, name: str, namespace: str) -> None:
    """One endpoint of this slice stops being ready."""
    obj = fake.get("endpointslices", name, namespace)
    assert obj is not None
    obj["endpoints"][0]["conditions"]["ready"] = not obj["endpoints"][0]["conditions"]["ready"]
    fake.put("endpointslices", obj, namespace)


def run_mode(fake: FakeAPI, kubeconfig: Path, mode: str, plain: str | None, ours: str) -> Obj:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(kubeconfig), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert child.stdout is not None
    try:
        first = json.loads(child.stdout.readline())

        def events_after(name: str) -> int:
            before = snapshots()
            touch(fake, f"{name}-abcde", f"ns-{int(name[4:]) % 50}")
            time.sleep(1.5)
            return snapshots() - before

        seen: list[Obj] = []

        def snapshots() -> int:
            import select

            while select.select([child.stdout], [], [], 0.0)[0]:
                line = child.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    break
                seen.append(json.loads(line))
            return len(seen)

        other = events_after(plain) if plain is not None else None
        lbroute = events_after(ours)
    finally:
        child.terminate()
        child.wait(timeout=10)
    return {
        "first_snapshot_seconds": round(first["seconds"], 2),
        "rss_mib": round(first["rss_kib"] / 1024, 1),
        "objects": first["objects"],
        "events_for_a_clusterip_endpoint_change": other,
        "events_for_an_lbroute_endpoint_change": lbroute,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--endpoints", type=int, default=100000)
    parser.add_argument("--lbroute", type=int, default=1000, help="how many are lbroute's")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: Obj = {
        "command": command_line(),
        "machine": machine(),
        "services": args.services,
        "endpoints": args.endpoints,
        "lbroute": args.lbroute,
        "modes": {},
    }
    objs = cluster_objects(args.services, args.endpoints, args.lbroute)
    ours = next(o["metadata"]["name"] for o in objs if SERVICE_GROUP_LABEL in (
        o["metadata"].get("labels") or {}) and o["kind"] == "Service")  # fmt: skip
    plain = next(
        (o["metadata"]["name"] for o in objs if o.get("spec", {}).get("type") == "ClusterIP"),
        None,
    )
    with tempfile.TemporaryDirectory() as tmp, FakeAPI(namespaces=(NS,)) as fake:
        log(f"loading {len(objs)} objects into the fake API")
        fake.put_all(objs)
        kubeconfig = fake.kubeconfig(Path(tmp) / "kubeconfig")
        for mode, selector in (("all", ""), ("labeled", SERVICE_GROUP_LABEL)):
            log(f"--watch {mode}")
            row = listed(fake, selector)
            row.update(run_mode(fake, kubeconfig, mode, plain, ours))
            results["modes"][mode] = row
            log(json.dumps(row))
    a, b = results["modes"]["all"], results["modes"]["labeled"]
    total = a["services_bytes"] + a["endpointslices_bytes"]
    kept = b["services_bytes"] + b["endpointslices_bytes"]
    print(
        f"{args.services} Services ({args.lbroute} lbroute's), {args.endpoints} endpoints: "
        f"lists {total / 1e6:.1f} MB -> {kept / 1e6:.1f} MB, "
        f"events for a ClusterIP endpoint change {a['events_for_a_clusterip_endpoint_change']}"
        f" -> {b['events_for_a_clusterip_endpoint_change']}, "
        f"RSS {a['rss_mib']} -> {b['rss_mib']} MiB, "
        f"first snapshot {a['first_snapshot_seconds']} -> {b['first_snapshot_seconds']} s"
    )
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
