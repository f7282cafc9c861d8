"""Moving in from MetalLB in the namespace lab (issue 19): the handover.

Two nodes (node-a BIRD, node-b FRR) and an FRR upstream router (:class:`lbroute.lab.Lab`).

- Phase 1, "MetalLB": no lbroute agent; each node's router is configured by hand as
  MetalLB's speaker configures its BGP speaker with ``aggregationLength: 32``: a /32 (or
  /128) per Service address, exported to the upstream over an IPv4 and an IPv6 session
  (static blackhole routes exported by BIRD; ``network`` statements without import check
  in FRR, as MetalLB's FRR mode writes them). The upstream learns every prefix through
  both nodes.
- Phase 2: the same configuration written as MetalLB objects (IPAddressPool, BGPPeers,
  a BGPAdvertisement with ``aggregationLength: 32``, and the Services with their
  addresses in ``status.loadBalancer.ingress`` and MetalLB's annotations) is converted
  by ``lbroute convert --from metallb``; ``lbroute allocate --dry-run`` on the converted
  objects and patched Services moves no address. Then the speakers make way for
  ``lbroute agent`` on a directory of the converted objects, in one of the README's
  two orders:

  - all at once (the quick way, :func:`test_metallb_handover_keeps_every_prefix`):
    every speaker stops (its daemon stopped: the sessions close and the routes go; the
    node's router starts empty as lbroute expects it), then the agents start. A prefix
    is missing only in one window per prefix that begins when the speakers stop, no
    longer than one apply. Measured (pytest -s prints it): each prefix missing 2.8 to
    3.4 s, until the first node's new sessions carry it;
  - node by node (the recommended way, :func:`test_metallb_node_by_node_keeps_every_prefix`):
    node-a's speaker stops and its agent starts, and once the upstream has node-a back
    behind every prefix, node-b the same. The other node announces every prefix
    meanwhile: no prefix is ever missing. Measured: node-a (BIRD) back 5.8 to 6.9 s
    after its speaker was told to stop, of which up to 5 s is BIRD's start delay
    before a new session's first connection; node-b (FRR) 3.0 to 3.1 s.

The upstream's routes are read every 50 ms from before the handover until after it; no
other Service prefix ever appears, and none through another node.

What the agents are given beyond ``convert``'s output is what a cluster gives them: the
Nodes (in the export, as the README's ``kubectl get nodes``), the router kind on the
command line (MetalLB has no NodeAgent to convert) and ``--default-class``, as the
report asks for Services that set no ``loadBalancerClass``.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbroute.lab import Lab, NodeSpec
from lbroute.lab.configs import NODE_BIRD_BOOT
from tests.netns.lab import needs_root

NODES = (
    NodeSpec(name="node-a", router="bird", v4="10.0.0.11", v6="fd00::11"),
    NodeSpec(name="node-b", router="frr", v4="10.0.0.12", v6="fd00::12"),
)
BOTH = ("node-a", "node-b")
POOL_V4, POOL_V6 = "198.51.100.0/24", "2001:db8:100::/112"
PREFIXES = (
    "198.51.100.10/32",
    "198.51.100.53/32",
    "198.51.100.80/32",
    "2001:db8:100::10/128",
)
"""What MetalLB announces for the Services below (one prefix per address)."""
BASELINE = {prefix: BOTH for prefix in PREFIXES}

POLL = 0.05
"""How often the upstream's routes are read (s)."""
SESSION_SETUP = 1.5
"""What a route needs once its session may connect (s): the TCP handshake, the BGP OPEN
and KEEPALIVE exchange and an UPDATE on one link, the upstream's best path and kernel
install (milliseconds each) and two polls; the rest is slack for a loaded machine."""
CEILING = 20.0
"""No prefix is missing longer than this (s), whatever the apply took."""
BIRD_START_DELAY = 5
"""BIRD's default ``start delay time``: how long a new BGP protocol waits before its
first connection attempt (BIRD's documentation)."""

METALLB = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: public, namespace: metallb-system}
spec:
  addresses: [198.51.100.0/24, "2001:db8:100::/112"]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: upstream-v4, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 65000, peerAddress: 10.0.0.1, holdTime: 90s}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: upstream-v6, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 65000, peerAddress: "fd00::1", holdTime: 90s}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: public, namespace: metallb-system}
spec:
  ipAddressPools: [public]
  aggregationLength: 32
  aggregationLengthV6: 128
"""

SERVICES = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata:
      name: web
      namespace: shop
      annotations: {metallb.io/ip-allocated-from-pool: public}
    spec:
      type: LoadBalancer
      ipFamilyPolicy: PreferDualStack
      ports: [{port: 443, protocol: TCP}]
    status:
      loadBalancer: {ingress: [{ip: 198.51.100.10}, {ip: "2001:db8:100::10"}]}
  - apiVersion: v1
    kind: Service
    metadata:
      name: dns-udp
      namespace: infra
      annotations:
        metallb.universe.tf/loadBalancerIPs: 198.51.100.53
        metallb.universe.tf/allow-shared-ip: dns
    spec: {type: LoadBalancer, ports: [{port: 53, protocol: UDP}]}
    status: {loadBalancer: {ingress: [{ip: 198.51.100.53}]}}
  - apiVersion: v1
    kind: Service
    metadata:
      name: dns-tcp
      namespace: infra
      annotations:
        metallb.universe.tf/loadBalancerIPs: 198.51.100.53
        metallb.universe.tf/allow-shared-ip: dns
    spec: {type: LoadBalancer, ports: [{port: 53, protocol: TCP}]}
    status: {loadBalancer: {ingress: [{ip: 198.51.100.53}]}}
  - apiVersion: v1
    kind: Service
    metadata:
      name: api
      namespace: office
      annotations:
        metallb.io/loadBalancerIPs: 198.51.100.80
        metallb.io/address-pool: public
        metallb.io/ip-allocated-from-pool: public
    spec: {type: LoadBalancer, ports: [{port: 8443, protocol: TCP}]}
    status: {loadBalancer: {ingress: [{ip: 198.51.100.80}]}}
"""

NODES_YAML = """\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Node
    metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}}
    status:
      addresses:
        - {type: InternalIP, address: 10.0.0.11}
        - {type: InternalIP, address: "fd00::11"}
  - apiVersion: v1
    kind: Node
    metadata: {name: node-b, labels: {kubernetes.io/hostname: node-b}}
    status:
      addresses:
        - {type: InternalIP, address: 10.0.0.12}
        - {type: InternalIP, address: "fd00::12"}
"""

SPEAKER_BIRD = """\
# MetalLB's speaker, by hand: a /32 (/128) per Service address to the upstream.
router id 10.0.0.11;
protocol device { }
protocol static metallb4 {
  ipv4;
  route 198.51.100.10/32 blackhole;
  route 198.51.100.53/32 blackhole;
  route 198.51.100.80/32 blackhole;
}
protocol static metallb6 {
  ipv6;
  route 2001:db8:100::10/128 blackhole;
}
protocol bgp upstream4 {
  local 10.0.0.11 as 64512;
  neighbor 10.0.0.1 as 65000;
  hold time 90;
  ipv4 { import none; export where proto = "metallb4"; };
}
protocol bgp upstream6 {
  local fd00::11 as 64512;
  neighbor fd00::1 as 65000;
  hold time 90;
  ipv6 { import none; export where proto = "metallb6"; };
}
"""

SPEAKER_FRR = """\
! MetalLB's speaker (FRR mode), by hand: a network statement per Service address.
router bgp 64512
 bgp router-id 10.0.0.12
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 neighbor 10.0.0.1 remote-as 65000
 neighbor 10.0.0.1 timers 30 90
 neighbor fd00::1 remote-as 65000
 neighbor fd00::1 timers 30 90
 address-family ipv4 unicast
  neighbor 10.0.0.1 activate
  network 198.51.100.10/32
  network 198.51.100.53/32
  network 198.51.100.80/32
 exit-address-family
 address-family ipv6 unicast
  neighbor fd00::1 activate
  network 2001:db8:100::10/128
 exit-address-family
exit
"""

View = dict[str, tuple[str, ...]]
"""The upstream kernel's routes in the Services' pools: prefix -> nodes behind it."""


@dataclass
class Watch:
    """The upstream's view, read every :data:`POLL` seconds in a thread from
    :meth:`start` until :meth:`stop`: (monotonic time, view) samples."""

    lab: Lab
    samples: list[tuple[float, View]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    def view(self) -> View:
        return {
            r.prefix: self.lab.via(r)
            for r in self.lab.routes()
            if r.proto == "bgp" and _in_pools(r.prefix)
        }

    def start(self) -> Watch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                view = self.view()
                self.samples.append((time.monotonic(), view))
                self._stop.wait(max(0.0, POLL - (time.monotonic() - started)))
        except BaseException as exc:  # reported by stop(), in the test's thread
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.error is not None:
            raise self.error

    def gaps(self, prefix: str) -> list[float]:
        """Each window in which ``prefix`` was missing, in seconds, from the last sample
        that had it to the first that had it again (an upper bound, by one poll)."""
        found, last_seen, missing = [], None, False
        for at, view in self.samples:
            if prefix in view:
                if missing and last_seen is not None:
                    found.append(at - last_seen)
                last_seen, missing = at, False
            else:
                missing = True
        assert not missing, f"{prefix} is missing at the end"
        return found

    def first_missing(self, prefix: str) -> float | None:
        return next((at for at, view in self.samples if prefix not in view), None)


def _in_pools(prefix: str) -> bool:
    net = ipaddress.ip_network(prefix)
    pool = ipaddress.ip_network(POOL_V6 if net.version == 6 else POOL_V4)
    return net.version == pool.version and net.subnet_of(pool)  # type: ignore[arg-type]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as ``kubectl patch --type merge`` applies the converted patches."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def lbroute(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lbroute", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The lab, its namespaces named after the test (``mig``, ``migrol``)."""
    needs_root()
    tag = "migrol" if "node_by_node" in request.node.name else "mig"
    lab = Lab(workdir=tmp_path / "lab", nodes=list(NODES), upstream_router="frr", tag=tag)
    try:
        yield lab.start()
    finally:
        lab.stop()


def start_speakers(lab: Lab) -> None:
    """Phase 1: each node's router announces the Services as MetalLB's speaker does."""
    node_a = lab.members["node-a"]
    assert node_a.bird is not None
    speaker = node_a.dir / "metallb-speaker.conf"
    speaker.write_text(SPEAKER_BIRD)
    node_a.bird.restart(speaker)
    node_b = lab.members["node-b"]
    assert node_b.frr is not None
    node_b.frr.load(SPEAKER_FRR)


def stop_speaker(lab: Lab, node: str) -> None:
    """The speaker on ``node`` stops (SIGTERM: its BGP sessions close with a
    notification, the upstream withdraws their routes); the node's router starts again
    with nothing configured, as the agent expects it."""
    member = lab.members[node]
    if member.bird is not None:
        member.config_path.write_text(NODE_BIRD_BOOT.format(v4=member.spec.v4))
        member.bird.restart(member.config_path)
    else:
        assert member.frr is not None
        member.frr.restart()


def stop_speakers(lab: Lab) -> None:
    """The README's quick way: the speakers stop on every node at once."""
    for node in BOTH:
        stop_speaker(lab, node)


def convert(work: Path) -> tuple[Path, str]:
    """The README's step 2 on the "cluster's" export: the directory the agents watch
    (the converted objects, the patched Services, the Nodes) and the report."""
    export = work / "export"
    export.mkdir()
    (export / "metallb.yaml").write_text(METALLB)
    (export / "services.yaml").write_text(SERVICES)
    (export / "nodes.yaml").write_text(NODES_YAML)
    out = work / "migration"
    done = lbroute("convert", "--from", "metallb", "-f", str(export), "-o", str(out))
    assert done.returncode == 0, done.stderr
    report = done.stderr
    source = work / "source"
    source.mkdir()
    shutil.copy(out / "lbroute.yaml", source / "lbroute.yaml")
    shutil.copy(export / "nodes.yaml", source / "nodes.yaml")
    # sh migration/patch-services.sh, on the cluster's Services.
    patches = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p
        for p in yaml.safe_load_all((out / "services.yaml").read_text())
        if p
    }
    services = []
    for service in yaml.safe_load(SERVICES)["items"]:
        key = (service["metadata"]["namespace"], service["metadata"]["name"])
        services.append(merge_patch(service, patches.pop(key, {})))
    assert patches == {}, f"patches for Services that do not exist: {list(patches)}"
    (source / "services.yaml").write_text(yaml.safe_dump_all(services, sort_keys=False))
    return source, report


def applied(lab: Lab, node: str) -> dict[str, Any] | None:
    status = lab.status(node)
    return status if status.get("last_apply", {}).get("result") == "Applied" else None


def connect_delay(lab: Lab) -> int:
    """The longest a session the agents configured may wait before it first connects,
    as their configurations say: BIRD's start delay (its default, unless set) or
    connect retry time, FRR's ``timers connect`` (a first attempt the peer does not
    answer with its OPEN is tried again after it)."""
    bird = lab.members["node-a"].config_path.read_text()
    frr = lab.members["node-b"].config_path.read_text()
    delays = [int(n) for n in re.findall(r"connect retry time (\d+);", bird)]
    delays += [int(n) for n in re.findall(r"start delay time (\d+);", bird)] or [BIRD_START_DELAY]
    delays += [int(n) for n in re.findall(r"timers connect (\d+)", frr)]
    assert len(delays) >= 3, (bird, frr)
    return max(delays)


def test_metallb_handover_keeps_every_prefix(lab: Lab, tmp_path: Path) -> None:
    """The bound on each prefix's gap is one apply: from the moment the speakers are
    told to stop until the later agent's first apply is done (nothing can announce the
    route before), plus what the sessions that apply configured take to connect (the
    delay their configuration sets, :func:`connect_delay`) and to carry the route
    (:data:`SESSION_SETUP`); and never more than :data:`CEILING`."""
    start_speakers(lab)
    watch = Watch(lab)
    try:
        lab.wait_for(lambda: watch.view() == BASELINE, timeout=60)
    except TimeoutError:
        raise AssertionError(
            f"MetalLB's routes never reached the upstream: {watch.view()}"
        ) from None

    source, report = convert(tmp_path)
    assert "allocation: 0 addresses moved (4 Services holding addresses)" in report, report
    assert "infra/dns-udp: metallb.universe.tf/allow-shared-ip -> lbroute.io/allow-shared-ip" in (
        report
    )
    dry = lbroute("allocate", "--dry-run", "--default-class", "-f", str(source))
    assert dry.returncode == 0, dry.stdout + dry.stderr
    # Every Service keeps its address; the allocator would only record where it is
    # from (lbroute.io/allocated-from), hence "would write".
    kept = sorted(line for line in dry.stdout.splitlines() if ": keeps " in line)
    assert kept == [
        "infra/dns-tcp: keeps 198.51.100.53 (public:198.51.100.0/24)",
        "infra/dns-udp: keeps 198.51.100.53 (public:198.51.100.0/24)",
        "office/api: keeps 198.51.100.80 (public:198.51.100.0/24)",
        "shop/web: keeps 198.51.100.10, 2001:db8:100::10 "
        "(public:198.51.100.0/24,2001:db8:100::/112)",
    ], dry.stdout
    for word in ("would assign", "would release"):
        assert word not in dry.stdout, dry.stdout
    # ... and reads no MetalLB annotation (it notes each it reads on the export).
    assert "metallb.io/" not in dry.stderr and "metallb.universe.tf/" not in dry.stderr, dry.stderr

    watch.start()
    try:
        time.sleep(1.0)  # samples of the steady state before
        told = time.monotonic()
        stop_speakers(lab)
        stopped = time.monotonic()
        for node in BOTH:
            lab.start_agent(node, source, "--default-class")
        done: dict[str, tuple[float, dict[str, Any]]] = {}
        deadline = time.monotonic() + 60
        while len(done) < len(BOTH):
            assert time.monotonic() < deadline, {n: lab.status(n) for n in BOTH}
            for node in BOTH:
                status = applied(lab, node)
                if status is not None and node not in done:
                    done[node] = (time.monotonic(), status)
            time.sleep(POLL)
        lab.wait_for(lambda: watch.samples and watch.samples[-1][1] == BASELINE, timeout=30)
        time.sleep(2.0)  # and after: nothing moves any more
    finally:
        watch.stop()

    for node, (_, status) in done.items():
        assert status["problems"] == [], (node, status["problems"])
    before = [view for at, view in watch.samples if at < told]
    assert before and all(view == BASELINE for view in before)
    after = [view for at, view in watch.samples if at > watch.samples[-1][0] - 2.0]
    assert after and all(view == BASELINE for view in after), after[:3]
    # Nothing but the Services' prefixes, through nothing but the two nodes.
    for _, view in watch.samples:
        assert view.keys() <= set(PREFIXES), view
        assert all(set(nodes) <= set(BOTH) for nodes in view.values()), view

    one_apply = max(at for at, _ in done.values()) - told
    connect = connect_delay(lab)
    bound = min(one_apply + connect + SESSION_SETUP, CEILING)
    gaps = {prefix: watch.gaps(prefix) for prefix in PREFIXES}
    measured = {prefix: max(g, default=0.0) for prefix, g in gaps.items()}
    applies = ", ".join(f"{n} {at - told:.2f}s" for n, (at, _) in done.items())
    durations = ", ".join(f"{n} {s['last_apply']['duration']:.2f}s" for n, (_, s) in done.items())
    print(
        f"\nhandover: speakers stopped in {stopped - told:.2f}s; first applies done {applies} "
        f"after; apply durations {durations}; connect delay {connect}s; gaps "
        f"{', '.join(f'{p} {g:.2f}s' for p, g in measured.items())}; bound {bound:.2f}s; "
        f"{len(watch.samples)} samples"
    )
    previous: View | None = None
    for at, view in watch.samples:
        if view != previous:
            print(f"  {at - told:+.2f}s {view}")
            previous = view
    for prefix, windows in gaps.items():
        assert len(windows) <= 1, f"{prefix} went away {len(windows)} times: {windows}"
        went = watch.first_missing(prefix)
        assert went is None or went >= told, f"{prefix} went before the speakers stopped"
        assert measured[prefix] <= bound, (
            f"{prefix} was missing {measured[prefix]:.2f}s, more than one apply "
            f"({one_apply:.2f}s to the first apply, {connect}s to connect, "
            f"{SESSION_SETUP}s to carry the route; bound {bound:.2f}s)"
        )
    assert watch.view() == BASELINE


def test_metallb_node_by_node_keeps_every_prefix(lab: Lab, tmp_path: Path) -> None:
    """The README's recommended order: one node at a time, the speaker stops there and
    the agent starts there (in a cluster: the node's label moves it from the speakers'
    DaemonSet to the agents'), and the next node only once the upstream has the moved
    node back behind every prefix. While a node moves, the other still announces every
    prefix (the upstream's ECMP route shrinks to it), so no prefix is ever withdrawn:
    every sample of the upstream's routes has every prefix, with next hops, through
    nothing but the two nodes; before and after, every prefix is behind both."""
    start_speakers(lab)
    watch = Watch(lab)
    try:
        lab.wait_for(lambda: watch.view() == BASELINE, timeout=60)
    except TimeoutError:
        raise AssertionError(
            f"MetalLB's routes never reached the upstream: {watch.view()}"
        ) from None
    source, report = convert(tmp_path)
    assert "allocation: 0 addresses moved (4 Services holding addresses)" in report, report

    def back(node: str) -> bool:
        """The upstream's last sample has ``node`` behind every prefix."""
        if not watch.samples:
            return False
        view = watch.samples[-1][1]
        return all(node in view.get(prefix, ()) for prefix in PREFIXES)

    moves: dict[str, tuple[float, float, float]] = {}
    """node -> (seconds until its first apply, until the upstream had it back, the apply's
    own duration), from the moment its speaker was told to stop."""
    watch.start()
    try:
        time.sleep(1.0)  # samples of the steady state before
        for node in BOTH:
            told = time.monotonic()
            stop_speaker(lab, node)
            lab.start_agent(node, source, "--default-class")
            status = lab.wait_for(lambda n=node: applied(lab, n), timeout=60)
            first_apply = time.monotonic() - told
            try:
                lab.wait_for(lambda n=node: back(n), timeout=30, interval=POLL)
            except TimeoutError:
                raise AssertionError(
                    f"{node} never came back upstream: {watch.samples[-1][1]}; {lab.status(node)}"
                ) from None
            assert status["problems"] == [], (node, status["problems"])
            moves[node] = (first_apply, time.monotonic() - told, status["last_apply"]["duration"])
        time.sleep(2.0)  # and after: nothing moves any more
    finally:
        watch.stop()

    print(
        "\nnode by node: "
        + "; ".join(
            f"{node} first apply {apply:.2f}s, back upstream {moved:.2f}s after its speaker "
            f"was told to stop (apply duration {duration:.2f}s)"
            for node, (apply, moved, duration) in moves.items()
        )
        + f"; {len(watch.samples)} samples, connect delay {connect_delay(lab)}s"
    )
    previous: View | None = None
    start = watch.samples[0][0]
    for at, view in watch.samples:
        if view != previous:
            print(f"  {at - start:+.2f}s {view}")
            previous = view
    for prefix in PREFIXES:
        assert watch.gaps(prefix) == [], f"{prefix} was withdrawn: {watch.gaps(prefix)}"
    for at, view in watch.samples:
        assert set(view) == set(PREFIXES), (at - start, view)
        assert all(view[prefix] for prefix in PREFIXES), (at - start, view)
        assert all(set(nodes) <= set(BOTH) for nodes in view.values()), view
    assert watch.samples[0][1] == BASELINE
    assert watch.view() == BASELINE
