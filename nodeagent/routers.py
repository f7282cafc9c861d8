"""The routing daemons' own tools: the one place lbroute runs ``bird``, ``birdc``,
``vtysh`` and ``frr-reload.py``.

:func:`check_config` feeds a rendered configuration to the router's real parser
(``bird -p -c``, ``vtysh --dryrun -f``) and reports the parser's verdict with the
offending lines, so nothing reaches a running router that its parser rejects.

:class:`BirdDriver` and :class:`FrrDriver` (both :class:`RouterDriver`) make a
configuration the running one: parse it, write it atomically, load it, and when the
router refuses it, put the previous file back and keep (or re-apply) the previous
configuration. A refusal is a returned :class:`ApplyResult`, never an exception.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lbroute.model.api import Mode, Router
from lbroute.model.errors import RouterError, RouterToolMissing

PARSE_TIMEOUT = 30.0
BIRD_BOOT_JITTER = datetime.timedelta(milliseconds=500)
_UCRED = struct.Struct("3i")
"""struct ucred: pid, uid, gid (SO_PEERCRED)."""
FRR_RELOAD = Path("/usr/lib/frr/frr-reload.py")
FRR_CONFDIR = Path("/etc/frr")

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ParseResult:
    ok: bool
    output: str
    """What the parser said."""
    line: int | None = None
    """Offending line in the checked text, when the parser names one."""
    context: str = ""
    """The offending line with a few lines around it, numbered."""

    def describe(self) -> str:
        if self.ok:
            return "OK"
        text = self.output.strip() or "rejected"
        return f"{text}\n{self.context}" if self.context else text


def tool(name: str, *fallbacks: str) -> str:
    for candidate in (name, *fallbacks):
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    raise RouterToolMissing(
        f"{name} not found; install the router (Debian: apt-get install bird2 frr "
        "frr-pythontools) or put it on PATH"
    )


def check_config(router: Router, text: str, mode: Mode = Mode.MANAGED) -> ParseResult:
    """Run the real parser of ``router`` on ``text``."""
    if router is Router.BIRD:
        return _check_bird(text, mode)
    return _check_frr(text)


def _check_bird(text: str, mode: Mode) -> ParseResult:
    bird = tool("bird", "/usr/sbin/bird")
    with tempfile.TemporaryDirectory(prefix="lbroute-check-") as tmp:
        conf = Path(tmp) / "lbroute.conf"
        conf.write_text(text, encoding="utf-8")
        main = conf
        if mode is Mode.INCLUDE:
            # An include fragment needs a host configuration around it.
            main = Path(tmp) / "host.conf"
            main.write_text(
                f'router id 192.0.2.1;\nprotocol device {{}}\ninclude "{conf}";\n',
                encoding="utf-8",
            )
        proc = subprocess.run(
            [bird, "-p", "-c", str(main)],
            capture_output=True,
            text=True,
            timeout=PARSE_TIMEOUT,
            check=False,
        )
        output = (proc.stdout + proc.stderr).replace(str(conf), "<config>")
        output = output.replace(str(main), "<host config>")
    if proc.returncode == 0:
        return ParseResult(ok=True, output=output)
    m = re.search(r"<config>:(\d+):", output)
    line = int(m.group(1)) if m else None
    return ParseResult(ok=False, output=output, line=line, context=_context(text, line))


def _check_frr(text: str) -> ParseResult:
    vtysh = tool("vtysh", "/usr/bin/vtysh")
    with tempfile.TemporaryDirectory(prefix="lbroute-check-") as tmp:
        conf = Path(tmp) / "frr.conf"
        conf.write_text(text, encoding="utf-8")
        proc = subprocess.run(
            [vtysh, "--dryrun", "-f", str(conf)],
            capture_output=True,
            text=True,
            timeout=PARSE_TIMEOUT,
            check=False,
        )
    output = (proc.stdout + proc.stderr).replace(str(conf), "<config>")
    if proc.returncode == 0 and "% " not in output:
        return ParseResult(ok=True, output=output)
    m = re.search(r"line (\d+):", output)
    line = int(m.group(1)) if m else None
    return ParseResult(ok=False, output=output, line=line, context=_context(text, line))


def _context(text: str, line: int | None, around: int = 2) -> str:
    if line is None:
        return ""
    lines = text.splitlines()
    lo, hi = max(1, line - around), min(len(lines), line + around)
    return "\n".join(
        f"{'>' if n == line else ' '} {n:5d} | {lines[n - 1]}" for n in range(lo, hi + 1)
    )


# --- Drivers ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ApplyResult:
    ok: bool
    error: str = ""
    """The router's own message, with the offending lines when it names them."""
    duration: float = 0.0
    """Seconds the whole apply took."""
    rejected: bool = False
    """The router's parser refused the text itself: applying it again cannot help."""


@dataclass(frozen=True, kw_only=True)
class Session:
    """One routing session or adjacency, as the router reports it."""

    name: str
    """BIRD protocol name (``lbr_bgp_tor``); FRR BGP neighbor (address or interface);
    ``<neighbor>@<interface>`` for FRR OSPF, OSPFv3 and IS-IS; the BFD peer address
    (``@<interface>`` when bound to one)."""
    protocol: str
    """``bgp``, ``ospf``, ``ospf6``, ``rip``, ``ripng``, ``isis`` or ``bfd``."""
    state: str
    """``Established``, ``Active``, ``Full``, ``Up``, ``up``, ``down``... as printed."""
    since: str = ""
    """Uptime or time of the last state change, as the router prints it."""


class RouterDriver(Protocol):
    def apply(self, text: str) -> ApplyResult:
        """Validate ``text`` with the real parser, write it atomically and make it the
        running configuration; on failure the previous configuration keeps running."""
        ...

    def generation(self) -> str | None:
        """Identifies the running daemon instance (changes when it restarts); ``None``
        when the router does not answer."""
        ...

    def sessions(self) -> list[Session]: ...

    def is_current(self, text: str) -> bool:
        """The router already runs ``text`` (so an agent restart applies nothing)."""
        ...


def make_driver(
    router: Router,
    *,
    config_path: Path,
    socket_path: Path,
    mode: Mode = Mode.MANAGED,
    include_path: Path | None = None,
    reload_command: Sequence[str] = (),
) -> RouterDriver:
    """The driver for ``router``; for FRR ``socket_path`` is the vty socket directory."""
    if router is Router.BIRD:
        return BirdDriver(
            config_path,
            socket_path,
            mode=mode,
            include_path=include_path,
            reload_command=reload_command,
        )
    if mode is Mode.INCLUDE:
        raise RouterError("include mode is for BIRD 2; FRR has no include directive")
    return FrrDriver(config_path, socket_path)


class BirdDriver:
    """BIRD 2 through ``bird -p`` and ``birdc``.

    Managed mode: ``config_path`` is BIRD's whole configuration and lbroute owns it.
    ``configure "<config_path>" timeout T`` loads it (BIRD undoes it by itself after T
    seconds unless confirmed), then ``configure confirm``.
    Include mode: the text is a fragment written to ``include_path``, which the host's
    own configuration ``config_path`` includes; it is loaded with ``reload_command``
    when given, otherwise like managed mode.
    """

    def __init__(
        self,
        config_path: Path | str,
        socket_path: Path | str,
        *,
        mode: Mode = Mode.MANAGED,
        include_path: Path | str | None = None,
        reload_command: Sequence[str] = (),
        timeout: float = 30,
    ) -> None:
        if mode is Mode.INCLUDE and include_path is None:
            raise ValueError("BIRD include mode needs include_path")
        self.config_path = Path(config_path)
        self.socket_path = Path(socket_path)
        self.mode = mode
        self.target = (
            Path(include_path) if mode is Mode.INCLUDE and include_path else self.config_path
        )
        self.reload_command = tuple(reload_command)
        self.timeout = timeout
        self._booted: tuple[datetime.datetime, str] | None = None
        """The boot time last seen, and the generation reported for it."""

    def apply(self, text: str) -> ApplyResult:
        started = time.monotonic()
        tool(*self.reload_command[:1] or ("birdc", "/usr/sbin/birdc"))  # before touching files
        parsed = check_config(Router.BIRD, text, self.mode)
        if not parsed.ok:
            log.info("bird -p rejected the configuration for %s; nothing changed", self.target)
            return _failed(parsed.describe(), started, rejected=True)
        try:
            previous = _replace_file(self.target, text)
        except OSError as exc:
            return _failed(f"cannot write {self.target}: {exc}", started)
        error = self._run_reload_command() if self.reload_command else self._configure(text)
        if error:
            try:
                _restore_file(self.target, previous)
            except OSError as exc:
                error += f"\nrestoring the previous file failed: {exc}"
            if self.reload_command:
                self._run_reload_command()  # best effort: reload what is on disk again
            log.info(
                "BIRD refused the configuration in %s; put the previous file back", self.target
            )
            return _failed(error, started)
        log.info("BIRD configuration %s applied", self.target)
        return ApplyResult(ok=True, duration=time.monotonic() - started)

    def generation(self) -> str | None:
        """The pid of the BIRD behind the control socket, when this process can see it;
        otherwise BIRD's boot time from ``show status``."""
        out = self._birdc("show", "status")
        m = re.search(r"^\s*Last reboot on (.+?)\s*$", out.stdout, re.M)
        if out.returncode != 0 or not m:
            return None
        pid = self._daemon_pid()
        return f"pid {pid}" if pid else self._boot_generation(m.group(1))

    def _daemon_pid(self) -> int | None:
        """The socket peer's pid; None when BIRD runs in a pid namespace this process
        cannot see (the kernel reports 0) or the socket does not answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.socket_path))
                creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        except OSError:
            return None
        pid = int(_UCRED.unpack(creds)[0])
        return pid or None

    def _boot_generation(self, printed: str) -> str:
        """BIRD prints its boot time as the wall clock minus the monotonic time since
        boot, so the printed value wanders by a millisecond now and then (and with every
        clock adjustment): a boot time within :data:`BIRD_BOOT_JITTER` of the previous
        one is the same daemon."""
        try:
            booted = datetime.datetime.fromisoformat(printed)
        except ValueError:  # a "timeformat" lbroute cannot read: compare as text
            return printed
        if self._booted is not None:
            previous, generation = self._booted
            if abs(booted - previous) <= BIRD_BOOT_JITTER:
                self._booted = (booted, generation)
                return generation
        self._booted = (booted, printed)
        return printed

    def sessions(self) -> list[Session]:
        out = self._birdc("show", "protocols", "all", '"lbr_*"')
        return parse_bird_protocols(out.stdout) if out.returncode == 0 else []

    def is_current(self, text: str) -> bool:
        """The file holds ``text`` and BIRD answers (BIRD loads its file when it starts
        and lbroute's file changes only through :meth:`apply`)."""
        return _read(self.target) == text and self.generation() is not None

    def _birdc(self, *command: str, verbose: bool = False) -> _Output:
        birdc = tool("birdc", "/usr/sbin/birdc")
        flags = ["-v"] if verbose else []
        return _call([birdc, *flags, "-s", str(self.socket_path), *command], self.timeout)

    def _configure(self, text: str) -> str:
        """Load the configuration and confirm it; the error ("" when it runs)."""
        seconds = str(max(1, round(self.timeout)))
        out = self._birdc("configure", f'"{self.config_path}"', "timeout", seconds, verbose=True)
        codes = _bird_replies(out.stdout)
        if not {"0003", "0004", "0005"} & {code for code, _ in codes}:
            # Not taken (a parse or file error), or no answer at all; if BIRD did take
            # it without saying so, its own timer undoes it since nobody confirms.
            errors = [msg for code, msg in codes if code[0] in "89"]
            said = "\n".join(errors) or out.output.strip() or "no reply"
            return f"birdc configure: {said}{self._context(said, text)}"
        confirm = self._birdc("configure", "confirm", verbose=True)
        if any(code == "0018" for code, _ in _bird_replies(confirm.stdout)):
            return ""
        self._birdc("configure", "undo", verbose=True)
        said = confirm.output.strip() or "no reply"
        return f"birdc configure confirm failed ({said}); undone"

    def _context(self, said: str, text: str) -> str:
        m = re.search(rf"{re.escape(str(self.target))}:(\d+):", said)
        context = _context(text, int(m.group(1))) if m else ""
        return f"\n{context}" if context else ""

    def _run_reload_command(self) -> str:
        out = _call(self.reload_command, self.timeout)
        if out.returncode == 0:
            return ""
        said = out.output.strip() or f"exit status {out.returncode}"
        return f"{' '.join(self.reload_command)}: {said}"


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
            return _failed(parsed.describe(), started, rejected=True)
        try:
            previous = _replace_file(self.config_path, text)
        except OSError as exc:
            return _failed(f"cannot write {self.config_path}: {exc}", started)
        if self._apply_delta(previous, text):
            log.info("FRR configuration %s applied (policy changes only)", self.config_path)
            return ApplyResult(ok=True, duration=time.monotonic() - started)
        if self._load_empty(text):
            log.info("FRR configuration %s applied (FRR ran none before)", self.config_path)
            return ApplyResult(ok=True, duration=time.monotonic() - started)
        self._running = None  # until a reload is checked
        reload, pending = self._reload()
        if pending.clean:
            self._seen_running(text)
            log.info("FRR configuration %s applied", self.config_path)
            return ApplyResult(ok=True, duration=time.monotonic() - started)
        error = _frr_error(reload, pending)
        restored = self._restore(previous)
        log.info("FRR did not take the configuration in %s; %s", self.config_path, restored)
        return _failed(f"{error}\n{restored}", started)

    def generation(self) -> str | None:
        """The daemons' pids, from ``show modules``: a restarted daemon has a new pid."""
        out = self._vtysh("show modules")
        pids = re.findall(r"^Module information for (\S+):.*?^pid: (\d+)", out.stdout, re.M | re.S)
        if out.returncode != 0 or not pids:
            return None
        return ",".join(f"{daemon}={pid}" for daemon, pid in pids)

    def sessions(self) -> list[Session]:
        found: list[Session] = []
        uptimes = _frr_bgp_uptimes(self._json("show bgp summary json"))
        neighbors = self._json("show bgp neighbors json")
        for name, peer in _items(neighbors):
            if isinstance(peer, dict) and "bgpState" in peer:
                since = uptimes.get(name) or str(peer.get("bgpTimerUpString", ""))
                found.append(
                    Session(name=name, protocol="bgp", state=peer["bgpState"], since=since)
                )
        found += _frr_ospf(self._json("show ip ospf neighbor json"))
        found += _frr_ospf6(self._json("show ipv6 ospf6 neighbor json"))
        found += _frr_isis(self._json("show isis neighbor detail json"))
        found += _frr_bfd(self._json("show bfd peers json"))
        return found

    def is_current(self, text: str) -> bool:
        """The file holds ``text`` and the running configuration matches it."""
        if _read(self.config_path) == text and self._pending().clean:
            self._seen_running(text)
            return True
        return False

    def _seen_running(self, text: str) -> None:
        generation = self.generation()
        self._running = (text, generation) if generation else None

    def _apply_delta(self, previous: str | None, text: str) -> bool:
        """When FRR runs ``previous`` and ``text`` differs from it only in prefix-lists
        and route-maps, send just those changes through one ``vtysh -f`` (what
        frr-reload.py would send, without reading the running configuration twice and
        without one vtysh per deleted line). True when ``frr-reload.py --test`` then
        finds nothing to change; otherwise the caller reloads the whole file."""
        generation = self.generation()
        if self._running is None or previous is None or not generation:
            return False
        if self._running != (previous, generation):
            return False
        commands = frr_policy_delta(previous, text)
        if commands is None:
            return False
        self._running = None  # FRR runs neither text until checked
        return self._send_checked(commands, text, "after the policy changes")

    def _load_empty(self, text: str) -> bool:
        """When FRR runs no configuration yet (daemons just started), send the whole of
        ``text`` through one ``vtysh -f`` without its ``!``/``exit`` lines instead of
        frr-reload.py (1,000 ServiceGroups: about 2 minutes instead of more than 15).
        True when ``frr-reload.py --test``
        then finds nothing to change; otherwise the caller reloads the whole file (for
        example when IP forwarding is off: frr-reload.py turns it on, this does not)."""
        shown = self._vtysh("show running-config")
        if shown.returncode != 0 or not frr_is_empty(shown.stdout):
            return False
        return self._send_checked(frr_commands(text), text, "after loading it onto empty daemons")

    def _send_checked(self, commands: str, text: str, what: str) -> bool:
        """Send ``commands`` through one ``vtysh -f``; True when ``frr-reload.py --test``
        then finds FRR running ``text``, otherwise log what differs (the caller reloads
        the whole file)."""
        said = self._vtysh_file(commands) if commands else ""
        pending = self._pending()
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

    def _vtysh_file(self, commands: str) -> str:
        """Run ``commands`` through ``vtysh -f``; what vtysh said."""
        vtysh = tool("vtysh", "/usr/bin/vtysh")
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", prefix="lbroute-delta-", suffix=".conf"
        ) as delta:
            delta.write(commands)
            delta.flush()
            out = _call(
                [vtysh, "--vty_socket", str(self.vty_socket_dir), "-f", delta.name],
                self.timeout,
            )
        return _strip_ansi(out.output).strip()

    def _vtysh(self, command: str) -> _Output:
        vtysh = tool("vtysh", "/usr/bin/vtysh")
        return _call([vtysh, "--vty_socket", str(self.vty_socket_dir), "-c", command], self.timeout)

    def _json(self, command: str) -> Any:
        """The parsed reply, or None when the daemon is not running or says nothing."""
        out = self._vtysh(command)
        try:
            return json.loads(out.stdout) if out.returncode == 0 else None
        except ValueError:
            return None

    def _reload_tool(self, mode: str) -> _Output:
        """frr-reload.py on the file, with FRR's configuration directory (``--confdir``):
        the file's own when it holds a ``vtysh.conf``, otherwise ``/etc/frr``. vtysh reads
        ``vtysh.conf`` there, and after reloading a file other than ``frr.conf`` in that
        directory, frr-reload.py has vtysh ``write`` the running configuration to it."""
        here = self.config_path.parent
        confdir = here if (here / "vtysh.conf").is_file() else FRR_CONFDIR
        frr_reload = tool(self.frr_reload)
        directory = str(self.vty_socket_dir)
        return _call(
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

    def _reload(self, passes: int = 2) -> tuple[_Output, _Diff]:
        """Reload the file until nothing is left to change, at most ``passes`` times;
        the last reload's output and what is still left."""
        for _ in range(passes):
            reload = self._reload_tool("--reload")
            pending = self._pending()
            if pending.clean or pending.failure:
                break
        return reload, pending

    def _pending(self) -> _Diff:
        out = self._reload_tool("--test")
        if out.returncode != 0:
            said = [line for line in _strip_ansi(out.output).splitlines() if " INFO: " not in line]
            return _Diff(failure="\n".join(said).strip() or "frr-reload.py --test failed")
        lines = [
            line
            for line in out.stdout.splitlines()
            if line.strip() and " INFO: " not in line and not set(line) <= {"="}
        ]
        return _Diff(lines=tuple(lines))

    def _restore(self, previous: str | None) -> str:
        try:
            _restore_file(self.config_path, previous)
        except OSError as exc:
            return f"restoring the previous file failed: {exc}"
        if previous is None:
            return "no previous configuration to restore"
        self._running = None
        _, pending = self._reload()
        if pending.clean:
            self._seen_running(previous)
            return "previous configuration restored"
        return f"restoring the previous configuration left differences:\n{pending.describe()}"


# --- FRR policy delta ---------------------------------------------------------------

_POLICY = ("route-map ", "ip prefix-list ", "ipv6 prefix-list ")
"""Top-level statements :func:`frr_policy_delta` changes by itself: a prefix-list
entry (one line) or a route-map entry (a header and its match/set lines)."""


def frr_stanzas(text: str) -> dict[str, tuple[str, ...]]:
    """A configuration in FRR's canonical form (what lbroute renders) as its top-level
    statements: the first line of each, with its indented lines. ``!``, ``exit`` and
    ``end`` only close statements."""
    stanzas: dict[str, list[str]] = {}
    body: list[str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("!") or line in ("exit", "end"):
            body = None
        elif line[0].isspace():
            if body is None:
                raise ValueError(f"indented line outside a statement: {line!r}")
            body.append(line)
        else:
            if line in stanzas:
                raise ValueError(f"statement twice: {line!r}")
            body = stanzas[line] = []
    return {head: tuple(lines) for head, lines in stanzas.items()}


def frr_policy_delta(old: str, new: str) -> str | None:
    """The vtysh commands that turn FRR running ``old`` into FRR running ``new``, when
    the two differ only in prefix-list and route-map entries; ``None`` for any other
    difference (a neighbor, an interface, a router block): then frr-reload.py decides.

    Order: new prefix-list entries, then route-map entries, then removed route-map
    entries, then removed prefix-list entries, so a route-map never refers to a
    prefix-list entry that is not there yet. An entry whose sequence number stays
    (a prefix-list entry's ``le`` changes, a route-map entry's action) is replaced by
    setting it again, never removed: FRR keys entries by sequence number, so ``no`` of
    the old line would remove the new one and withdraw its routes. Inside a route-map
    entry a changed line is simply set again (FRR keeps one rule per ``match``/``set``
    kind and replaces it); only a kind that is gone is removed with ``no``. No ``exit``
    lines: vtysh leaves a statement by itself when the next one starts, and FRR's
    daemons commit the whole file at once instead of once per ``exit``.
    """
    try:
        before, after = frr_stanzas(old), frr_stanzas(new)
    except ValueError:
        return None
    changed = {h for h in after.keys() | before.keys() if before.get(h) != after.get(h)}
    repoint: list[str] = []
    for head in sorted(changed):
        if head.startswith(_POLICY):
            continue
        lines = _repointed(head, before.get(head), after.get(head))
        if lines is None:
            return None
        repoint += lines
    heads = [h for h in after if h in changed] + [h for h in before if h not in after]
    heads = [h for h in heads if h.startswith(_POLICY)]
    kept = {_entry_key(h) for h in after}
    replaced = {_entry_key(h): h for h in before if h not in after}
    out: list[str] = []
    for head in heads:
        if head.startswith("route-map ") or head not in after:
            continue
        out.append(head)
    for head in heads:
        if not head.startswith("route-map ") or head not in after:
            continue
        was = head if head in before else replaced.get(_entry_key(head), "")
        had, has = before.get(was, ()), after[head]
        rules = {_rule(line) for line in has}
        out.append(head)
        out += [line for line in has if line not in had]
        out += [f" no {_rule(line)}" for line in had if _rule(line) not in rules]
    out += repoint  # after the route-maps they name exist, before old ones go
    removed = [h for h in heads if h not in after and _entry_key(h) not in kept]
    out += [f"no {h}" for h in removed if h.startswith("route-map ")]
    out += [f"no {h}" for h in removed if not h.startswith("route-map ")]
    return "".join(f"{line}\n" for line in out)


_EMPTY = (
    "frr version ",
    "frr defaults ",
    "hostname ",
    "service integrated-vtysh-config",
    "no ip forwarding",
    "no ipv6 forwarding",
)
"""What FRR's running configuration shows when its daemons run no configuration."""


def frr_is_empty(running: str) -> bool:
    """``show running-config`` holds nothing but what daemons started without a
    configuration show (version, defaults, hostname, forwarding)."""
    body = running.partition("Current configuration:")[2]
    try:
        stanzas = frr_stanzas(body)
    except ValueError:
        return False
    return bool(body) and all(not lines and h.startswith(_EMPTY) for h, lines in stanzas.items())


def frr_commands(text: str) -> str:
    """A configuration in FRR's canonical form as vtysh commands without comments and
    the lines that only close a statement (``!``, ``exit``, ``end``): vtysh leaves a
    statement by itself when a command belongs to an enclosing one, and FRR's daemons
    commit once."""
    return "".join(f"{line}\n" for line in text.splitlines() if _command(line.strip()))


def _command(line: str) -> bool:
    return bool(line) and not line.startswith("!") and line not in ("exit", "end")


_OUT_MAP = re.compile(r"^  neighbor \S+ route-map \S+ out$")


def _repointed(
    head: str, old: tuple[str, ...] | None, new: tuple[str, ...] | None
) -> list[str] | None:
    """The commands for a ``router bgp`` statement whose only change is the outbound
    route-map some neighbors use (neighbors that share a route-map move to another one
    when the set of neighbors sharing it changes); None for any other change."""
    if not head.startswith("router bgp ") or old is None or new is None or len(old) != len(new):
        return None
    out: list[str] = []
    family = ""
    for was, now in zip(old, new, strict=True):
        if was.startswith(" address-family "):
            family = was
        if was == now:
            continue
        neighbor = was.split()[:2]
        if not (_OUT_MAP.match(was) and _OUT_MAP.match(now) and now.split()[:2] == neighbor):
            return None
        if not family:
            return None
        out += [head, family, now]
    return out


def _entry_key(head: str) -> str:
    """What FRR keys a policy entry by: a route-map's name and sequence number (not its
    action), a prefix-list entry's list and sequence number (not its prefix)."""
    words = head.split()
    if words[0] == "route-map" and len(words) == 4:
        return f"route-map {words[1]} {words[3]}"
    if words[1:2] == ["prefix-list"] and words[3:4] == ["seq"] and len(words) > 4:
        return " ".join(words[:5])
    return head


def _rule(line: str) -> str:
    """The kind of a route-map line, without its values: ``set community``,
    ``match ip address prefix-list``, ``set as-path prepend``."""
    words = line.split()
    size = 4 if words[1:2] in (["ip"], ["ipv6"]) else 3 if words[1:2] == ["as-path"] else 2
    return " ".join(words[:size])


# --- Helpers ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Output:
    returncode: int | None
    """None when the command timed out."""
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _call(args: Sequence[str], timeout: float) -> _Output:
    """Run one router tool; a timeout is a failed result, a missing binary an error."""
    try:
        proc = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise RouterToolMissing(f"{args[0]} not found") from exc
    except subprocess.TimeoutExpired:
        return _Output(None, "", f"{Path(args[0]).name} timed out after {timeout:g} s")
    return _Output(proc.returncode, proc.stdout, proc.stderr)


def _failed(error: str, started: float, *, rejected: bool = False) -> ApplyResult:
    return ApplyResult(
        ok=False, error=redact(error), duration=time.monotonic() - started, rejected=rejected
    )


_SECRETS = re.compile(
    r"""(?P<key>\bpassword\s+|\bkey-string\s+|\bmd5\s+|\bauthentication\s+string\s+)"""
    r"""(?P<value>"[^"\n]*"|\S+)"""
)


def redact(text: str) -> str:
    """``text`` with passwords and keys (BIRD or FRR syntax) replaced by ``<redacted>``."""
    return _SECRETS.sub(
        lambda m: m["key"] + ('"<redacted>"' if m["value"].startswith('"') else "<redacted>"),
        text,
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _replace_file(path: Path, text: str) -> str | None:
    """Write ``text`` to ``path`` atomically; return the previous content (None if new)."""
    previous = _read(path)
    _write_atomic(path, text)
    return previous


def _restore_file(path: Path, previous: str | None) -> None:
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        _write_atomic(path, previous)


def _write_atomic(path: Path, text: str) -> None:
    """Temp file in the same directory, then rename: readers see old or new, never half.

    Mode 0600; when the file exists its owner and group are kept, and so is group read
    (Debian ships bird.conf and frr.conf group-readable for the daemon's group).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            old = path.stat()
        except FileNotFoundError:
            pass
        else:
            os.chown(tmp, old.st_uid, old.st_gid)
            os.chmod(tmp, 0o600 | (stat.S_IMODE(old.st_mode) & stat.S_IRGRP))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _bird_replies(text: str) -> list[tuple[str, str]]:
    """``birdc -v`` output as (reply code, message); continuation lines join their reply."""
    replies: list[tuple[str, str]] = []
    for line in text.splitlines():
        m = re.match(r"(\d{4})[ -](.*)", line)
        if m:
            replies.append((m.group(1), m.group(2)))
        elif line.startswith(" ") and replies:
            code, msg = replies[-1]
            replies[-1] = (code, f"{msg}\n{line.strip()}")
    return replies


_BIRD_KINDS = {"BGP": "bgp", "OSPF": "ospf", "RIP": "rip", "BFD": "bfd"}
_BIRD_V6 = {"ospf": "ospf6", "rip": "ripng"}
_BIRD_HEADER = re.compile(
    r"(?P<name>lbr_\S+)\s+(?P<proto>\S+)\s+\S+\s+(?P<state>\S+)\s+"
    r"(?P<since>\S+(?: \d\d:\d\d:\d\d(?:\.\d+)?)?)\s*(?P<info>.*)$"
)


def parse_bird_protocols(text: str) -> list[Session]:
    """Sessions from ``birdc show protocols all``: lbroute's BGP, OSPF, RIP and BFD
    protocols. BGP reports its BGP state; the others their protocol state (up, down)."""
    found: list[Session] = []
    for header, body in _bird_blocks(text):
        kind = _BIRD_KINDS.get(header["proto"])
        if kind is None:
            continue
        if "Channel ipv6" in body and kind in _BIRD_V6:
            kind = _BIRD_V6[kind]
        state = header["state"]
        if kind == "bgp":
            m = re.search(r"^\s*BGP state:\s+(\S+)", body, re.M)
            state = m.group(1) if m else (header["info"].split() or [state])[0]
        found.append(
            Session(name=header["name"], protocol=kind, state=state, since=header["since"])
        )
    return found


def _bird_blocks(text: str) -> Iterator[tuple[re.Match[str], str]]:
    header: re.Match[str] | None = None
    body: list[str] = []
    for line in [*text.splitlines(), "end"]:
        m = _BIRD_HEADER.match(line)
        if m or not line.startswith(" "):
            if header is not None:
                yield header, "\n".join(body)
            header, body = m, []
        else:
            body.append(line)


def _items(data: Any) -> list[tuple[str, Any]]:
    return [(str(k), v) for k, v in data.items()] if isinstance(data, dict) else []


def _frr_bgp_uptimes(summary: Any) -> dict[str, str]:
    """Neighbor -> the Up/Down column of ``show bgp summary`` (``never``, ``00:01:02``)."""
    uptimes: dict[str, str] = {}
    for _, family in _items(summary):
        for name, peer in _items(family.get("peers") if isinstance(family, dict) else None):
            if isinstance(peer, dict) and "peerUptime" in peer:
                uptimes.setdefault(name, str(peer["peerUptime"]))
    return uptimes


def _frr_ospf(data: Any) -> list[Session]:
    found = []
    for router_id, adjacencies in _items(data.get("neighbors") if isinstance(data, dict) else None):
        for adj in adjacencies if isinstance(adjacencies, list) else []:
            interface = str(adj.get("ifaceName", "")).split(":")[0]
            state = str(adj.get("converged") or adj.get("nbrState", "")).split("/")[0]
            found.append(
                Session(
                    name=f"{router_id}@{interface}",
                    protocol="ospf",
                    state=state,
                    since=str(adj.get("upTime", "")),
                )
            )
    return found


def _frr_ospf6(data: Any) -> list[Session]:
    neighbors = data.get("neighbors") if isinstance(data, dict) else None
    return [
        Session(
            name=f"{adj.get('neighborId', '')}@{adj.get('interfaceName', '')}",
            protocol="ospf6",
            state=str(adj.get("state", "")),
            since=str(adj.get("duration", "")),
        )
        for adj in (neighbors if isinstance(neighbors, list) else [])
        if isinstance(adj, dict)
    ]


def _frr_isis(data: Any) -> list[Session]:
    found = []
    areas = data.get("areas") if isinstance(data, dict) else None
    for area in areas if isinstance(areas, list) else []:
        for circuit in area.get("circuits", []) if isinstance(area, dict) else []:
            if not isinstance(circuit, dict) or "adj" not in circuit:
                continue
            interface = circuit.get("interface")
            detail = interface if isinstance(interface, dict) else {}
            ifname = detail.get("name", "") if detail else str(interface or "")
            found.append(
                Session(
                    name=f"{circuit['adj']}@{ifname}",
                    protocol="isis",
                    state=str(circuit.get("state") or detail.get("state", "")),
                    since=str(detail.get("last-ago", "")),
                )
            )
    return found


def _frr_bfd(data: Any) -> list[Session]:
    found = []
    for peer in data if isinstance(data, list) else []:
        if not isinstance(peer, dict) or "peer" not in peer:
            continue
        status = str(peer.get("status", ""))
        seconds = peer.get("uptime" if status == "up" else "downtime")
        name = str(peer["peer"])
        if peer.get("interface"):
            name = f"{name}@{peer['interface']}"
        found.append(
            Session(
                name=name,
                protocol="bfd",
                state=status,
                since=f"{seconds}s" if seconds is not None else "",
            )
        )
    return found


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


def _frr_error(reload: _Output, pending: _Diff, limit: int = 20) -> str:
    said: list[str] = []
    for raw in _strip_ansi(reload.output).splitlines():
        # "line N:" counts lines of frr-reload.py's own temporary file: drop it.
        line = re.sub(r"^line \d+: ", "", raw.strip())
        router_message = line.startswith("%") or "Failure to communicate" in line
        if (router_message or "ERROR" in line) and line not in said:
            said.append(line)
    parts = [
        "FRR did not take the configuration; frr-reload.py --test still finds:",
        pending.describe(),
    ]
    if said:
        parts += ["FRR said:", *said[:limit]]
    return "\n".join(parts)


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
