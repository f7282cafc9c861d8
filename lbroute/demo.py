"""The demo: the built-in example (examples/lab) in a lab of network namespaces.

Two nodes (node-a runs BIRD, node-b runs FRR) each run the node agent; an upstream
FRR router on the same link learns what they announce. The demo adds the example
Services, prints the upstream router's view (prefix, the protocol that carried it,
next hops), removes a Service to show the withdrawal, shows a local ServiceGroup
(an address on the nodes' own link, held by one node, seen in the upstream's ARP
table, handed over when that node's agent stops) and cleans
everything up.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lbroute.lab import UPSTREAM_V4, Lab, NodeSpec, run

NODES = [
    NodeSpec(name="node-a", router="bird", v4="10.0.0.11", v6="fd00::11"),
    NodeSpec(name="node-b", router="frr", v4="10.0.0.12", v6="fd00::12"),
]
BOTH = ("node-a", "node-b")
ETP_LOCAL = "ETP Local: node-a alone has a ready endpoint"
ISIS_FRR = "IS-IS: FRR on node-b speaks it, BIRD 2 on node-a has none"
EXPECTED: dict[str, tuple[str, tuple[str, ...], str]] = {
    "192.0.2.0/24": ("bgp", BOTH, ""),
    "192.0.2.20/32": ("bgp", ("node-a",), ETP_LOCAL),
    "2001:db8:1::/64": ("bgp", BOTH, ""),
    "198.51.100.0/24": ("ospf", BOTH, ""),
    "2001:db8:2::/64": ("ospf", BOTH, ""),
    "203.0.113.0/25": ("rip", BOTH, ""),
    "2001:db8:3::/64": ("ripng", BOTH, ""),
    "203.0.113.128/25": ("isis", ("node-b",), ISIS_FRR),
    "2001:db8:4::/64": ("isis", ("node-b",), ISIS_FRR),
}
"""Prefix -> the protocol that carries it, the nodes behind its next hops (ECMP where
there are two) and why there is one."""
REMOVED = "default/legacy-1"
"""The Service the demo removes: the prefixes it alone used are withdrawn."""
LOCAL = "10.0.0.50"
"""The local Service's address, on the nodes' own link (10.0.0.0/24)."""
LOCAL_OBJECTS = f"""\
# A local ServiceGroup: its addresses come from the nodes' own link, so no router
# carries them. One node, elected through a Lease, puts the address on its eth0 and
# answers ARP for it; when its agent stops, another takes over (gratuitous ARP).
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {{name: lan, namespace: lbroute}}
spec:
  announce: local
  pools: [{{range: 10.0.0.50-10.0.0.59}}]
---
apiVersion: v1
kind: Service
metadata: {{name: lan-1, namespace: default}}
spec: {{type: LoadBalancer, loadBalancerClass: lbroute.io/lbroute}}
status: {{loadBalancer: {{ingress: [{{ip: {LOCAL}}}]}}}}
"""
"""Added last (not in examples/lab, whose copies run in tests without --lease-dir)."""


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def run_demo(example: Path, say: Callable[[str], None] = print, *, tag: str = "demo") -> int:
    """Run the demo; returns a process exit code (0 when the verdict finds everything as
    expected). ``tag`` prefixes the namespaces' names."""
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="lbroute-demo-"))
    source = workdir / "manifests"
    source.mkdir()
    leases = workdir / "leases"  # shared by the agents, as on one host
    leases.mkdir()
    shutil.copy(example / "cluster.yaml", source / "cluster.yaml")
    lab = Lab(workdir=workdir / "lab", nodes=NODES, upstream_router="frr", tag=tag)
    try:
        say("== Building the lab: node-a (BIRD) and node-b (FRR) on one link with an upstream FRR")
        lab.start()
        for spec in NODES:
            lab.start_agent(spec.name, source, "--lease-dir", str(leases))
        say("== Agents started on the example cluster (ServiceGroups, Peers, NodeAgents, Nodes)")
        lab.wait_for(lambda: _sessions_up(lab), timeout=60)
        say("   BGP sessions established from both nodes\n")

        say("== Adding the example Services")
        started = time.monotonic()
        _write_services(example / "services.yaml", source)
        lab.wait_for(lambda: _complete(lab), timeout=90)
        took = time.monotonic() - started
        say(f"   every prefix is upstream, with all its next hops, after {took:.1f} s\n")
        _print_view(lab, say)

        carried = _services_by_prefix(example / "services.yaml")
        alone = sorted(p for p, names in carried.items() if names == [REMOVED])
        say(f"\n== Removing Service {REMOVED} (the only one in {' and '.join(alone)})")
        started = time.monotonic()
        (source / f"service-{REMOVED.partition('/')[2]}.yaml").unlink()
        lab.wait_for(lambda: all(lab.route(p) is None for p in alone), timeout=90)
        say(f"   {' and '.join(alone)} withdrawn after {time.monotonic() - started:.1f} s; "
            "the other prefixes stay\n")  # fmt: skip

        say("== lbroute status on node-a")
        say(_status_text(lab, "node-a"))

        holder = _show_local(lab, source, leases, say)
        return _verdict(lab, carried, holder, say)
    except TimeoutError as exc:
        say(f"demo failed: {exc}")
        for spec in NODES:
            log = lab.members[spec.name].agent_log if spec.name in lab.members else None
            if log is not None and log.exists():
                lines = [line for line in log.read_text().splitlines() if "watchfiles" not in line]
                say(f"--- agent log of {spec.name}:\n" + "\n".join(lines[-25:]))
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        say("== Cleaning up: stopping agents and routers, deleting namespaces")
        lab.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _show_local(lab: Lab, source: Path, leases: Path, say: Callable[[str], None]) -> str | None:
    """The local ServiceGroup: who holds LOCAL, the upstream's ARP entry, a handover.
    Returns the node that holds LOCAL at the end (None: no single node)."""
    say(f"== Adding a local ServiceGroup (announce: local) and Service default/lan-1 "
        f"at {LOCAL}, on the nodes' own link")  # fmt: skip
    for member in lab.members.values():  # localInterface "default": its route's link
        member.ns.ip("route", "add", "default", "via", UPSTREAM_V4, "dev", "eth0")
    started = time.monotonic()
    (source / "local.yaml").write_text(LOCAL_OBJECTS, encoding="utf-8")
    holder = lab.wait_for(lambda: _holder(lab), timeout=30)
    say(f"   {holder} holds {LOCAL} on its eth0 after {time.monotonic() - started:.1f} s "
        f"(the other node does not)")  # fmt: skip
    entry = next((e for e in lab.status(holder).get("local", []) if
                  str(e.get("address", "")).startswith(f"{LOCAL}/")), None)  # fmt: skip
    if entry is not None:
        say(
            f"   lbroute status on {holder}: {entry['address']} on {entry['interface']}, "
            f"group {entry['group']}, services {', '.join(entry['services'])}"
        )
    assert lab.upstream is not None
    lab.upstream.exec("ping", "-n", "-c", "1", "-W", "1", LOCAL, check=False)
    say(f"   upstream (the client) after a ping: {_neighbour_line(lab)}  "
        f"= {holder}'s eth0 {_mac(lab, holder)}")  # fmt: skip

    say(f"\n== Stopping the agent on {holder} (SIGTERM): it hands {LOCAL} over")
    agent = lab.members[holder].agent
    assert agent is not None
    started = time.monotonic()
    agent.send_signal(signal.SIGTERM)
    new = lab.wait_for(lambda: _holder(lab, other_than=holder), timeout=10)
    took = time.monotonic() - started
    mac = _mac(lab, new)
    lab.wait_for(lambda: mac in _neighbour_line(lab), timeout=5)
    moved = time.monotonic() - started
    say(
        f"   {new} holds {LOCAL} after {took:.2f} s; the upstream's entry moved to "
        f"{new}'s MAC after {moved:.2f} s (gratuitous ARP, no ping needed):"
    )
    say(f"   {_neighbour_line(lab)}")
    lab.stop_agent(holder)
    lab.start_agent(holder, source, "--lease-dir", str(leases))
    time.sleep(2)  # its agent is back and elects too: the address stays where it is
    final = _holder(lab)
    say(f"   the agent on {holder} started again; 2 s later {LOCAL} is on "
        f"{final or 'no single node'}")  # fmt: skip
    return final


def _services_by_prefix(services: Path) -> dict[str, list[str]]:
    """Prefix of EXPECTED -> the Services (``namespace/name``) whose address it carries
    (the most specific prefix holding the address)."""
    found: dict[str, list[str]] = {prefix: [] for prefix in EXPECTED}
    for doc in yaml.safe_load_all(services.read_text(encoding="utf-8")):
        if not isinstance(doc, dict) or doc.get("kind") != "Service":
            continue
        meta = doc["metadata"]
        name = f"{meta.get('namespace', 'default')}/{meta['name']}"
        for ingress in doc.get("status", {}).get("loadBalancer", {}).get("ingress", []):
            address = ipaddress.ip_address(ingress["ip"])
            holding = [ipaddress.ip_network(p) for p in found]
            holding = [n for n in holding if address in n]
            if holding:  # the most specific prefix carries it (the ETP Local /32)
                names = found[str(max(holding, key=lambda n: n.prefixlen))]
                if name not in names:
                    names.append(name)
    return found


def _verdict(
    lab: Lab, carried: dict[str, list[str]], holder: str | None, say: Callable[[str], None]
) -> int:
    """The upstream's table and the local address against what the example asks for, one
    row each; 0 when every row is as expected, else 1."""
    say("\n== Verdict: the upstream router's table against what the example asks for")
    say(f"   {'PREFIX':<18} {'SERVICES':<30} {'PROTOCOL':<8} {'NEXT HOPS':<16} RESULT")
    rows = differ = withdrawn = 0
    for prefix, (proto, nodes, why) in EXPECTED.items():
        names = [n for n in carried[prefix] if n != REMOVED]
        route = lab.route(prefix)
        found = ", ".join(lab.via(route)) if route is not None else "-"
        if not names:
            services = f"(none: {REMOVED} removed)"
            ok = route is None
            result = "withdrawn, as expected" if ok else "still announced with no Service"
            withdrawn += ok
        else:
            services = ", ".join(names)
            ok = route is not None and route.proto == proto and lab.via(route) == nodes
            if ok:
                result = f"as expected ({why})" if why else "as expected"
            elif route is None:
                result = f"DIFFERS: missing (expected {proto} via {', '.join(nodes)})"
            else:
                result = f"DIFFERS: expected {proto} via {', '.join(nodes)}"
        shown = route.proto if route is not None else proto
        say(f"   {prefix:<18} {services:<30} {shown:<8} {found:<16} {result}")
        rows += 1
        differ += not ok
    ok = holder is not None
    result = "as expected (one node answers ARP)" if ok else "DIFFERS: not on exactly one node"
    say(f"   {LOCAL + '/local':<18} {'default/lan-1':<30} {'arp':<8} {holder or '-':<16} {result}")
    rows += 1
    differ += not ok
    announced = rows - 1 - withdrawn
    if differ:
        say(f"   verdict: {differ} of {rows} rows differ from the example (see DIFFERS above)")
        return 1
    say(
        f"   verdict: all {rows} rows as expected: {announced} prefixes announced with their "
        f"next hops, {withdrawn} withdrawn with their last Service, 1 local address held "
        "by one node"
    )
    return 0


def _holder(lab: Lab, other_than: str | None = None) -> str | None:
    """The one node with LOCAL on its eth0 (None while none or both have it, or while
    it is ``other_than``)."""
    found = [
        name
        for name, member in lab.members.items()
        if any(
            info.get("local") == LOCAL
            for link in json.loads(member.ns.ip("-j", "addr", "show", "dev", "eth0") or "[]")
            for info in link.get("addr_info", [])
        )
    ]
    return found[0] if len(found) == 1 and found[0] != other_than else None


def _mac(lab: Lab, node: str) -> str:
    links = json.loads(lab.members[node].ns.ip("-j", "link", "show", "dev", "eth0"))
    return str(links[0]["address"])


def _neighbour_line(lab: Lab) -> str:
    """The upstream's neighbour entry for LOCAL, as ``ip neigh`` prints it."""
    assert lab.upstream is not None
    return lab.upstream.ip("neigh", "show", LOCAL, "dev", "br0").strip() or "(no entry)"


def _write_services(services: Path, source: Path) -> None:
    for doc in yaml.safe_load_all(services.read_text(encoding="utf-8")):
        if not isinstance(doc, dict):
            continue
        name = doc["metadata"]["name"]
        kind = doc["kind"].lower()
        (source / f"{kind}-{name}.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")


def _sessions_up(lab: Lab) -> bool:
    for spec in NODES:
        sessions = lab.status(spec.name).get("sessions", [])
        bgp = [s for s in sessions if s["protocol"] == "bgp"]
        if len(bgp) < 2 or any(s["state"] != "Established" for s in bgp):
            return False
    return True


def _complete(lab: Lab) -> bool:
    routes = {r.prefix: r for r in lab.routes()}
    for prefix, (proto, nodes, _) in EXPECTED.items():
        route = routes.get(prefix)
        if route is None or route.proto != proto or lab.via(route) != nodes:
            return False
    return True


def _print_view(lab: Lab, say: Callable[[str], None]) -> None:
    say("== The upstream router's view (its kernel table; learned routes only)")
    say(f"   {'PREFIX':<20} {'PROTOCOL':<9} NEXT HOPS")
    for route in lab.routes():
        hops = ", ".join(f"{lab.node_of(h)} ({h})" for h in route.nexthops)
        say(f"   {route.prefix:<20} {route.proto:<9} {hops}")


def _status_text(lab: Lab, node: str) -> str:
    import sys

    out = run(
        sys.executable, "-m", "lbroute", "status",
        "--status-file", str(lab.members[node].status_file), check=False,
    )  # fmt: skip
    return out.stdout + out.stderr
