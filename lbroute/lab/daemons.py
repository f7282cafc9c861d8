"""The routing daemons a lab starts: FRR (one instance per namespace, with its own
pid files, zserv socket and vty directory) and BIRD, and stopping them by pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from lbroute.lab.netns import Netns, run

FRR_BIN = Path("/usr/lib/frr")
FRR_DAEMONS = ("zebra", "bgpd", "ospfd", "ospf6d", "ripd", "ripngd", "isisd", "bfdd", "staticd")


def vtysh_conf(directory: Path) -> None:
    """Make ``directory`` an FRR configuration directory (a ``vtysh.conf`` as Debian
    ships it), so that the drivers and frr-reload.py write there after a reload, not in
    the host's ``/etc/frr``."""
    path = directory / "vtysh.conf"
    if not path.exists():
        path.write_text("service integrated-vtysh-config\n", encoding="utf-8")


PRIVATE_RUNDIR = (
    'if [ -d /run/frr ]; then mount --bind "$0" /run/frr; '
    "else mount -t tmpfs -o mode=0755 lbroute-lab /run && mkdir /run/frr && "
    'mount --bind "$0" /run/frr; fi && exec "$@"'
)
"""A shell script, run in a mount namespace of the daemon's own, that puts the daemon's
directory where FRR writes what it has no option for (``/run/frr``: ospfd's and ospf6d's
graceful-restart state, ospf6d's authentication sequence number), then runs the daemon.
Nothing a lab daemon writes reaches the host's ``/run/frr``, which a host FRR uses."""


def in_own_rundir(directory: Path, *args: str) -> tuple[str, ...]:
    """``args`` run with ``directory`` as its ``/run/frr`` (:data:`PRIVATE_RUNDIR`), in a
    private mount namespace so that the mount is seen by the daemon alone."""
    return ("unshare", "--mount", "--propagation", "private", "sh", "-c", PRIVATE_RUNDIR,
            str(directory), *args)  # fmt: skip


class FrrInstance:
    """FRR daemons in one namespace, with private pid files, sockets and ``/run/frr``."""

    def __init__(self, ns: Netns, directory: Path | None = None) -> None:
        self.ns = ns
        self._own_dir = directory is None
        self.dir = directory or Path(tempfile.mkdtemp(prefix=f"{ns.name}-frr-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.dir, "frr", "frr")
        self.pids: list[int] = []
        self.daemons: tuple[str, ...] = ()
        self.config: Path | None = None

    def start(self, daemons: tuple[str, ...] = FRR_DAEMONS, *, config: Path | None = None) -> None:
        """Start ``daemons``; with ``config``, each reads that file as it starts (``-f``),
        as daemons started with a configuration file of their own do."""
        self.daemons, self.config = daemons, config
        own = ("-f", str(config)) if config is not None else ()
        for daemon in daemons:
            pidfile = self.dir / f"{daemon}.pid"
            # bfdd's control socket is /var/run/frr/bfdd.sock for every bfdd on the
            # host unless named: labs started at the same time fought over it.
            private = ("--bfdctl", str(self.dir / "bfdd.sock")) if daemon == "bfdd" else ()
            args = (
                str(FRR_BIN / daemon),
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
                *private,
                *own,
            )
            self.pids.append(self._start_daemon(args, pidfile))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.vtysh("show version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"FRR in {self.ns.name} did not answer vtysh")

    def _start_daemon(self, args: tuple[str, ...], pidfile: Path, attempts: int = 3) -> int:
        """Start one daemon in the background; its pid.

        The daemons run as user frr, so every directory above :attr:`dir` must let it
        through (:func:`traversable`), and that is made so again before each start:
        every pytest session run as root on the host resets its base temporary
        directory (``/tmp/pytest-of-root``) to 0700, also while a lab under it runs,
        and a daemon started then cannot create its pid file ("Can't create pid lock
        file ... (Permission denied), exiting": exit status 1, the restart that
        failed now and then). A start that fails so is tried again."""
        for attempt in range(1, attempts + 1):
            traversable(self.dir)
            pidfile.unlink(missing_ok=True)
            started = self.ns.exec(*in_own_rundir(self.dir, args[0], "-d", *args[1:]),
                                   check=False)  # fmt: skip
            if started.returncode == 0:
                with contextlib.suppress(RuntimeError):
                    return wait_pid(pidfile)
            if attempt == attempts:
                said = (started.stdout + started.stderr).strip()[-2000:]
                raise RuntimeError(
                    f"{args[0]} in {self.ns.name} did not start (exit status "
                    f"{started.returncode}, {said or 'nothing said'}); {self._said(args)}"
                )
            time.sleep(0.2)
        raise AssertionError("unreachable")

    def _said(self, args: tuple[str, ...]) -> str:
        """What a daemon that died while starting says when started in the foreground
        (for 5 s at most), logging to its standard output."""
        try:
            out = self.ns.exec(*in_own_rundir(self.dir, *args, "--log", "stdout"), check=False,
                               timeout=5)  # fmt: skip
        except subprocess.TimeoutExpired:
            return "in the foreground it started (and was stopped after 5 s)"
        return f"in the foreground it exited {out.returncode}: {(out.stdout + out.stderr)[-2000:]}"

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
            "--stdout",  # not the host's /var/log/frr/frr-reload.log
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
        self.start(self.daemons, config=self.config)

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


def traversable(path: Path) -> None:
    """Let user frr reach ``path`` (FRR's daemons keep their pid files and sockets
    there): every directory above it searchable by others (temporary directories are
    often 0700)."""
    for p in (path, *path.parents):
        mode = p.stat().st_mode
        if not mode & 0o001:
            p.chmod(mode | 0o001)


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
