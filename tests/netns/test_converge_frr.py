"""FRR in managed mode converges from whatever it runs: the first apply ends with exactly
the rendered configuration running, and the upstream router learns the Service routes.

One lab (:class:`lbroute.lab.Lab`): node-a runs FRR, the upstream router (FRR, in
another namespace) accepts BGP from it over IPv4 and IPv6. Before each test node-a's
FRR is started afresh and made to run a configuration of its own (a starting state);
then :class:`~nodeagent.routers.FrrDriver` applies what lbroute renders for node-a, and
the test checks that

- the apply succeeded on the first try;
- ``show running-config``, split into statements as the driver's delta splits them
  (:func:`~nodeagent.routers.frr_delta.frr_stanzas`, an ``interface`` statement left
  empty counting as none, as for frr-reload.py), equals the rendered text, and
  ``frr-reload.py --test`` (the driver's check) finds nothing to change;
- the upstream router installed the Service prefixes learned by BGP from node-a.

Starting states: daemons that started with another ``hostname`` in their own file
(vtysh cannot change a daemon's hostname: the driver tells the daemons itself); a
leftover ``router bgp`` with another ASN (with a session to the same upstream); stray
prefix-lists, route-maps (some in lbroute's own names) and static routes; OSPF,
OSPFv3, RIP, RIPng and IS-IS instances with interface settings; another
``frr defaults`` with ``log`` lines and a leftover ``router bgp`` of the same ASN; the
lines frr-reload.py handles badly or not at all (another ``frr version``, passwords,
``line vty`` settings, forwarding off, interface descriptions, hand-made BFD peers, a
``vrf``); and all of them at once. A text rendered for another FRR version converges
with exactly its ``frr version`` line different, and the lab's daemons restart even
after their directory was closed to user frr.

When a difference remains after the apply (frr-reload.py's vtysh prints a hostname of
its own, from a ``vtysh.conf``), the apply fails as "not converged", not as
"rejected", names the lines that remain and keeps what FRR loaded; the agent reports it
so in ``lbroute status`` and its log, retries on its backoff, and converges once the
cause is gone.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbroute.lab import Lab, LabNode, NodeSpec, run, vtysh_conf
from lbroute.model import api
from nodeagent.routers import FrrDriver, Outcome
from nodeagent.routers.frr_delta import frr_stanzas
from renderer.render import render_view
from renderer.view import build_view

NODE = NodeSpec(name="node-a", router="frr", v4="10.0.0.11", v6="fd00::11")
SERVICES = ("192.0.2.10/24", "2001:db8:1::10/64")
"""Service addresses on node-a's kube-lb0, as the agent puts them there."""
ROUTES = ("192.0.2.0/24", "2001:db8:1::/64")
"""What the upstream router learns from node-a for them."""
OBJECTS = """\
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {name: web, namespace: lbroute}
spec:
  pools: [{cidr: 192.0.2.0/24}, {cidr: "2001:db8:1::/64"}]
---
apiVersion: lbroute.io/v1alpha1
kind: Peer
metadata: {name: tor-v4, namespace: lbroute}
spec:
  bgp: {address: 10.0.0.1, asn: 65000}
---
apiVersion: lbroute.io/v1alpha1
kind: Peer
metadata: {name: tor-v6, namespace: lbroute}
spec:
  bgp: {address: "fd00::1", asn: 65000}
---
apiVersion: v1
kind: Node
metadata: {name: node-a}
status: {addresses: [{type: InternalIP, address: 10.0.0.11}]}
"""

HOSTNAME = """\
hostname other-router
ip route 198.18.0.0/16 Null0
"""

OTHER_ASN = """\
router bgp 65001
 bgp router-id 10.0.0.99
 no bgp ebgp-requires-policy
 neighbor 10.0.0.1 remote-as 65000
 neighbor 10.0.0.1 timers connect 1
 neighbor fd00::1 remote-as 65000
 !
 address-family ipv4 unicast
  network 198.18.0.0/16
 exit-address-family
 !
 address-family ipv6 unicast
  neighbor fd00::1 activate
 exit-address-family
exit
"""

STRAY_POLICY = """\
ip route 198.18.0.0/16 Null0
ipv6 route 2001:db8:99::/48 Null0
ip prefix-list stray seq 5 permit 198.18.0.0/15 le 24
ip prefix-list lbr-sg-web-v4 seq 1 deny any
ipv6 prefix-list stray6 seq 5 permit 2001:db8:99::/48
route-map stray permit 10
 match ip address prefix-list stray
 set metric 7
exit
route-map lbr-bgp-export-v4 deny 1
exit
route-map lbr-import-none permit 20
 set local-preference 300
exit
"""

IGPS = """\
interface eth0
 ip ospf area 0.0.0.0
 ip ospf hello-interval 3
 ip router isis stray
 ipv6 ospf6 area 0.0.0.0
 isis circuit-type level-2-only
exit
router ospf
 ospf router-id 10.0.0.11
 redistribute static
exit
router ospf6
 ospf6 router-id 10.0.0.11
exit
router rip
 network eth0
 version 2
exit
router ripng
 network eth0
exit
router isis stray
 is-type level-2-only
 net 49.0001.0100.0000.0011.00
exit
"""

DEFAULTS_AND_LOG = """\
frr defaults datacenter
log syslog debugging
log timestamp precision 3
"""

SAME_ASN = """\
router bgp 64512
 bgp router-id 10.0.0.99
 neighbor 10.0.0.1 remote-as 65000
 neighbor 10.0.0.1 description left over
 !
 address-family ipv4 unicast
  network 198.18.0.0/16
 exit-address-family
exit
"""

FRR_ONLY_LINES = """\
frr version 7.5.1
frr defaults datacenter
log syslog informational
log record-priority
log timestamp precision 6
no ip forwarding
no ipv6 forwarding
service integrated-vtysh-config
password zebra-login
enable password zebra-enable
!
vrf blue
 ip route 198.19.0.0/16 Null0
exit-vrf
!
interface eth0
 description uplink to the old router
exit
!
interface kube-lb0
 description services
 ip address 198.18.7.1/32
exit
!
bfd
 peer 10.0.0.1
  detect-multiplier 5
  receive-interval 500
 exit
 !
 profile stray
  transmit-interval 900
 exit
exit
!
line vty
 access-class vty-hosts
 exec-timeout 0 0
 no login
exit
"""
"""Lines frr-reload.py handles badly or not at all: another ``frr version``, vtysh's
own lines (``service integrated-vtysh-config``, passwords, ``line vty`` settings, which
frr-reload.py never removes), ``log`` lines, forwarding turned off, interface
descriptions and addresses, BFD peers configured by hand, a ``vrf`` with a static
route. Not here: ``agentx`` (FRR takes it only with its SNMP module, not installed
here) and ``username`` (FRR 8.4 has no such command)."""

STATES = {
    "another hostname": HOSTNAME,
    "router bgp with another ASN": OTHER_ASN,
    "stray prefix-lists, route-maps and static routes": STRAY_POLICY,
    "OSPF, OSPFv3, RIP, RIPng and IS-IS": IGPS,
    "another frr defaults and log lines, router bgp with the same ASN": DEFAULTS_AND_LOG + SAME_ASN,
    "vtysh lines, agentx, passwords, forwarding off, descriptions, BFD peers, a VRF": (
        FRR_ONLY_LINES
    ),
}
EVERYTHING = OTHER_ASN + STRAY_POLICY + IGPS + FRR_ONLY_LINES
"""Every state at once (one ``router bgp`` only: FRR runs one in the default VRF)."""


def objects() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(OBJECTS) if d]


def rendered(*, bfd: bool = False) -> str:
    """What lbroute renders for node-a; with ``bfd``, BFD (a profile of its own) on the
    IPv4 session."""
    docs = objects()
    if bfd:
        for doc in docs:
            if doc["kind"] == "Peer" and doc["metadata"]["name"] == "tor-v4":
                doc["spec"]["bgp"]["bfd"] = {"minRx": 500}
    view = build_view(api.load(docs), api.Router.FRR, NODE.name, hostname=socket.gethostname())
    return render_view(view)


def canonical(text: str) -> dict[str, tuple[str, ...]]:
    """A configuration (or what ``show running-config`` prints) as its top-level
    statements, without comments, and without ``interface`` statements that hold
    nothing: FRR keeps one for an interface that was configured once and exists (it
    refuses ``no interface`` for it), and frr-reload.py, which decides for the driver,
    counts it as nothing."""
    body = text.partition("Current configuration:\n")[2] or text
    return {
        head: lines
        for head, lines in frr_stanzas(body).items()
        if lines or not head.startswith("interface ")
    }


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(workdir=tmp_path_factory.mktemp("converge-frr"), nodes=[NODE], tag="cvf")
    try:
        lab.start()
        member = lab.members[NODE.name]
        for address in SERVICES:
            member.ns.ip("addr", "add", address, "dev", "kube-lb0")
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def node(lab: Lab) -> Iterator[LabNode]:
    """node-a with its FRR started afresh, running nothing, its routes gone upstream;
    afterwards its agent stopped and its vtysh.conf as the lab made it."""
    member = lab.members[NODE.name]
    assert member.frr is not None
    member.frr.stop()
    member.frr.start()
    member.config_path.unlink(missing_ok=True)
    lab.wait_for(lambda: not any(lab.route(prefix) for prefix in ROUTES))
    try:
        yield member
    finally:
        lab.stop_agent(NODE.name)
        (member.dir / "vtysh.conf").unlink(missing_ok=True)
        vtysh_conf(member.dir)


def _start_in(node: LabNode, state: str, *, own_file: bool = False) -> None:
    """Make node-a's FRR run ``state``: loaded through vtysh, as FRR's boot does with an
    integrated configuration; with ``own_file``, the daemons restarted with it as their
    own file (``-f``), the only way a daemon takes a ``hostname``."""
    frr = node.frr
    assert frr is not None
    if own_file:
        own = frr.dir / "own.conf"
        own.write_text(state, encoding="utf-8")
        frr.stop()
        frr.start(config=own)
    else:
        frr.load(state)
    running = frr.vtysh("show running-config").stdout.splitlines()
    for line in state.splitlines():
        if line.startswith(("hostname", "router ", "route-map", "ip route", "frr defaults")):
            assert line in running, f"{line!r} does not run"


def _converged(lab: Lab, node: LabNode, text: str) -> None:
    """FRR runs exactly ``text``, and the upstream router has the Service routes."""
    frr = node.frr
    assert frr is not None
    running = frr.vtysh("show running-config").stdout
    assert canonical(running) == canonical(text), running
    check = frr.reload_tool("--test", node.config_path)
    assert check.returncode == 0, check.stderr
    assert _changes(check.stdout) == []
    for prefix in ROUTES:
        route = lab.wait_for(lambda p=prefix: lab.route(p))
        assert route.proto == "bgp"
        assert lab.via(route) == (NODE.name,)


def _changes(output: str) -> list[str]:
    """What frr-reload.py --test would still change."""
    return [
        line
        for line in output.splitlines()
        if line.strip() and " INFO: " not in line and not set(line) <= {"="}
    ]


@pytest.mark.parametrize("name", STATES)
def test_the_first_apply_converges(lab: Lab, node: LabNode, name: str) -> None:
    _start_in(node, STATES[name], own_file=name == "another hostname")
    assert node.frr is not None
    text = rendered()
    result = FrrDriver(node.config_path, node.frr.dir).apply(text)
    assert result.outcome is Outcome.APPLIED, result.error
    _converged(lab, node, text)


def test_the_first_apply_converges_from_everything_at_once(lab: Lab, node: LabNode) -> None:
    _start_in(node, HOSTNAME, own_file=True)
    _start_in(node, EVERYTHING)
    assert node.frr is not None
    text = rendered()
    result = FrrDriver(node.config_path, node.frr.dir).apply(text)
    assert result.outcome is Outcome.APPLIED, result.error
    _converged(lab, node, text)


OWN_BFD = """\
bfd
 peer 10.0.0.1
  detect-multiplier 5
 exit
 !
 peer fd00::1 multihop local-address fd00::11
 exit
 !
 profile lbr-500-300-3
  transmit-interval 900
  echo-mode
 exit
 !
 profile stray
 exit
exit
"""
"""BFD configured by hand around lbroute's own: peers for its neighbors and its
profile's name with other settings."""


SESSIONS_UP = 3.0
"""How long after a first apply onto empty daemons its BGP sessions may take to be
Established (s): a TCP handshake and the OPEN and KEEPALIVE exchange over a veth take
milliseconds (measured: 0.2 s); now and then bgpd answers the IPv6 session's first
connection with an FSM error ("Receive Unexpected Message in OpenSent State", also with
forwarding on from the start) and connects again 2 s later; the rest is slack for a
loaded machine. bgpd's hold after a file load, when the driver left it alone, kept
both in Idle for about 4 s."""


def test_the_first_apply_onto_empty_daemons_takes_one_step_and_connects_at_once(
    lab: Lab, node: LabNode, caplog: pytest.LogCaptureFixture
) -> None:
    """FRR's daemons just started (as after the old speaker stopped): the first apply
    converges in its one ``vtysh -f`` (no "still differs", no whole-file reload, in a
    namespace with forwarding off), and the BGP sessions it configures are Established
    within :data:`SESSIONS_UP` of it, none dropped once up."""
    assert node.frr is not None
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        node.ns.sysctl(key, "0")  # the lab node's own; what a new host may have
    text = rendered()
    caplog.set_level(logging.INFO, logger="nodeagent.routers")
    driver = FrrDriver(node.config_path, node.frr.dir)
    result = driver.apply(text)
    applied = time.monotonic()
    assert result.outcome is Outcome.APPLIED, result.error
    assert "FRR ran none before" in caplog.text
    assert "still differs" not in caplog.text, caplog.text

    def established() -> bool:
        bgp = [s for s in driver.sessions() if s.protocol == "bgp"]
        return len(bgp) == 2 and all(s.state == "Established" for s in bgp)

    try:
        lab.wait_for(established, timeout=15, interval=0.05)
    except TimeoutError:
        raise AssertionError(f"the sessions never came up: {driver.sessions()}") from None
    took = time.monotonic() - applied
    print(f"\nBGP sessions Established {took:.2f}s after the first apply ({result.duration:.2f}s)")
    assert took <= SESSIONS_UP, f"the sessions took {took:.2f}s after the apply"
    neighbors = json.loads(node.frr.vtysh("show bgp neighbors json").stdout)
    for name, peer in neighbors.items():
        assert peer.get("connectionsEstablished") == 1, (name, peer)
        assert peer.get("connectionsDropped") == 0, (name, peer)
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        assert node.ns.exec("sysctl", "-n", key).stdout.strip() == "1", key
    _converged(lab, node, text)


def test_bfd_of_its_own_converges_to_lbroute_bfd(lab: Lab, node: LabNode) -> None:
    _start_in(node, OWN_BFD)
    assert node.frr is not None
    text = rendered(bfd=True)
    assert "bfd profile lbr-500-300-3" in text
    result = FrrDriver(node.config_path, node.frr.dir).apply(text)
    assert result.outcome is Outcome.APPLIED, result.error
    _converged(lab, node, text)


def test_only_the_frr_version_line_may_differ(lab: Lab, node: LabNode) -> None:
    """A text rendered for another FRR version converges: FRR cannot change the
    ``frr version`` it prints (every daemon prints its own build's), so verification
    ignores exactly that line, and nothing else."""
    _start_in(node, FRR_ONLY_LINES)
    assert node.frr is not None
    text = rendered()
    assert "frr version 8.4.4\n" in text
    other = text.replace("frr version 8.4.4\n", "frr version 99.1\n")
    result = FrrDriver(node.config_path, node.frr.dir).apply(other)
    assert result.outcome is Outcome.APPLIED, result.error
    running = canonical(node.frr.vtysh("show running-config").stdout)
    wanted = canonical(other)
    assert running.keys() - wanted.keys() == {"frr version 8.4.4"}
    assert wanted.keys() - running.keys() == {"frr version 99.1"}
    del running["frr version 8.4.4"], wanted["frr version 99.1"]
    assert running == wanted
    # Any other difference still counts: a password set behind the driver's back.
    node.frr.vtysh("configure terminal", "password behind-its-back")
    driver = FrrDriver(node.config_path, node.frr.dir)
    assert not driver.is_current(other)
    assert driver.apply(other).outcome is Outcome.APPLIED
    assert "password" not in node.frr.vtysh("show running-config").stdout
    assert driver.is_current(other)


def test_daemons_restart_after_their_directory_was_closed_to_others(
    lab: Lab, node: LabNode
) -> None:
    """Every pytest session run as root resets its base temporary directory to 0700,
    also while a lab under it runs: FRR's daemons (user frr) restarted then could not
    create their pid files and exited 1. The lab opens the way again at each start."""
    frr = node.frr
    assert frr is not None
    lab.workdir.chmod(0o700)
    frr.restart()
    assert frr.vtysh("show version").returncode == 0
    assert lab.workdir.stat().st_mode & 0o001


def _vtysh_prints_hostname(node: LabNode, name: str) -> None:
    """The vtysh.conf beside node-a's file (frr-reload.py's vtysh reads it) names a
    hostname: that vtysh then prints it in every running configuration, whatever the
    daemons hold."""
    (node.dir / "vtysh.conf").write_text(
        f"service integrated-vtysh-config\nhostname {name}\n", encoding="utf-8"
    )


def test_a_difference_left_after_loading_is_not_converged_not_rejected(
    lab: Lab, node: LabNode
) -> None:
    _vtysh_prints_hostname(node, "printed-by-vtysh")
    assert node.frr is not None
    text = rendered()
    result = FrrDriver(node.config_path, node.frr.dir).apply(text)
    assert result.outcome is Outcome.NOT_CONVERGED, result.error
    assert not result.rejected
    assert "parser (vtysh --dryrun) accepted the configuration" in result.error
    assert "no hostname printed-by-vtysh" in result.error.splitlines()
    assert "the hostname its vtysh.conf sets" in result.error
    assert "rejected" not in result.error and "refused" not in result.error
    # FRR keeps what it loaded (the new file stays, for the retries): the routes are up.
    assert node.config_path.read_text(encoding="utf-8") == text
    for prefix in ROUTES:
        assert lab.wait_for(lambda p=prefix: lab.route(p)).proto == "bgp"


def test_the_agent_reports_not_converged_retries_and_converges_once_fixed(
    lab: Lab, node: LabNode, tmp_path: Path
) -> None:
    """The agent itself: ``lbroute status`` and the log say what happened, and the
    agent keeps trying on its backoff until FRR runs its configuration."""
    source = tmp_path / "objects"
    source.mkdir()
    (source / "objects.yaml").write_text(OBJECTS, encoding="utf-8")
    _vtysh_prints_hostname(node, "printed-by-vtysh")
    lab.start_agent(NODE.name, source)

    def last_apply() -> dict[str, Any]:
        return dict(lab.status(NODE.name).get("last_apply") or {})

    failed = lab.wait_for(lambda: last_apply().get("result") == "Failed" and last_apply())
    assert failed["reason"] == "NotConverged"
    assert "no hostname printed-by-vtysh" in failed["error"]
    table = run(
        sys.executable, "-m", "lbroute", "status", "--status-file", str(node.status_file)
    ).stdout
    assert "last apply:  Failed (NotConverged) " in table
    assert node.agent_log is not None
    said = node.agent_log.read_text(encoding="utf-8")
    assert "FRR accepted the new configuration, but after loading it still runs" in said
    assert "rejected" not in said
    assert "applying again in 1 s (attempt 2)" in said

    (node.dir / "vtysh.conf").unlink()
    vtysh_conf(node.dir)  # a vtysh.conf without a hostname: the next retry converges
    applied = lab.wait_for(lambda: last_apply().get("result") == "Applied", timeout=40)
    assert applied
    assert json.loads(node.status_file.read_text())["last_apply"]["reason"] == ""
    _converged(lab, node, node.config_path.read_text(encoding="utf-8"))
