"""A lab in network namespaces: nodes running the agent and BIRD or FRR, and an
upstream router, all on one link. Used by the demo and the root-only tests.

Topology (every name gets a unique prefix, so labs never collide)::

    [node-a: eth0 10.0.0.11 fd00::11, kube-lb0]--+
    [node-b: eth0 10.0.0.12 fd00::12, kube-lb0]--+-- br0 [upstream: 10.0.0.1 fd00::1]

The upstream router (FRR or BIRD) accepts BGP from any node (AS 65000, nodes use AS
64512), runs OSPFv2/v3, RIP/RIPng and (FRR) IS-IS level 2 on br0, installs what it
learns into its kernel table with ECMP, and exports nothing. Its kernel table is the
"upstream view" the demo prints and the tests read.

Everything the lab starts is started by it, with pid files and sockets of its own,
and :meth:`Lab.stop` stops exactly that and deletes the namespaces, even after a
failure.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FRR_BIN = Path("/usr/lib/frr")
FRR_DAEMONS = ("zebra", "bgpd", "ospfd", "ospf6d", "ripd", "ripngd", "isisd", "bfdd", "staticd")
UPSTREAM_V4, UPSTREAM_V6 = "10.0.0.1", "fd00::1"
UPSTREAM_ASN = 65000
_counter = itertools.count()


def run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)


# -- primitives ---------------------------------------------------------------------------


class Netns:
    """A network namespace that exists from ``create()`` until ``delete()``."""

    def __init__(self, tag: str = "t") -> None:
        self.name = f"lbrt-{os.getpid()}-{tag}-{next(_counter)}"

    def create(self) -> Netns:
        run("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")
        return self

    def ip(self, *args: str) -> str:
        return run("ip", "-n", self.name, *args).stdout

    def exec(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout)

    def sysctl(self, key: str, value: str) -> None:
        self.exec("sysctl", "-qw", f"{key}={value}")

    def add_ifb(self, name: str) -> None:
        """An interface to hang configuration on (this kernel has no dummy type)."""
        self.ip("link", "add", name, "type", "ifb")
        self.ip("link", "set", name, "up")

    def delete(self) -> None:
        run("ip", "netns", "del", self.name, check=False)


def veth(a: Netns, a_name: str, b: Netns, b_name: str) -> None:
    """A veth pair from ``a`` (named ``a_name``) to ``b`` (named ``b_name``), both up; it
    goes away with either namespace."""
    n = next(_counter)
    tmp_a, tmp_b = f"lva{os.getpid() % 100000}-{n}", f"lvb{os.getpid() % 100000}-{n}"
    run("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
    for tmp, ns, name in ((tmp_a, a, a_name), (tmp_b, b, b_name)):
        run("ip", "link", "set", tmp, "netns", ns.name, "name", name)
        ns.ip("link", "set", name, "up")


def vtysh_conf(directory: Path) -> None:
    """Make ``directory`` an FRR configuration directory (a ``vtysh.conf`` as Debian
    ships it), so that the drivers and frr-reload.py write there after a reload, not in
    the host's ``/etc/frr``."""
    path = directory / "vtysh.conf"
    if not path.exists():
        path.write_text("service integrated-vtysh-config\n", encoding="utf-8")


class FrrInstance:
    """FRR daemons in one namespace, with private pid files and sockets."""

    def __init__(self, ns: Netns, directory: Path | None = None) -> None:
        self.ns = ns
        self._own_dir = directory is None
        self.dir = directory or Path(tempfile.mkdtemp(prefix=f"{ns.name}-frr-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.dir, "frr", "frr")
        self.pids: list[int] = []
        self.daemons: tuple[str, ...] = ()

    def start(self, daemons: tuple[str, ...] = FRR_DAEMONS) -> None:
        self.daemons = daemons
        for daemon in daemons:
            pidfile = self.dir / f"{daemon}.pid"
            pidfile.unlink(missing_ok=True)
            self.ns.exec(
                str(FRR_BIN / daemon),
                "-d",
                "-u",
                "frr",
                "-g",
                "frr",
                "-i",
                str(pidfile),
                "-z",
                str(self.dir / "zserv.api"),
                "--vty_socket",
                str(self.dir),
            )
            self.pids.append(wait_pid(pidfile))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.vtysh("show version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"FRR in {self.ns.name} did not answer vtysh")

    def vtysh(self, *commands: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        args = ["vtysh", "--vty_socket", str(self.dir)]
        for command in commands:
            args += ["-c", command]
        return run(*args, check=check)

    def load(self, config: str) -> None:
        """Apply a whole configuration to the running daemons."""
        path = self.dir / "lab.conf"
        path.write_text(config, encoding="utf-8")
        run("vtysh", "--vty_socket", str(self.dir), "-f", str(path))

    def reload_tool(self, mode: str, config: Path) -> subprocess.CompletedProcess[str]:
        vtysh_conf(config.parent)
        return run(
            str(FRR_BIN / "frr-reload.py"),
            mode,
            "--vty_socket",
            str(self.dir),
            "--rundir",
            str(self.dir),
            "--confdir",  # where it writes after a reload (not the host's /etc/frr)
            str(config.parent),
            str(config),
            check=False,
            timeout=60,
        )

    def restart(self) -> None:
        """Stop the daemons and start the same ones again, in the same directory."""
        for pid in self.pids:
            kill(pid)
        self.pids.clear()
        self.start(self.daemons)

    def stop(self) -> None:
        for pid in self.pids:
            kill(pid)
        self.pids.clear()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class BirdInstance:
    """One BIRD in a namespace, with a private control socket and pid file."""

    def __init__(self, ns: Netns, directory: Path | None = None) -> None:
        self.ns = ns
        self._own_dir = directory is None
        self.dir = directory or Path(tempfile.mkdtemp(prefix=f"{ns.name}-bird-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "bird.ctl"
        self.pid: int | None = None

    def start(self, config: Path) -> None:
        pidfile = self.dir / "bird.pid"
        pidfile.unlink(missing_ok=True)
        self.ns.exec("bird", "-c", str(config), "-s", str(self.socket), "-P", str(pidfile))
        self.pid = wait_pid(pidfile)

    def birdc(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("birdc", "-s", str(self.socket), *command, check=check)

    def restart(self, config: Path) -> None:
        """Stop BIRD and start it again from ``config``."""
        if self.pid is not None:
            kill(self.pid)
        self.start(config)

    def stop(self) -> None:
        if self.pid is not None:
            kill(self.pid)
            self.pid = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_pid(pidfile: Path, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            time.sleep(0.05)
    raise RuntimeError(f"{pidfile} did not appear")


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie (daemons are reparented to PID 1,
    which in a container may never reap them)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def kill(pid: int, timeout: float = 5, sig: int = signal.SIGTERM) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- upstream router configurations -------------------------------------------------------

UPSTREAM_FRR = """frr defaults traditional
!
interface br0
 ip ospf area 0.0.0.0
 ip ospf dead-interval 4
 ip ospf hello-interval 1
 ip router isis lab
 ipv6 ospf6 area 0.0.0.0
 ipv6 ospf6 dead-interval 4
 ipv6 ospf6 hello-interval 1
 ipv6 router isis lab
 isis hello-interval 1
exit
!
router rip
 allow-ecmp
 network br0
 timers basic 5 30 20
 version 2
exit
!
router ripng
 allow-ecmp
 network br0
 timers basic 5 30 20
exit
!
router bgp {asn}
 bgp router-id {v4}
 no bgp ebgp-requires-policy
 bgp bestpath as-path multipath-relax
 neighbor nodes peer-group
 neighbor nodes remote-as external
 neighbor nodes timers connect 1
 neighbor nodes6 peer-group
 neighbor nodes6 remote-as external
 neighbor nodes6 timers connect 1
 bgp listen range 10.0.0.0/24 peer-group nodes
 bgp listen range fd00::/64 peer-group nodes6
 !
 address-family ipv4 unicast
  maximum-paths 8
  neighbor nodes activate
 exit-address-family
 !
 address-family ipv6 unicast
  maximum-paths 8
  neighbor nodes6 activate
 exit-address-family
exit
!
router ospf
 ospf router-id {v4}
 timers throttle spf 0 50 1000
 timers throttle lsa all 0
 timers lsa min-arrival 0
exit
!
router ospf6
 ospf6 router-id {v4}
 timers throttle spf 0 50 1000
exit
!
router isis lab
 is-type level-2-only
 net 49.0001.0100.0000.0000.00
 lsp-gen-interval 1
 spf-delay-ietf init-delay 0 short-delay 50 long-delay 1000 holddown 500 time-to-learn 500
exit
!
"""

UPSTREAM_BIRD = """router id {v4};
protocol device {{ scan time 1; }}
# BIRD cannot choose the kernel protocol of the routes it installs (all are
# "proto bird"), so the kernel metric says which protocol a route came from.
filter lab_kernel {{
  if source = RTS_BGP then krt_metric = {bgp};
  if source ~ [RTS_OSPF, RTS_OSPF_IA, RTS_OSPF_EXT1, RTS_OSPF_EXT2] then krt_metric = {ospf};
  if source = RTS_RIP then krt_metric = {rip};
  accept;
}}
protocol kernel {{ ipv4 {{ import none; export filter lab_kernel; }}; metric 0; merge paths on; }}
protocol kernel {{ ipv6 {{ import none; export filter lab_kernel; }}; metric 0; merge paths on; }}
protocol bgp nodes {{
  local {v4} as {asn};
  neighbor range 10.0.0.0/24 external;
  ipv4 {{ import all; export none; }};
}}
protocol bgp nodes6 {{
  local {v6} as {asn};
  neighbor range fd00::/64 external;
  ipv6 {{ import all; export none; }};
}}
protocol ospf v2 {{
  ecmp yes;
  merge external yes;
  ipv4 {{ import all; export none; }};
  area 0 {{ interface "br0" {{ hello 1; dead 4; }}; }};
}}
protocol ospf v3 {{
  ecmp yes;
  merge external yes;
  ipv6 {{ import all; export none; }};
  area 0 {{ interface "br0" {{ hello 1; dead 4; }}; }};
}}
protocol rip {{
  ecmp yes;
  ipv4 {{ import all; export none; }};
  interface "br0" {{ update time 5; timeout time 30; garbage time 20; }};
}}
protocol rip ng {{
  ecmp yes;
  ipv6 {{ import all; export none; }};
  interface "br0" {{ update time 5; timeout time 30; garbage time 20; }};
}}
"""

BIRD_SOURCE_METRIC = {"bgp": 186, "ospf": 188, "rip": 189}
"""Kernel metric the upstream BIRD gives the routes of each protocol (the rt_protos
numbers FRR's zebra uses), so :meth:`Lab.routes` names the same protocols for both."""

NODE_BIRD_BOOT = """router id {v4};
protocol device {{ }}
"""


# -- the lab -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NodeSpec:
    name: str
    router: str  # bird | frr
    v4: str
    v6: str


@dataclass(frozen=True, kw_only=True)
class Route:
    prefix: str
    proto: str
    nexthops: tuple[str, ...]


@dataclass
class LabNode:
    spec: NodeSpec
    ns: Netns
    dir: Path
    bird: BirdInstance | None = None
    frr: FrrInstance | None = None
    agent: subprocess.Popen[bytes] | None = None
    agent_log: Path | None = None

    @property
    def config_path(self) -> Path:
        return self.dir / ("bird.conf" if self.spec.router == "bird" else "frr.conf")

    @property
    def socket_path(self) -> Path:
        if self.bird is not None:
            return self.bird.socket
        assert self.frr is not None
        return self.frr.dir

    @property
    def status_file(self) -> Path:
        return self.dir / "status.json"


@dataclass
class Lab:
    workdir: Path
    nodes: list[NodeSpec]
    upstream_router: str = "frr"
    tag: str = "lab"
    upstream: Netns | None = None
    upstream_bird: BirdInstance | None = None
    upstream_frr: FrrInstance | None = None
    members: dict[str, LabNode] = field(default_factory=dict)
    _owners: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    # -- building ---------------------------------------------------------------------

    def start(self) -> Lab:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        _traversable(self.workdir)
        up = self.upstream = Netns(f"{self.tag}up").create()
        up.ip("link", "add", "br0", "type", "bridge")
        up.ip("addr", "add", f"{UPSTREAM_V4}/24", "dev", "br0")
        up.ip("addr", "add", f"{UPSTREAM_V6}/64", "dev", "br0", "nodad")
        up.ip("link", "set", "br0", "up")
        up.sysctl("net.ipv4.ip_forward", "1")
        up.sysctl("net.ipv6.conf.all.forwarding", "1")
        for i, spec in enumerate(self.nodes):
            ns = Netns(f"{self.tag}n{i}").create()
            directory = self.workdir / spec.name
            directory.mkdir(parents=True, exist_ok=True)
            member = self.members[spec.name] = LabNode(spec=spec, ns=ns, dir=directory)
            peer = f"v{i}"
            up.ip("link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
            up.ip("link", "set", peer, "master", "br0")
            up.ip("link", "set", peer, "up")
            ns.ip("addr", "add", f"{spec.v4}/24", "dev", "eth0")
            ns.ip("addr", "add", f"{spec.v6}/64", "dev", "eth0", "nodad")
            ns.ip("link", "set", "eth0", "up")
            ns.add_ifb("kube-lb0")
            self._start_node_router(member)
        if self.upstream_router == "frr":
            self.upstream_frr = FrrInstance(up, self.workdir / "upstream-frr")
            self.upstream_frr.start()
            self.upstream_frr.load(UPSTREAM_FRR.format(asn=UPSTREAM_ASN, v4=UPSTREAM_V4))
        else:
            self.upstream_bird = BirdInstance(up, self.workdir / "upstream-bird")
            conf = self.upstream_bird.dir / "bird.conf"
            conf.write_text(
                UPSTREAM_BIRD.format(
                    asn=UPSTREAM_ASN, v4=UPSTREAM_V4, v6=UPSTREAM_V6, **BIRD_SOURCE_METRIC
                )
            )
            self.upstream_bird.start(conf)

    def _start_node_router(self, member: LabNode) -> None:
        if member.spec.router == "bird":
            member.bird = BirdInstance(member.ns, member.dir / "bird")
            member.config_path.write_text(NODE_BIRD_BOOT.format(v4=member.spec.v4))
            member.bird.start(member.config_path)
        else:
            member.frr = FrrInstance(member.ns, member.dir / "frr")
            vtysh_conf(member.dir)  # beside member.config_path
            member.frr.start()

    def restart_node_router(self, name: str) -> None:
        """Kill the node's router daemon(s) hard and start them again, as a crash and a
        supervisor restart would; the agent is left alone."""
        member = self.members[name]
        if member.bird is not None:
            assert member.bird.pid is not None
            kill(member.bird.pid, sig=signal.SIGKILL)
            member.bird.start(member.config_path)
        else:
            assert member.frr is not None
            for pid in member.frr.pids:
                kill(pid, sig=signal.SIGKILL)
            member.frr.pids.clear()
            member.frr.start()

    # -- agents -----------------------------------------------------------------------

    def start_agent(self, name: str, source: Path | None, *extra: str) -> None:
        """Run the agent in the node's namespace on a manifest directory, or (source
        None) on what ``extra`` says, such as ``--kubernetes --kubeconfig FILE``."""
        member = self.members[name]
        member.agent_log = member.dir / "agent.log"
        log = member.agent_log.open("ab")
        member.agent = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                member.ns.name,
                sys.executable,
                "-m",
                "lbroute",
                "-v",
                "agent",
                *(("--source", str(source)) if source is not None else ()),
                "--node",
                name,
                "--router",
                member.spec.router,
                "--router-config",
                str(member.config_path),
                "--router-socket",
                str(member.socket_path),
                "--status-file",
                str(member.status_file),
                "--metrics-port",
                "0",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def stop_agent(self, name: str) -> None:
        member = self.members[name]
        if member.agent is not None:
            member.agent.send_signal(signal.SIGTERM)
            try:
                member.agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                member.agent.kill()
                member.agent.wait()
            member.agent = None

    def status(self, name: str) -> dict[str, Any]:
        try:
            return dict(json.loads(self.members[name].status_file.read_text()))
        except (FileNotFoundError, ValueError):
            return {}

    # -- the upstream view ------------------------------------------------------------

    def routes(self) -> list[Route]:
        """Routes the upstream router installed in its kernel (learned ones only), with
        the protocol as iproute2 names FRR's (bgp, ospf, rip, ripng, isis) for either
        upstream router."""
        assert self.upstream is not None
        found = []
        for family in ("-4", "-6"):
            out = run("ip", "-n", self.upstream.name, "-j", family, "route", "show").stdout
            for r in json.loads(out or "[]"):
                proto = str(r.get("protocol", ""))
                if proto in ("kernel", "boot", "static", "ra") or r.get("dst", "").startswith(
                    "fe80"
                ):
                    continue
                if proto == "bird":
                    proto = _BIRD_PROTOCOLS.get(r.get("metric"), proto)
                    if proto == "rip" and family == "-6":
                        proto = "ripng"
                hops = [h.get("gateway", "") for h in r.get("nexthops", [])] or [
                    r.get("gateway", "")
                ]
                found.append(
                    Route(prefix=_prefix(r["dst"]), proto=proto, nexthops=tuple(sorted(hops)))
                )
        return sorted(found, key=lambda r: (":" in r.prefix, r.prefix))

    def route(self, prefix: str) -> Route | None:
        return next((r for r in self.routes() if r.prefix == prefix), None)

    def via(self, route: Route) -> tuple[str, ...]:
        """The nodes behind ``route``'s next hops, sorted (see :meth:`node_of`)."""
        return tuple(sorted(self.node_of(hop) for hop in route.nexthops))

    def node_of(self, address: str) -> str:
        """The node with ``address`` on its eth0 (link-local ones included), or the
        address itself when no node has it."""
        if not self._owners:
            for name, member in self.members.items():
                for link in json.loads(member.ns.ip("-j", "addr", "show", "eth0") or "[]"):
                    for info in link.get("addr_info", []):
                        self._owners[str(info.get("local", ""))] = name
        return self._owners.get(address, address)

    def wait_for(self, predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
        """Poll ``predicate`` until it returns something truthy; return it (or raise)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise TimeoutError(f"condition not met within {timeout}s (last: {last!r})")

    # -- teardown ---------------------------------------------------------------------

    def stop(self) -> None:
        for name in list(self.members):
            with contextlib.suppress(Exception):
                self.stop_agent(name)
        for member in self.members.values():
            for inst in (member.bird, member.frr):
                if inst is not None:
                    with contextlib.suppress(Exception):
                        inst.stop()
        for inst in (self.upstream_bird, self.upstream_frr):
            if inst is not None:
                with contextlib.suppress(Exception):
                    inst.stop()
        for member in self.members.values():
            member.ns.delete()
        if self.upstream is not None:
            self.upstream.delete()


def _traversable(path: Path) -> None:
    """FRR's daemons run as user frr: let it reach its socket directories under ``path``
    (temporary directories are often 0700)."""
    for p in (path, *path.parents):
        mode = p.stat().st_mode
        if not mode & 0o001:
            p.chmod(mode | 0o001)


_BIRD_PROTOCOLS = {metric: name for name, metric in BIRD_SOURCE_METRIC.items()}


def _prefix(dst: str) -> str:
    if "/" in dst:
        return dst
    return f"{dst}/{128 if ':' in dst else 32}"
