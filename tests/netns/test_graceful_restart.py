"""Restarting a node's router as its sidecar does keeps the node's routes at the upstream
when the Peer sets ``gracefulRestart``; without it they are withdrawn (the control).

A lab (lbroute.lab, tag ``grs``): node-a announces one ETP Cluster prefix over BGP to an
FRR upstream (a graceful restart helper, FRR's default); a client namespace behind the
upstream pings the Service address every 10 ms; ``ip monitor route`` in the upstream's
namespace records every change of the upstream's kernel routes. Then node-a's router is
restarted as the DaemonSet's sidecar container is (stop on SIGTERM, start again) while
the agent keeps running and applies its configuration again when it sees the new daemon:

- BIRD: the real ``docker/bird/run-bird`` runs BIRD (its paths set by environment), and
  gets SIGTERM; then a new ``run-bird`` starts.
- FRR: the real ``docker/frr/run-frr`` (watchfrr and the daemons), in a mount namespace
  of its own where the node's directories are FRR's fixed paths (/etc/frr, /run/frr,
  /var/tmp/frr, and the script's own /usr/local/share/lbroute/frr), gets SIGTERM; then a
  new ``run-frr`` starts.

With gracefulRestart the upstream never removes its route to the prefix, no ping is
lost, and the route is fresh (not stale) again within seconds; without it the route is
withdrawn.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lbroute.lab import Lab, Netns, NodeSpec
from lbroute.lab.daemons import kill
from lbroute.lab.topology import LabNode

PREFIX = "192.0.2.0/24"
ADDRESS = "192.0.2.10"
CLIENT = "10.9.0.10"
DOCKER = Path(__file__).resolve().parents[2] / "docker"
RUN_BIRD = DOCKER / "bird" / "run-bird"
FRR_PATHS = (
    'mount --bind "$0" /etc/frr && '
    'mount -t tmpfs lbroute-lab /run && mkdir /run/frr && mount --bind "$1" /run/frr && '
    "mount -t tmpfs lbroute-lab /var/tmp && mkdir /var/tmp/frr && "
    "mount -t tmpfs lbroute-lab /usr/local/share && mkdir /usr/local/share/lbroute && "
    'ln -s "$2" /usr/local/share/lbroute/frr && exec "$2/run-frr"'
)
"""Run in a private mount namespace: FRR's fixed paths become the node's directories
($0: /etc/frr, $1: /run/frr), and the image's path of run-frr's files is docker/frr."""

MANIFESTS = """\
apiVersion: v1
kind: Node
metadata: {{name: node-a}}
status: {{addresses: [{{type: InternalIP, address: 10.0.0.11}}]}}
---
apiVersion: lbroute.io/v1alpha1
kind: NodeAgent
metadata: {{name: nodes, namespace: lbroute}}
spec: {{localASN: 64512}}
---
apiVersion: lbroute.io/v1alpha1
kind: ServiceGroup
metadata: {{name: web, namespace: lbroute}}
spec:
  default: true
  protocols: [bgp]
  pools: [{{cidr: {prefix}}}]
---
apiVersion: lbroute.io/v1alpha1
kind: Peer
metadata: {{name: upstream, namespace: lbroute}}
spec:
  bgp: {{address: 10.0.0.1, asn: 65000, gracefulRestart: {graceful}}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  annotations: {{lbroute.io/allocated-from: "web:{prefix}"}}
spec: {{type: LoadBalancer, loadBalancerClass: lbroute.io/lbroute, externalTrafficPolicy: Cluster}}
status: {{loadBalancer: {{ingress: [{{ip: {address}}}]}}}}
"""


@dataclass
class Sidecar:
    """node-a's router container: what runs it, and its restart as the pod does it."""

    lab: Lab
    script: subprocess.Popen[bytes] | None = None
    bird: int | None = None

    @property
    def member(self) -> LabNode:
        return self.lab.members["node-a"]

    def start(self) -> None:
        member = self.member
        if member.bird is None:
            assert member.frr is not None
            with (member.dir / "run-frr.log").open("ab") as log:
                self.script = subprocess.Popen(
                    ["ip", "netns", "exec", member.ns.name, "unshare", "--mount",
                     "--propagation", "private", "sh", "-c", FRR_PATHS, str(member.dir),
                     str(member.frr.dir), str(DOCKER / "frr")],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            frr = member.frr
            self.lab.wait_for(lambda: frr.vtysh("show version", check=False).returncode == 0)
            return
        env = {**os.environ, "LBROUTE_BIRD_CONF": str(member.config_path),
               "LBROUTE_BIRD_SOCKET": str(member.bird.socket)}  # fmt: skip
        log = (member.dir / "run-bird.log").open("ab")
        self.script = subprocess.Popen(
            ["ip", "netns", "exec", member.ns.name, "sh", str(RUN_BIRD)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.bird = self.lab.wait_for(self._bird_child, timeout=10)
        bird = member.bird
        self.lab.wait_for(lambda: bird.birdc("show status", check=False).returncode == 0)

    def _bird_child(self) -> int | None:
        assert self.script is not None
        return next(iter(birds(self.script.pid)), None)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, as the kubelet stops the container; wait until the router is gone."""
        member = self.member
        if self.script is not None:
            self.script.send_signal(signal.SIGTERM)
            try:
                self.script.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.script.kill()
                self.script.wait()
            self.script = None
        if self.bird is not None:
            kill(self.bird)
            self.bird = None
        if member.frr is not None:  # any daemon run-frr left behind
            for pidfile in member.frr.dir.glob("*.pid"):
                with contextlib.suppress(OSError, ValueError):
                    kill(int(pidfile.read_text().strip()))


def birds(script: int) -> list[int]:
    """The ``bird`` processes the sidecar script ``script`` runs (its children)."""
    found = []
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{script}/task/{script}/children").read_text().split()
        for pid in children:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "bird":
                    found.append(int(pid))
    return found


@pytest.fixture(params=["bird", "frr"])
def router(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[True, False], ids=["graceful", "control"])
def graceful(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def lab(router: str, graceful: bool, tmp_path: Path) -> Iterator[tuple[Lab, Netns, Sidecar]]:
    source = tmp_path / "manifests"
    source.mkdir()
    (source / "lab.yaml").write_text(
        MANIFESTS.format(prefix=PREFIX, address=ADDRESS, graceful=str(graceful).lower())
    )
    lab = Lab(
        workdir=tmp_path / "lab",
        nodes=[NodeSpec(name="node-a", router=router, v4="10.0.0.11", v6="fd00::11")],
        tag="grs",
    )
    client = Netns("grscl")
    sidecar = Sidecar(lab)
    try:
        lab.start()
        assert lab.upstream is not None
        member = lab.members["node-a"]
        # The lab's router gives way to the sidecar's script.
        if member.bird is not None:
            member.bird.stop()
        if member.frr is not None:
            for pid in member.frr.pids:
                kill(pid)
            member.frr.pids.clear()
        sidecar.start()
        client.create()
        lab.upstream.ip("link", "add", "cl0", "type", "veth", "peer", "name", "eth0",
                        "netns", client.name)  # fmt: skip
        lab.upstream.ip("addr", "add", "10.9.0.1/24", "dev", "cl0")
        lab.upstream.ip("link", "set", "cl0", "up")
        client.ip("addr", "add", f"{CLIENT}/24", "dev", "eth0")
        client.ip("link", "set", "eth0", "up")
        client.ip("route", "add", "default", "via", "10.9.0.1")
        member.ns.ip("route", "add", "10.9.0.0/24", "via", "10.0.0.1")
        lab.start_agent("node-a", source)
        yield lab, client, sidecar
    finally:
        lab.stop_agent("node-a")
        with contextlib.suppress(Exception):
            sidecar.stop(timeout=30)
        lab.stop()
        client.delete()


def upstream_path(lab: Lab) -> dict[str, object] | None:
    """The upstream's BGP path to the prefix (FRR's JSON), or None."""
    assert lab.upstream_frr is not None
    out = lab.upstream_frr.vtysh(f"show bgp ipv4 unicast {PREFIX} json", check=False).stdout
    paths = json.loads(out or "{}").get("paths", [])
    return dict(paths[0]) if paths else None


def fresh(lab: Lab) -> bool:
    path = upstream_path(lab)
    return path is not None and not path.get("stale", False)


@contextlib.contextmanager
def monitor(lab: Lab, log: Path) -> Iterator[Path]:
    """``ip monitor route`` in the upstream's namespace, written to ``log``."""
    assert lab.upstream is not None
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["ip", "-n", lab.upstream.name, "monitor", "route"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(0.2)  # subscribed before anything happens
        yield log
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def withdrawals(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines()
            if line.startswith("Deleted") and PREFIX in line]  # fmt: skip


@contextlib.contextmanager
def pinging(client: Netns) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        ["ip", "netns", "exec", client.name, "ping", "-n", "-q", "-i", "0.01", "-W", "1",
         ADDRESS],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def ping_counts(proc: subprocess.Popen[str]) -> tuple[int, int]:
    """(transmitted, received), ping stopped now."""
    proc.send_signal(signal.SIGINT)
    text, _ = proc.communicate(timeout=10)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    assert m, text
    return int(m.group(1)), int(m.group(2))


def test_router_restart_keeps_routes_with_graceful_restart(
    lab: tuple[Lab, Netns, Sidecar], graceful: bool, tmp_path: Path
) -> None:
    lab_, client, sidecar = lab
    lab_.wait_for(lambda: lab_.route(PREFIX) is not None and fresh(lab_), timeout=60)
    with monitor(lab_, tmp_path / "monitor.log") as log, pinging(client) as ping:
        time.sleep(1)
        started = time.monotonic()
        sidecar.stop()
        stopped = time.monotonic() - started
        if graceful:
            path = upstream_path(lab_)
            assert path is not None and path.get("stale"), ("not kept as stale", path)
        else:
            lab_.wait_for(lambda: upstream_path(lab_) is None, timeout=10)
        sidecar.start()
        lab_.wait_for(lambda: fresh(lab_), timeout=60)
        back = time.monotonic() - started
        lab_.wait_for(lambda: lab_.route(PREFIX) is not None, timeout=10)
        time.sleep(0.5)
        sent, received = ping_counts(ping)
    gone = withdrawals(log)
    print(f"stopped in {stopped:.1f}s; fresh again after {back:.1f}s; "
          f"withdrawals {len(gone)}; pings {sent - received}/{sent} lost")  # fmt: skip
    if graceful:
        assert not gone, ("the upstream withdrew the route", gone)
        assert received >= sent - 1, ("pings lost", sent, received)  # 1: in flight
        assert back < 60
    else:
        assert gone, "the control: without gracefulRestart the route is withdrawn"
    member = lab_.members["node-a"]
    assert ADDRESS in member.ns.ip("addr", "show", "kube-lb0"), "the agent removed the address"


def test_run_bird_sets_aside_a_kept_configuration_it_cannot_parse(tmp_path: Path) -> None:
    """The configuration is kept on the node across pod replacement; one that this BIRD
    rejects (a newer BIRD's syntax, say) must not keep the sidecar from starting: it is
    moved to bird.conf.unparsed and BIRD runs the minimal configuration."""
    ns = Netns().create()
    conf = tmp_path / "bird.conf"
    kept = "router id 10.0.0.11;\nprotocol device { scan time 10; }\nprotocol nonsense {}\n"
    conf.write_text(kept)
    env = {**os.environ, "LBROUTE_BIRD_CONF": str(conf),
           "LBROUTE_BIRD_SOCKET": str(tmp_path / "bird.ctl")}  # fmt: skip
    script = None
    try:
        with (tmp_path / "run-bird.log").open("ab") as log:
            script = subprocess.Popen(
                ["ip", "netns", "exec", ns.name, "sh", str(RUN_BIRD)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline:
            status = subprocess.run(
                ["birdc", "-s", str(tmp_path / "bird.ctl"), "show", "status"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if status.returncode == 0 and "Daemon is up" in status.stdout:
                break
            time.sleep(0.1)
        assert status is not None and "Daemon is up" in status.stdout, (
            status,
            (tmp_path / "run-bird.log").read_text(),
        )
        assert (tmp_path / "bird.conf.unparsed").read_text() == kept
        assert conf.read_text() == (DOCKER / "bird" / "bird.conf").read_text()
        assert "does not parse" in (tmp_path / "run-bird.log").read_text()
    finally:
        if script is not None:
            children = birds(script.pid)
            script.send_signal(signal.SIGTERM)
            try:
                script.wait(timeout=10)
            except subprocess.TimeoutExpired:
                script.kill()
                script.wait()
            for pid in children:
                kill(pid)
        ns.delete()
