"""``announce: local`` end to end: real agents, a shared lease directory, a real LAN.

A Linux bridge in a namespace of its own is the LAN; three node namespaces (n1, n2, n3)
and a client are plugged into it. Each node runs ``lbroute agent`` from one manifest
directory, sharing ``--lease-dir`` (the agents of one host). No router daemon runs:
local ServiceGroups need none, the agents only fail to reach BIRD and say so. What the
client sees is read with its own tools (arping, ndisc6, ``ip neigh``).

Covered: one responder per local address, the elected node's (IPv4 ARP and IPv6 ND);
two Services sharing an IP on one node; an operator's address on the NIC survives;
the holder's agent killed (SIGKILL): another node takes over within the bound
(lifetime + duration + renew, about 3 s at the defaults) and only one answers; a
graceful stop hands over in under a second and the client's entry moves by GARP; a
restart with unchanged inputs neither moves nor re-adds the address; a node failure
(agent stopped, LAN port down); ETP Local: the address follows the ready endpoint;
kube-ipvs0 answering with ARP not strict is reported; the same through the fake API
server with Leases in it; the outage rules (reads failing: keep, writes failing:
release before the Lease could expire).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbroute.lab import agent_command
from tests.fakeapi import FakeAPI
from tests.netns.lab import Lan, Netns
from tests.netns.test_local_nic import arp_responders, nd_responders, neighbour

V4, V6 = "10.77.0.50", "fd77::50"
SHARED = "10.77.0.51"
ETP = "10.77.0.52"
OPERATOR = "10.77.0.99"
NODES = ("n1", "n2", "n3")
HOSTS = {"n1": "11", "n2": "12", "n3": "13", "client": "100"}
CRASH_BOUND = 3.5
"""Failover after SIGKILL at the defaults: the Lease duration (2 s) + a renew interval
(0.5 s) + margin for the agents' steps on a loaded machine."""

GROUP = {
    "apiVersion": "lbroute.io/v1alpha1",
    "kind": "ServiceGroup",
    "metadata": {"name": "lan", "namespace": "lbroute"},
    "spec": {
        "announce": "local",
        "pools": [{"range": "10.77.0.50-10.77.0.59"}, {"range": "fd77::50-fd77::59"}],
    },
}

CREATED = textwrap.dedent(
    """
    import json
    from nodeagent.netlink.lan import Lan
    with Lan() as lan:
        s = lan.snapshot()
    print(json.dumps({a.address: a.created for a in s.addresses if a.proto == 0x4C}))
    """
)


def service(name: str, *addresses: str, local: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "LoadBalancer", "loadBalancerClass": "lbroute.io/lbroute"}
    if local:
        spec["externalTrafficPolicy"] = "Local"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": a} for a in addresses]}},
    }


def endpoints(service_name: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name}-x",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.0.5"], "conditions": {"ready": True}, "nodeName": node}
        ],
    }


def write_objects(path: Path, objects: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump_all(objects, sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class Site:
    lan: Lan
    nodes: dict[str, Netns]
    client: Netns
    mac: dict[str, str]
    tmp: Path
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def source(self) -> Path:
        return self.tmp / "manifests"

    def start(self, name: str, *source: str) -> None:
        """Run ``name``'s agent on the manifest directory and the lease directory, or
        on what ``source`` says (``--kubernetes ...``)."""
        home = self.tmp / name
        home.mkdir(exist_ok=True)
        with (home / "agent.log").open("ab") as log:
            self.agents[name] = subprocess.Popen(
                agent_command(
                    self.nodes[name].name,
                    name,
                    router="bird",
                    config=home / "bird.conf",
                    socket=home / "bird.ctl",
                    status=home / "status.json",
                    source=None if source else self.source,
                    extra=source or ("--lease-dir", str(self.tmp / "leases")),
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def signal(self, name: str, sig: signal.Signals) -> None:
        proc = self.agents.pop(name)
        proc.send_signal(sig)
        proc.wait(timeout=15)

    def stop_all(self) -> None:
        for name in list(self.agents):
            proc = self.agents.pop(name)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def holders(self, address: str) -> list[str]:
        """The nodes with ``address`` on their eth0."""
        found = []
        for name, ns in self.nodes.items():
            shown = json.loads(ns.ip("-j", "addr", "show", "dev", "eth0"))
            if any(a["local"] == address for link in shown for a in link.get("addr_info", [])):
                found.append(name)
        return found

    def wait(self, check: Callable[[], bool], timeout: float, what: str) -> float:
        start = time.monotonic()
        while not check():
            if time.monotonic() - start > timeout:
                logs = {
                    n: (self.tmp / n / "agent.log").read_text()[-3000:]
                    for n in NODES
                    if (self.tmp / n / "agent.log").exists()
                }
                pytest.fail(f"{what} not within {timeout}s; agent logs: {logs}")
            time.sleep(0.02)
        return time.monotonic() - start

    def one_holder(self, address: str, timeout: float = 20, not_: str | None = None) -> str:
        def check() -> bool:
            h = self.holders(address)
            return len(h) == 1 and h[0] != not_

        self.wait(check, timeout, f"exactly one holder of {address}")
        return self.holders(address)[0]

    def ping(self, address: str, seconds: float) -> subprocess.Popen[str]:
        """Ping ``address`` from the client every 100 ms for ``seconds``."""
        return subprocess.Popen(
            ["ip", "netns", "exec", self.client.name, "ping", "-n", "-i", "0.1", "-W", "1",
             "-c", str(int(seconds * 10)), address],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    def status(self, name: str) -> dict[str, Any]:
        return dict(json.loads((self.tmp / name / "status.json").read_text()))

    def created(self, name: str) -> dict[str, int]:
        done = self.nodes[name].exec(sys.executable, "-c", CREATED)
        return dict(json.loads(done.stdout))


def lost_pings(proc: subprocess.Popen[str]) -> int:
    out, _ = proc.communicate(timeout=30)
    found = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert found, out
    return int(found.group(1)) - int(found.group(2))


@pytest.fixture(autouse=True)
def _probes() -> None:
    for tool in ("arping", "ndisc6"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (run make install)")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    lan = Lan("ll")
    nodes = {name: Netns(name) for name in NODES}
    client = Netns("lc")
    every = {**nodes, "client": client}
    s = Site(lan=lan, nodes=nodes, client=client, mac={}, tmp=tmp_path)
    try:
        lan.create()
        for name, ns in every.items():
            ns.create()
            s.mac[name] = lan.plug(ns)
            ns.ip("addr", "add", f"10.77.0.{HOSTS[name]}/24", "dev", "eth0")
            ns.ip("addr", "add", f"fd77::{HOSTS[name]}/64", "dev", "eth0", "nodad")
            ns.ip("route", "add", "default", "via", "10.77.0.1")
            ns.ip("-6", "route", "add", "default", "via", "fd77::1")
            if name != "client":
                ns.add_ifb("kube-lb0")  # no dummy module here; the agent adopts it
        nodes["n1"].ip("addr", "add", f"{OPERATOR}/24", "dev", "eth0")
        s.source.mkdir()
        (tmp_path / "leases").mkdir()
        write_objects(s.source / "group.yaml", [GROUP])
        write_objects(
            s.source / "services.yaml",
            [service("web", V4, V6), service("a", SHARED), service("b", SHARED)],
        )
        yield s
    finally:
        s.stop_all()
        for ns in every.values():
            ns.delete()
        lan.delete()


def start_all(site: Site) -> str:
    for name in NODES:
        site.start(name)
    return site.one_holder(V4)


def test_one_responder_the_elected_node(site: Site) -> None:
    holder = start_all(site)
    holder6 = site.one_holder(V6)
    shared = site.one_holder(SHARED)
    assert arp_responders(site.client, V4) == [site.mac[holder]] * 3
    assert set(nd_responders(site.client, V6)) == {site.mac[holder6]}
    assert arp_responders(site.client, SHARED) == [site.mac[shared]] * 3
    site.wait(lambda: bool(site.status(shared).get("local")), 10, "status lists local")
    entry = next(e for e in site.status(shared)["local"] if e["address"] == f"{SHARED}/24")
    assert entry["interface"] == "eth0"
    assert entry["group"] == "lbroute/lan"
    assert entry["services"] == ["default/a", "default/b"]
    # The operator's own address on n1's NIC survives every agent.
    site.stop_all()
    assert OPERATOR in [
        a["local"]
        for link in json.loads(site.nodes["n1"].ip("-j", "addr", "show", "dev", "eth0"))
        for a in link["addr_info"]
    ]
    assert site.holders(V4) == []


def test_agent_killed_another_takes_over(site: Site) -> None:
    holder = start_all(site)
    time.sleep(1)
    site.signal(holder, signal.SIGKILL)
    start = time.monotonic()
    new = site.one_holder(V4, timeout=10, not_=holder)
    took = time.monotonic() - start
    assert took < CRASH_BOUND, f"failover took {took:.2f}s"
    assert arp_responders(site.client, V4) == [site.mac[new]] * 3
    print(f"crash failover {took:.2f}s")


def test_graceful_stop_hands_over_at_once(site: Site) -> None:
    holder = start_all(site)
    site.client.exec("ping", "-c", "1", "-W", "1", V4)
    assert neighbour(site.client, V4) == site.mac[holder]
    time.sleep(1)
    pings = site.ping(V4, seconds=3)
    time.sleep(1)
    start = time.monotonic()
    site.agents[holder].send_signal(signal.SIGTERM)
    released = site.wait(lambda: holder not in site.holders(V4), 5, "released")
    new = site.one_holder(V4, timeout=5, not_=holder)
    took = time.monotonic() - start
    lost = lost_pings(pings)
    print(f"released after {released:.2f}s, {lost} pings lost at 100 ms")
    assert lost <= 1
    assert took < 1.0, f"graceful handover took {took:.2f}s"
    site.wait(lambda: neighbour(site.client, V4) == site.mac[new], 3, "client entry moved")
    print(f"graceful handover {took:.2f}s")


def test_restart_keeps_the_address(site: Site) -> None:
    # Long enough a lifetime that the agent is back before its addresses expire.
    agent = {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "NodeAgent",
        "metadata": {"name": "all", "namespace": "lbroute"},
        "spec": {"localLease": {"durationSeconds": 8, "renewSeconds": 1}},
    }
    write_objects(site.source / "agent.yaml", [agent])
    holder = start_all(site)
    time.sleep(2)
    before = site.created(holder)
    site.signal(holder, signal.SIGKILL)
    site.start(holder)
    site.wait(
        lambda: (site.tmp / holder / "agent.log").read_text().count("membership lease") >= 2,
        20,
        "the restarted agent renewing its lease",
    )
    time.sleep(2)
    log = (site.tmp / holder / "agent.log").read_text()
    assert "localLease" not in log, "the NodeAgent's lease settings were not taken"
    assert site.holders(V4) == [holder]
    assert site.created(holder) == before


def test_node_failure(site: Site) -> None:
    holder = start_all(site)
    site.client.exec("ping", "-c", "1", "-W", "1", V4)
    time.sleep(1)
    pings = site.ping(V4, seconds=6)
    time.sleep(1)
    site.signal(holder, signal.SIGKILL)
    site.nodes[holder].ip("link", "set", "eth0", "down")
    start = time.monotonic()
    new = site.one_holder(V4, timeout=10, not_=holder)
    took = time.monotonic() - start
    site.wait(lambda: neighbour(site.client, V4) == site.mac[new], 3, "client entry moved")
    assert took < CRASH_BOUND
    lost = lost_pings(pings)
    print(f"node failure takeover {took:.2f}s, {lost} pings lost at 100 ms")
    assert lost <= CRASH_BOUND * 10


def test_etp_local_follows_the_endpoint(site: Site) -> None:
    write_objects(
        site.source / "etp.yaml", [service("lcl", ETP, local=True), endpoints("lcl", "n2")]
    )
    start_all(site)
    site.wait(lambda: site.holders(ETP) == ["n2"], 10, "ETP address on n2")
    write_objects(
        site.source / "etp.yaml", [service("lcl", ETP, local=True), endpoints("lcl", "n3")]
    )
    site.wait(lambda: site.holders(ETP) == ["n3"], 10, "ETP address on n3")
    assert arp_responders(site.client, ETP) == [site.mac["n3"]] * 3


def test_kube_ipvs0_without_strict_arp_is_reported(site: Site) -> None:
    ns = site.nodes["n2"]
    ns.add_ifb("kube-ipvs0")  # kube-proxy's is a dummy; this kernel has none
    ns.ip("addr", "add", f"{V4}/32", "dev", "kube-ipvs0")
    ns.sysctl("net.ipv4.conf.all.arp_ignore", "0")
    start_all(site)

    def reported() -> bool:
        try:
            return "kube-ipvs0 holds local address" in site.status("n2").get("arp", "")
        except (OSError, ValueError):
            return False

    site.wait(reported, 10, "the ARP finding in n2's status")
    doc = site.status("n2")
    assert "strictARP: true" in doc["arp"]
    assert any("kube-ipvs0" in p for p in doc["problems"])
    assert "arp" not in site.status("n1")


def test_through_the_api_with_leases(site: Site) -> None:
    objects = [GROUP, service("web", V4, V6), service("etp", ETP, local=True)]
    with FakeAPI(
        host=f"10.77.0.{HOSTS['client']}", netns=site.client.name, namespaces=("default", "lbroute")
    ) as api:
        api.put_all(objects)
        kubeconfig = api.kubeconfig(site.tmp / "kubeconfig")
        kubeconfig.chmod(0o644)
        args = ("--kubernetes", "--kubeconfig", str(kubeconfig), "--namespace", "lbroute")
        for name in NODES:
            site.start(name, *args)
        holder = site.one_holder(V4, timeout=30)
        holder6 = site.one_holder(V6, timeout=30)
        # The first agent up may hold the addresses before the others have written their
        # membership Leases (they keep them: a claim holds); all three follow.
        site.wait(
            lambda: (
                {lease["metadata"]["name"] for lease in api.objects("leases", "lbroute")}
                == {f"lbroute-node-{n}" for n in NODES}
            ),
            10,
            "a membership Lease of each node",
        )
        assert site.one_holder(V4) == holder and site.one_holder(V6) == holder6
        assert arp_responders(site.client, V4) == [site.mac[holder]] * 3

        def annotation() -> str | None:
            web = api.get("services", "web")
            assert web is not None
            return (web["metadata"].get("annotations") or {}).get("lbroute.io/announcing")

        def local_held() -> tuple[str, str, str] | None:
            lan = api.get("servicegroups", "lan", "lbroute")
            assert lan is not None
            for c in (lan.get("status") or {}).get("conditions") or ():
                if c["type"] == "LocalHeld":
                    return c["status"], c["reason"], c["message"]
            return None

        entries = {f"{holder}/eth0/{V4}", f"{holder6}/eth0/{V6}"}
        site.wait(
            lambda: annotation() == ",".join(sorted(entries)),
            10,
            f"lbroute.io/announcing naming node/interface/address ({sorted(entries)})",
        )
        withdrawn = (
            f"{ETP} (Services default/etp): withdrawn: no node has a ready endpoint of "
            "default/etp (among the live nodes that the ServiceGroup selects with an "
            "interface on the address's subnet)"
        )

        def held(v4: str, v6: str) -> tuple[str, str, str]:
            lines = ["1 of 3 local addresses held by no node:", withdrawn]
            lines.append(f"2 held: {V4} on {v4}, {V6} on {v6}")
            return "False", "NoHolder", "\n".join(lines)

        site.wait(lambda: local_held() == held(holder, holder6), 10, "LocalHeld on the group")

        def not_held() -> list[dict[str, Any]]:
            found = api.objects("events.events.k8s.io")
            return [e for e in found if e["reason"] == "LocalNotHeld"]

        site.wait(lambda: bool(not_held()), 5, "LocalNotHeld on the Service")
        time.sleep(0.5)
        assert [e["regarding"]["name"] for e in not_held()] == ["etp"], "one Event, one agent"
        time.sleep(1)
        start = time.monotonic()
        site.agents[holder].send_signal(signal.SIGTERM)
        took_over = site.one_holder(V4, timeout=5, not_=holder)
        took = time.monotonic() - start
        print(f"graceful handover through the API {took:.2f}s")
        assert took < 1.5
        now6 = site.one_holder(V6, timeout=5, not_=holder)
        after = {f"{took_over}/eth0/{V4}", f"{now6}/eth0/{V6}"}
        site.wait(
            lambda: annotation() == ",".join(sorted(after)),
            10,
            f"lbroute.io/announcing naming the new holders only ({sorted(after)})",
        )
        site.wait(lambda: local_held() == held(took_over, now6), 10, "LocalHeld, new holders")
        assert len(not_held()) == 1, "still the same address without a holder: no new Event"
        site.wait(
            lambda: (
                f"lbroute-node-{holder}"
                not in {lease["metadata"]["name"] for lease in api.objects("leases", "lbroute")}
            ),
            5,
            "the stopped agent's Lease deleted",
        )
        site.stop_all()


OUTAGE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from lbroute.model import api
    from lbroute.model.service import parse_service
    from nodeagent.local.leasedir import DirectoryLeaseStore
    from nodeagent.local.plan import local_inputs
    from nodeagent.local.runner import LocalRunner

    group, svc = json.loads(sys.argv[2]), json.loads(sys.argv[3])

    class Flaky(DirectoryLeaseStore):
        reads = writes = True
        def read_all(self):
            if not self.reads:
                raise OSError("reads failing")
            return super().read_all()
        def write(self, lease):
            if not self.writes:
                raise OSError("writes failing")
            super().write(lease)

    store = Flaky(Path(sys.argv[1]), namespace="lbroute")
    runner = LocalRunner(store, node="n1", namespace="lbroute", clock=lambda: now)
    runner.update(local_inputs(
        api.load([group]), [parse_service(svc, default_class=False)], {}, node="n1"
    ))
    seen = {}
    def step(at, label):
        global now
        now = at
        report = runner.step(at)
        seen[label] = [h.address for h in report.holding]
    now = 0.0
    step(0.0, "start")        # publishes, reads: in its grace period, takes nothing
    step(0.6, "elected")      # alone: takes the address
    store.reads = False
    step(1.0, "reads fail")   # keeps it, renewing
    step(1.4, "reads fail 2")
    store.reads, store.writes = True, False
    step(1.8, "writes fail")  # still within the renew deadline of the last write (1.4)
    step(3.0, "writes failed")  # past it: we are not alive, the address goes
    store.writes = True
    step(3.5, "back")
    step(4.2, "back 2")
    runner.shutdown()
    print(json.dumps(seen))
    """
)


def test_lease_store_outage_policy(site: Site) -> None:
    done = site.nodes["n1"].exec(
        sys.executable,
        "-c",
        OUTAGE,
        str(site.tmp / "leases"),
        json.dumps(GROUP),
        json.dumps(service("web", V4)),
    )
    seen = json.loads(done.stdout.splitlines()[-1])
    held = [f"{V4}/24"]
    assert seen["start"] == []
    assert seen["elected"] == held
    assert seen["reads fail"] == held and seen["reads fail 2"] == held
    assert seen["writes fail"] == held
    assert seen["writes failed"] == []
    assert seen["back 2"] == held
    assert site.holders(V4) == []  # shutdown released it
