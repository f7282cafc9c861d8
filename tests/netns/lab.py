"""Throw-away network namespaces and real routing daemons for the root-only tests.

Every namespace gets a unique name (``lbrt-<pid>-<n>``) and every daemon is started by
us with its own pid file, zserv socket and vty socket directory, so cleanup can stop
exactly what it started (by pid) and delete exactly what it made, even on failure.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

FRR_BIN = Path("/usr/lib/frr")
FRR_DAEMONS = ("zebra", "bgpd", "ospfd", "ospf6d", "ripd", "ripngd", "isisd", "bfdd", "staticd")
_counter = itertools.count()


def run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=check, timeout=timeout)


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

    def add_ifb(self, name: str) -> None:
        """An interface to hang configuration on (this kernel has no dummy type)."""
        self.ip("link", "add", name, "type", "ifb")
        self.ip("link", "set", name, "up")

    def delete(self) -> None:
        run("ip", "netns", "del", self.name, check=False)


class FrrInstance:
    """FRR daemons in one namespace, with private pid files and sockets."""

    def __init__(self, ns: Netns) -> None:
        self.ns = ns
        self.dir = Path(tempfile.mkdtemp(prefix=f"{ns.name}-frr-"))
        shutil.chown(self.dir, "frr", "frr")
        self.pids: list[int] = []

    def start(self, daemons: tuple[str, ...] = FRR_DAEMONS) -> None:
        for daemon in daemons:
            pidfile = self.dir / f"{daemon}.pid"
            self.ns.exec(
                str(FRR_BIN / daemon), "-d", "-u", "frr", "-g", "frr",
                "-i", str(pidfile), "-z", str(self.dir / "zserv.api"),
                "--vty_socket", str(self.dir),
            )  # fmt: skip
            self.pids.append(_wait_pid(pidfile))
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

    def reload_tool(self, mode: str, config: Path) -> subprocess.CompletedProcess[str]:
        return run(
            str(FRR_BIN / "frr-reload.py"), mode, "--vty_socket", str(self.dir),
            "--rundir", str(self.dir), str(config), check=False, timeout=60,
        )  # fmt: skip

    def stop(self) -> None:
        for pid in self.pids:
            _kill(pid)
        self.pids.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


class BirdInstance:
    """One BIRD in a namespace, with a private control socket and pid file."""

    def __init__(self, ns: Netns) -> None:
        self.ns = ns
        self.dir = Path(tempfile.mkdtemp(prefix=f"{ns.name}-bird-"))
        self.socket = self.dir / "bird.ctl"
        self.pid: int | None = None

    def start(self, config: Path) -> None:
        pidfile = self.dir / "bird.pid"
        self.ns.exec("bird", "-c", str(config), "-s", str(self.socket), "-P", str(pidfile))
        self.pid = _wait_pid(pidfile)

    def birdc(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("birdc", "-s", str(self.socket), *command, check=check)

    def stop(self) -> None:
        if self.pid is not None:
            _kill(self.pid)
            self.pid = None
        shutil.rmtree(self.dir, ignore_errors=True)


def _wait_pid(pidfile: Path, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            time.sleep(0.05)
    raise RuntimeError(f"{pidfile} did not appear")


def _kill(pid: int, timeout: float = 5) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie (daemons are reparented to PID 1,
    which in a container may never reap them)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
