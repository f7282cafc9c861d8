"""FRR through ``vtysh`` and ``frr-reload.py``: :class:`FrrDriver` (the sessions it
reports are read by :mod:`nodeagent.routers.frr_sessions`).

A configuration is checked by ``vtysh --dryrun`` before the file is touched, written
atomically, then made the running one by the cheapest way that works: only the
prefix-list and route-map changes (:mod:`nodeagent.routers.frr_delta`) when FRR runs the
previous file, the whole file through one ``vtysh -f`` for each daemon when the daemons
run nothing, otherwise ``frr-reload.py --reload``. Each daemon is given only the
prefix-lists and route-maps its own routers use (``vtysh -d``), by the first load and by
every policy change, and after a reload the driver takes from each daemon what it does
not use: a daemon holding a route-map runs every route-map it holds again when one
changes, so a change to a BGP neighbor's route-map costs bgpd alone, in proportion to
bgpd's own (bench/README.md, "where FRR's time goes").

Whatever the way, success is FRR running the file: ``show running-config`` printing the
file's statements (the common case, checked in a fraction of a second), or else
``frr-reload.py --test`` finding nothing left to change.

Managed mode means lbroute's text is FRR's whole configuration, whatever FRR ran before
(another ``router bgp``, stray policy, IGPs, other defaults, a VRF, BFD peers, interface
descriptions): frr-reload.py removes what the text does not have. What it cannot change
the driver does itself: a daemon's ``hostname`` (vtysh runs that command in its own
process only: the driver tells the daemons), and the lines frr-reload.py neither
removes nor compares (passwords, ``agentx``, ``line vty`` settings: the driver sends
their ``no`` commands and checks them after the reload). The one line FRR cannot change
at runtime is ``frr version`` (each daemon prints its own build's): the check ignores
exactly that line.

What the apply comes to (:class:`~nodeagent.routers.driver.Outcome`): rejected when
``vtysh --dryrun`` refuses the text or FRR refuses lines while loading them (the previous
file is then put back and reloaded); not converged when FRR took every line and still
runs something else (the error names the lines; the file stays, for the retries);
unavailable when FRR does not answer.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbroute.model.api import Router
from nodeagent.routers.check import check_config, tool
from nodeagent.routers.driver import (
    ApplyResult,
    Outcome,
    Session,
    failed,
    read_file,
    redact,
    replace_file,
    restore_file,
)
from nodeagent.routers.frr_delta import (
    POLICY_DAEMONS,
    Batches,
    frr_bfd_defaults,
    frr_commands_by_daemon,
    frr_hostnames,
    frr_is_empty,
    frr_not_reloaded,
    frr_not_reloaded_commands,
    frr_policy_delta_by_daemon,
    frr_policy_strays,
    frr_runs,
    frr_statements,
    frr_version_line,
)
from nodeagent.routers.frr_sessions import (
    bfd_sessions,
    bgp_uptimes,
    isis_sessions,
    items,
    ospf6_sessions,
    ospf_sessions,
)
from nodeagent.routers.process import Output, call

FRR_RELOAD = Path("/usr/lib/frr/frr-reload.py")
FRR_CONFDIR = Path("/etc/frr")

log = logging.getLogger(__name__)


class FrrDriver:
    """FRR through ``vtysh --dryrun`` and ``frr-reload.py``.

    ``frr-reload.py --reload`` applies the difference between the file and the running
    configuration; it may report errors for lines it did apply (a per-neighbor
    ``graceful-restart`` sent twice), so success is decided afterwards by
    ``frr-reload.py --test``: nothing left to add or delete. When lines are left, it
    reloads once more: frr-reload.py 8.4 removes a whole ``bfd`` block with ``no bfd``
    and then re-creates an empty one to delete the profiles inside it, which only a
    second pass removes.
    """

    def __init__(
        self,
        config_path: Path | str,
        vty_socket_dir: Path | str,
        *,
        frr_reload: Path | str = FRR_RELOAD,
        timeout: float = 60,
    ) -> None:
        self.config_path = Path(config_path)
        self.vty_socket_dir = Path(vty_socket_dir)
        self.frr_reload = str(frr_reload)
        self.timeout = timeout
        self._running: tuple[str, str] | None = None
        """The text FRR was last seen running (checked by ``frr-reload.py --test``), and
        the daemons' generation then."""

    def apply(self, text: str) -> ApplyResult:
        started = time.monotonic()
        tool(self.frr_reload)  # before touching files
        parsed = check_config(Router.FRR, text)
        if not parsed.ok:
            log.info(
                "vtysh --dryrun rejected the configuration for %s; nothing changed",
                self.config_path,
            )
            return failed(parsed.describe(), started, Outcome.REJECTED)
        generation = self.generation()
        if generation is None:
            said = _strip_ansi(self._vtysh("show modules").output).strip() or "no reply"
            log.info("FRR does not answer; %s not changed", self.config_path)
            return failed(
                f"FRR does not answer (vtysh: {said}); nothing changed",
                started,
                Outcome.UNAVAILABLE,
            )
        try:
            previous = replace_file(self.config_path, text)
        except OSError as exc:
            return failed(f"cannot write {self.config_path}: {exc}", started, Outcome.UNAVAILABLE)
        if self._apply_delta(previous, text, generation):
            log.info("FRR configuration %s applied (policy changes only)", self.config_path)
            return ApplyResult(duration=time.monotonic() - started)
        shown = self._vtysh("show running-config")
        told = self._tell_hostname(text, shown.stdout) if shown.returncode == 0 else ""
        if shown.returncode == 0 and self._load_empty(text, shown.stdout):
            log.info("FRR configuration %s applied (FRR ran none before)", self.config_path)
            return ApplyResult(duration=time.monotonic() - started)
        self._running = None  # until a reload is checked
        if shown.returncode == 0:
            self._remove_not_reloaded(text, shown.stdout)
        reload, pending = self._reload(text)
        if pending.clean:
            self._trim(text)
            self._seen_running(text)
            log.info("FRR configuration %s applied", self.config_path)
            return ApplyResult(duration=time.monotonic() - started)
        return self._not_taken(text, previous, reload, pending, told, started)

    def _not_taken(
        self,
        text: str,
        previous: str | None,
        reload: Output,
        pending: _Diff,
        told: str,
        started: float,
    ) -> ApplyResult:
        """The result when differences remain after the reload. FRR refusing lines
        while loading them is a rejection: the previous file is put back and reloaded.
        frr-reload.py failing to talk to FRR means FRR is unavailable. Otherwise FRR took
        every line it was given and still runs something else: not converged; the new
        file stays (it is what the retries load again) and the error names the lines."""
        if pending.failure:
            log.info("frr-reload.py cannot compare %s with FRR", self.config_path)
            return failed(
                f"frr-reload.py cannot compare the configuration with FRR's: {pending.failure}",
                started,
                Outcome.UNAVAILABLE,
            )
        complaints = _frr_complaints(reload)
        if complaints:
            restored = self._restore(previous)
            log.info("FRR refused lines of %s; %s", self.config_path, restored)
            error = "\n".join(
                [
                    "FRR refused lines of the configuration while loading it:",
                    *complaints,
                    "frr-reload.py --test still finds:",
                    pending.describe(),
                    restored,
                ]
            )
            return failed(error, started, Outcome.REJECTED)
        log.info(
            "FRR still differs from %s after loading it\n%s", self.config_path, pending.describe()
        )
        lines = [
            "FRR's parser (vtysh --dryrun) accepted the configuration and FRR loaded it "
            "without an error, but FRR still runs something else; frr-reload.py --test "
            "still finds:",
            pending.describe(),
        ]
        if any("hostname " in line for line in pending.lines):
            lines.append(_HOSTNAME_NOTE.format(hostname=_hostname_of(text)))
        if told:
            lines += ["Telling the daemons the hostname, they said:", told]
        return failed("\n".join(lines), started, Outcome.NOT_CONVERGED)

    def generation(self) -> str | None:
        """The daemons' pids, from ``show modules``: a restarted daemon has a new pid."""
        out = self._vtysh("show modules")
        pids = re.findall(r"^Module information for (\S+):.*?^pid: (\d+)", out.stdout, re.M | re.S)
        if out.returncode != 0 or not pids:
            return None
        return ",".join(f"{daemon}={pid}" for daemon, pid in pids)

    def sessions(self) -> list[Session]:
        found: list[Session] = []
        uptimes = bgp_uptimes(self._json("show bgp summary json"))
        neighbors = self._json("show bgp neighbors json")
        for name, peer in items(neighbors):
            if isinstance(peer, dict) and "bgpState" in peer:
                since = uptimes.get(name) or str(peer.get("bgpTimerUpString", ""))
                found.append(
                    Session(name=name, protocol="bgp", state=peer["bgpState"], since=since)
                )
        found += ospf_sessions(self._json("show ip ospf neighbor json"))
        found += ospf6_sessions(self._json("show ipv6 ospf6 neighbor json"))
        found += isis_sessions(self._json("show isis neighbor detail json"))
        found += bfd_sessions(self._json("show bfd peers json"))
        return found

    def written(self) -> str | None:
        return read_file(self.config_path)

    def is_current(self, text: str) -> bool:
        """The file holds ``text`` and the running configuration matches it."""
        if read_file(self.config_path) == text and self._pending(text).clean:
            self._trim(text)
            self._seen_running(text)
            return True
        return False

    def _seen_running(self, text: str) -> None:
        generation = self.generation()
        self._running = (text, generation) if generation else None

    def _apply_delta(self, previous: str | None, text: str, generation: str) -> bool:
        """When FRR (the daemons of ``generation``) runs ``previous`` and ``text``
        differs from it only in prefix-lists and route-maps, send just those changes
        through one ``vtysh -f`` (what frr-reload.py would send, without reading the
        running configuration twice and without one vtysh per deleted line). True when
        ``frr-reload.py --test`` then finds nothing to change; otherwise the caller
        reloads the whole file."""
        if self._running is None or previous is None:
            return False
        if self._running != (previous, generation):
            return False
        batches = frr_policy_delta_by_daemon(previous, text, self._policy_daemons())
        if batches is None:
            return False
        self._running = None  # FRR runs neither text until checked
        return self._send_checked(batches, text, "after the policy changes")

    def _load_empty(self, text: str, running: str) -> bool:
        """When FRR runs no configuration yet (daemons just started: ``running`` is what
        ``show running-config`` printed), send the whole of ``text`` through one
        ``vtysh -f`` without its ``!``/``exit`` lines instead of frr-reload.py (1,000
        ServiceGroups: about 2 minutes instead of more than 15). Forwarding the
        daemons show as off (``no ip forwarding``: the kernel's setting) is turned on
        in the same ``vtysh -f`` unless ``text`` keeps it off, as frr-reload.py would
        (``text`` lacks the line, so the line is deleted): otherwise the first apply on
        a node with forwarding off would need the whole-file reload after this one
        (measured: the apply took 0.9 s instead of 0.4 s).
        The BGP sessions start at once rather than seconds later
        (:func:`_config_hold`). True when ``frr-reload.py --test`` then finds
        nothing to change; otherwise the caller reloads the whole file."""
        if not frr_is_empty(running):
            return False
        held, released = _config_hold(text)
        batches = [
            ("", _forwarding_on(running, text) + held),
            *frr_commands_by_daemon(text, self._daemons()),
            ("", released),
        ]
        return self._send_checked(batches, text, "after loading it onto empty daemons")

    def _tell_hostname(self, text: str, running: str) -> str:
        """Give every daemon the hostname ``text`` names when the running configuration
        shows another; what the daemons said ("" when nothing was sent or all took it).

        Each daemon prints its own hostname in the running configuration (the one it
        was started with, from a file of its own), and vtysh prints its own besides.
        vtysh runs ``hostname`` only in its own process, and so does frr-reload.py
        through it, so no reload changes a daemon's: lbroute sends the command to each
        daemon's vty socket, as vtysh sends it the commands a daemon runs."""
        wanted = frr_hostnames(text)
        if set(frr_hostnames(running)) <= set(wanted):
            return ""
        command = f"hostname {wanted[0]}" if wanted else "no hostname"
        said: list[str] = []
        for path in sorted(self.vty_socket_dir.glob("*.vty")):
            daemon = path.name.removesuffix(".vty")
            reply = _vty(path, ("enable", "configure terminal", command, "end"), self.timeout)
            if reply:
                said.append(f"{daemon}: {reply}")
        log.info("FRR's daemons told: %s", command)
        return "\n".join(said)

    def _send_checked(self, batches: Batches, text: str, what: str) -> bool:
        """Send ``batches`` (:meth:`_vtysh_batches`); True when ``frr-reload.py --test``
        then finds FRR running ``text``, otherwise log what differs (the caller reloads
        the whole file)."""
        said = self._vtysh_batches(batches)
        pending = self._pending(text)
        if not pending.clean:
            log.info(
                "FRR still differs from %s %s; reloading the whole file\n%s%s",
                self.config_path,
                what,
                redact(pending.describe()),
                f"\nvtysh said:\n{redact(said)}" if said else "",
            )
            return False
        self._seen_running(text)
        return True

    def _vtysh_batches(self, batches: Batches) -> str:
        """Send ``batches`` (:mod:`~nodeagent.routers.frr_delta`'s) in order, those for
        single daemons next to each other all at once (each daemon works on its own);
        what vtysh said."""
        said: list[str] = []
        together: Batches = []
        for daemon, commands in [*batches, ("", "")]:
            if daemon:
                together.append((daemon, commands))
                continue
            if together:
                with ThreadPoolExecutor(len(together)) as pool:
                    said += pool.map(lambda batch: self._vtysh_file(batch[1], batch[0]), together)
            together = []
            if commands:
                said.append(self._vtysh_file(commands))
        return "\n".join(line for line in said if line)

    def _vtysh_file(self, commands: str, daemon: str = "") -> str:
        """Run ``commands`` through ``vtysh -f``, to ``daemon`` alone when named (``-d``);
        what vtysh said."""
        vtysh = tool("vtysh", "/usr/bin/vtysh")
        only = ["-d", daemon] if daemon else []
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", prefix="lbroute-delta-", suffix=".conf"
        ) as delta:
            delta.write(commands)
            delta.flush()
            out = call(
                [vtysh, "--vty_socket", str(self.vty_socket_dir), *only, "-f", delta.name],
                self.timeout,
            )
        said = _strip_ansi(out.output).strip()
        return f"{daemon}: {said}" if daemon and said else said

    def _daemons(self) -> tuple[str, ...]:
        """The running daemons (their vty sockets; watchfrr takes no configuration)."""
        running = {path.name.removesuffix(".vty") for path in self.vty_socket_dir.glob("*.vty")}
        return tuple(sorted(running - {"watchfrr"}))

    def _policy_daemons(self) -> tuple[str, ...]:
        """The running daemons that hold route-maps and prefix-lists, among
        :data:`~nodeagent.routers.frr_delta.POLICY_DAEMONS`."""
        running = self._daemons()
        return tuple(daemon for daemon in POLICY_DAEMONS if daemon in running)

    def _trim(self, text: str) -> None:
        """Leave each daemon holding only the policy it uses (:func:`frr_policy_strays`)
        after a way of applying that gives every daemon everything (frr-reload.py, a
        daemon started from the whole file), so that the next policy delta finds what
        it assumes and a change costs each daemon only its own route-maps. Best effort:
        what stays is only slower."""
        daemons = self._policy_daemons()
        held: dict[str, dict[str, tuple[str, ...]]] = {}
        for daemon in daemons:
            shown = self._vtysh("show running-config", daemon=daemon)
            statements = frr_statements(shown.stdout) if shown.returncode == 0 else None
            if statements is None:
                return
            held[daemon] = statements
        batches = frr_policy_strays(held, text, daemons)
        if batches:
            said = self._vtysh_batches(batches)
            log.info(
                "FRR policy each daemon does not use taken from it: %s%s",
                ", ".join(f"{daemon} {commands.count(chr(10))}" for daemon, commands in batches),
                f"\nvtysh said:\n{redact(said)}" if said else "",
            )

    def _vtysh(self, command: str, *, as_reload_tool: bool = False, daemon: str = "") -> Output:
        """``command`` through vtysh, to ``daemon`` alone when named; ``as_reload_tool``:
        reading the ``vtysh.conf`` of the configuration directory frr-reload.py is given
        (:meth:`_confdir`)."""
        vtysh = tool("vtysh", "/usr/bin/vtysh")
        confdir = ["--config_dir", str(self._confdir())] if as_reload_tool else []
        only = ["-d", daemon] if daemon else []
        return call(
            [vtysh, "--vty_socket", str(self.vty_socket_dir), *confdir, *only, "-c", command],
            self.timeout,
        )

    def _json(self, command: str) -> Any:
        """The parsed reply, or None when the daemon is not running or says nothing."""
        out = self._vtysh(command)
        try:
            return json.loads(out.stdout) if out.returncode == 0 else None
        except ValueError:
            return None

    def _confdir(self) -> Path:
        """FRR's configuration directory for vtysh and frr-reload.py: the file's own
        when it holds a ``vtysh.conf``, otherwise ``/etc/frr``."""
        here = self.config_path.parent
        return here if (here / "vtysh.conf").is_file() else FRR_CONFDIR

    def _reload_tool(self, mode: str) -> Output:
        """frr-reload.py on the file, with FRR's configuration directory (``--confdir``,
        :meth:`_confdir`). vtysh reads ``vtysh.conf`` there, and after reloading a file
        other than ``frr.conf`` in that directory, frr-reload.py has vtysh ``write`` the
        running configuration to it."""
        confdir = self._confdir()
        frr_reload = tool(self.frr_reload)
        directory = str(self.vty_socket_dir)
        return call(
            [
                frr_reload,
                mode,
                "--stdout",
                "--vty_socket",
                directory,
                "--rundir",
                directory,
                "--confdir",
                str(confdir),
                str(self.config_path),
            ],
            self.timeout,
        )

    def _reload(self, text: str, passes: int = 2) -> tuple[Output, _Diff]:
        """Reload the file (holding ``text``) until nothing is left to change, at most
        ``passes`` times; the last reload's output and what is still left."""
        for _ in range(passes):
            reload = self._reload_tool("--reload")
            pending = self._pending(text)
            defaults = frr_bfd_defaults(pending.lines)
            if defaults:  # what frr-reload.py sent as "no" commands FRR does not have
                said = self._vtysh_file(defaults)
                log.info(
                    "FRR's BFD settings set back to their defaults:\n%s%s",
                    defaults,
                    f"vtysh said:\n{redact(said)}" if said else "",
                )
                pending = self._pending(text)
            if pending.clean or pending.failure:
                break
        return reload, pending

    def _pending(self, text: str) -> _Diff:
        """What differs between FRR and ``text`` (the file): nothing when ``show
        running-config`` prints the file's statements (:func:`frr_runs`); otherwise
        what ``frr-reload.py --test`` still finds, except an ``frr version`` line (FRR
        cannot change it at runtime: :func:`frr_version_line`), and the lines
        frr-reload.py does not compare (passwords, ``agentx``, ``line vty`` settings:
        :func:`frr_not_reloaded`) that FRR runs and ``text`` has not."""
        # vtysh as frr-reload.py runs it: with the same vtysh.conf (its hostname shows).
        shown = self._vtysh("show running-config", as_reload_tool=True)
        if shown.returncode == 0 and frr_runs(shown.stdout, text):
            return _Diff()
        out = self._reload_tool("--test")
        if out.returncode != 0:
            said = [line for line in _strip_ansi(out.output).splitlines() if " INFO: " not in line]
            return _Diff(failure="\n".join(said).strip() or "frr-reload.py --test failed")
        lines = [
            line
            for line in out.stdout.splitlines()
            if line.strip()
            and " INFO: " not in line
            and not set(line) <= {"="}
            and not frr_version_line(line)
        ]
        lines = [  # a heading whose lines were all ``frr version`` ones
            line
            for i, line in enumerate(lines)
            if line not in _HEADINGS or (i + 1 < len(lines) and lines[i + 1] not in _HEADINGS)
        ]
        if shown.returncode == 0:
            left = frr_not_reloaded(shown.stdout, text)
            if left:
                lines += ["Lines frr-reload.py does not compare, to delete", *left]
        return _Diff(lines=tuple(lines))

    def _remove_not_reloaded(self, text: str, running: str) -> None:
        """Remove what FRR runs (``running``) and frr-reload.py would leave although
        ``text`` does not have it (passwords, ``agentx``, ``line vty`` settings), by
        their ``no`` commands through vtysh. Whatever stays is what the check after
        the reload reports."""
        commands = frr_not_reloaded_commands(frr_not_reloaded(running, text))
        if commands:
            said = self._vtysh_file(commands)
            log.info(
                "FRR told to remove what frr-reload.py leaves:\n%s%s",
                commands,
                f"\nvtysh said:\n{redact(said)}" if said else "",
            )

    def _restore(self, previous: str | None) -> str:
        try:
            restore_file(self.config_path, previous)
        except OSError as exc:
            return f"restoring the previous file failed: {exc}"
        if previous is None:
            return "no previous configuration to restore"
        self._running = None
        _, pending = self._reload(previous)
        if pending.clean:
            self._trim(previous)
            self._seen_running(previous)
            return "previous configuration restored"
        return f"restoring the previous configuration left differences:\n{pending.describe()}"


_HEADINGS = ("Lines To Delete", "Lines To Add")
"""The headings of frr-reload.py's report."""


@dataclass(frozen=True, kw_only=True)
class _Diff:
    """What ``frr-reload.py --test`` still wants to change."""

    lines: tuple[str, ...] = ()
    failure: str = ""

    @property
    def clean(self) -> bool:
        return not self.lines and not self.failure

    def describe(self, limit: int = 30) -> str:
        if self.failure:
            return self.failure
        shown = list(self.lines[:limit])
        if len(self.lines) > limit:
            shown.append(f"... {len(self.lines) - limit} more lines")
        return "\n".join(shown)


_FORWARDING_OFF = ("no ip forwarding", "no ipv6 forwarding")


def _forwarding_on(running: str, text: str) -> str:
    """The commands that turn on the forwarding ``running`` (``show running-config``)
    shows as off and ``text`` does not keep off, as frr-reload.py sends them."""
    kept = {line.strip() for line in text.splitlines()}
    shown = {line.strip() for line in running.splitlines()}
    return "".join(
        f"{line.removeprefix('no ')}\n"
        for line in _FORWARDING_OFF
        if line in shown and line not in kept
    )


def _config_hold(text: str) -> tuple[str, str]:
    """The commands to send before and after a whole configuration (``text``) loaded
    onto empty daemons to start its BGP sessions at once ("" and "" when none are
    needed). bgpd holds every peer while ``vtysh -f`` loads a file and for a
    while after it ("released from config-pending hold" in bgpd's log): with FRR 8.4,
    measured, until its route-map update timer (``bgp route-map delay-timer``, 5 s by
    default, started by the file's first route-map) ends. A first apply onto empty
    daemons left its sessions in Idle for about 4 s before their first connection;
    with the timer set to 1 s before the file's commands (and back to its default
    after them, in the same file) they were Established 0.2 s after the load. FRR then
    processes the new route-maps after 1 s instead of 5, and the running configuration
    ends without the line. Both empty when the configuration sets the timer itself or
    has no ``router bgp``."""
    if "bgp route-map delay-timer" in text or not re.search(r"^router bgp ", text, re.M):
        return "", ""
    return "bgp route-map delay-timer 1\n", "no bgp route-map delay-timer\n"


def _frr_complaints(reload: Output, limit: int = 20) -> list[str]:
    """What FRR said against lines while frr-reload.py loaded them (its ``%`` messages
    and frr-reload.py's ERROR lines), each once."""
    said: list[str] = []
    for raw in _strip_ansi(reload.output).splitlines():
        # "line N:" counts lines of frr-reload.py's own temporary file: drop it.
        line = re.sub(r"^line \d+: ", "", raw.strip())
        router_message = line.startswith("%") or "Failure to communicate" in line
        if (router_message or "ERROR" in line) and line not in said:
            said.append(line)
    return said[:limit]


_HOSTNAME_NOTE = (
    "FRR's daemons were told the hostname the configuration names ({hostname}); a "
    "hostname left over is the one vtysh prints itself: the name of the host vtysh runs "
    "on, or the hostname its vtysh.conf sets"
)


def _hostname_of(text: str) -> str:
    names = frr_hostnames(text)
    return names[0] if names else "none"


def _vty(path: Path, commands: tuple[str, ...], timeout: float) -> str:
    """Run ``commands`` on the daemon behind the vty socket ``path``, in order, as vtysh
    does: each command ends with a NUL byte, each reply with three NUL bytes and the
    command's status. What the daemon said against them ("" when all succeeded)."""
    said: list[str] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            for command in commands:
                sock.sendall(command.encode() + b"\0")
                reply = b""
                while len(reply) < 4 or reply[-4:-1] != b"\0\0\0":
                    chunk = sock.recv(4096)
                    if not chunk:
                        return "\n".join([*said, f"{command}: the daemon closed its vty"])
                    reply += chunk
                if reply[-1] != 0:
                    output = reply[:-4].decode(errors="replace").strip()
                    said.append(f"{command}: {output or f'status {reply[-1]}'}")
    except OSError as exc:
        said.append(str(exc))
    return "\n".join(said)


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
