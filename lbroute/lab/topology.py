"""The lab itself: nodes running the agent and BIRD or FRR, an upstream router, one
link; built by :meth:`Lab.start`, read by :meth:`Lab.routes`, removed by :meth:`Lab.stop`.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbroute.lab.configs import (
    BIRD_SOURCE_METRIC,
    NODE_BIRD_BOOT,
    UPSTREAM_ASN,
    UPSTREAM_BIRD,
    UPSTREAM_FRR,
    UPSTREAM_V4,
    UPSTREAM_V6,
)
from lbroute.lab.daemons import BirdInstance, FrrInstance, kill, traversable, vtysh_conf
from lbroute.lab.netns import Netns, run


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
        traversable(self.workdir)
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
            agent_command(
                member.ns.name,
                name,
                router=member.spec.router,
                config=member.config_path,
                socket=member.socket_path,
                status=member.status_file,
                source=source,
                extra=extra,
            ),
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


_BIRD_PROTOCOLS = {metric: name for name, metric in BIRD_SOURCE_METRIC.items()}


def _prefix(dst: str) -> str:
    if "/" in dst:
        return dst
    return f"{dst}/{128 if ':' in dst else 32}"


def agent_command(
    ns: str,
    node: str,
    *,
    router: str,
    config: Path,
    socket: Path,
    status: Path,
    source: Path | None,
    extra: tuple[str, ...] | list[str] = (),
) -> list[str]:
    """``lbroute -v agent`` for ``node``, run in namespace ``ns`` on a manifest directory
    (``source``; None: ``extra`` says, e.g. ``--kubernetes --kubeconfig FILE``), with its
    router files and status file where given and no metrics port."""
    return [
        "ip", "netns", "exec", ns, sys.executable, "-m", "lbroute", "-v", "agent",
        *(("--source", str(source)) if source is not None else ()),
        "--node", node,
        "--router", router,
        "--router-config", str(config),
        "--router-socket", str(socket),
        "--status-file", str(status),
        "--metrics-port", "0",
        *extra,
    ]  # fmt: skip
