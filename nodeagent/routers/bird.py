"""BIRD 2 through ``bird -p`` and ``birdc``: :class:`BirdDriver`, and the parsers of
what ``birdc`` prints (reply codes, ``show protocols all``, ``show symbols``).

A configuration is checked by ``bird -p`` before the file is touched, written
atomically, then loaded with ``birdc configure timeout`` and confirmed; when BIRD
refuses it, the previous file is put back and BIRD keeps (or, by its own timer, goes
back to) the previous configuration. Which BIRD runs is the control socket's peer pid,
or BIRD's boot time where that pid is not visible.

lbroute only ever has BIRD load the file BIRD runs: ``configure`` is given no file name,
so BIRD reads again the file it was started with (``bird -c``). Named with a file,
``configure`` replaces BIRD's whole configuration with that file's, whatever it is: an
agent in include mode once loaded the packaged default ``/etc/bird/bird.conf`` that way
and wiped a CNI's configuration (issue 14). In managed mode that file must be the one
the agent writes, which is checked before anything is touched (``configure check`` says
which file BIRD reads); in include mode it is the host's, which must include the
fragment. Either way, before the new configuration is confirmed, BIRD must know every
symbol the text defines (``show symbols``); otherwise it is undone. Whether BIRD already
runs a text is decided from BIRD too, not from the file alone: the same symbols, and a
reload no older than the file.
"""

from __future__ import annotations

import datetime
import fnmatch
import logging
import os
import re
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from lbroute.model.api import Mode, Router
from lbroute.model.errors import quote
from nodeagent.routers.check import check_config, context, tool
from nodeagent.routers.driver import (
    ApplyResult,
    Outcome,
    Session,
    failed,
    read_file,
    replace_file,
    restore_file,
)
from nodeagent.routers.process import Output, call

BIRD_BOOT_JITTER = datetime.timedelta(milliseconds=500)
LOAD_SLACK = 1.0
"""Seconds by which BIRD's last reload may seem older than the file it loaded: BIRD's
clock is read through ``birdc``, in its own time zone, with the delay of the call."""
PATH_QUOTE = 256
"""How much of a file name BIRD gives a message quotes (more than an input value)."""
_UCRED = struct.Struct("3i")
"""struct ucred: pid, uid, gid (SO_PEERCRED)."""

log = logging.getLogger(__name__)


class BirdDriver:
    """BIRD 2 through ``bird -p`` and ``birdc``.

    Managed mode: ``config_path`` is BIRD's whole configuration and lbroute owns it; it
    must be the file BIRD was started with. ``configure timeout T`` loads it (BIRD undoes
    it by itself after T seconds unless confirmed), then ``configure confirm``. With
    ``replace_host_config`` False (nobody chose managed mode: it is the default), a
    ``config_path`` that includes other files is taken for the host's own and not
    replaced.
    Include mode: the text is a fragment written to ``include_path``, which the host's
    own configuration includes; it is loaded like managed mode (BIRD reads its own file
    again), or with ``reload_command`` when given. ``config_path`` is not used.
    """

    def __init__(
        self,
        config_path: Path | str,
        socket_path: Path | str,
        *,
        mode: Mode = Mode.MANAGED,
        include_path: Path | str | None = None,
        reload_command: Sequence[str] = (),
        replace_host_config: bool = True,
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
        self.replace_host_config = replace_host_config
        self.timeout = timeout
        self._booted: tuple[datetime.datetime, str] | None = None
        """The boot time last seen, and the generation reported for it."""

    def apply(self, text: str) -> ApplyResult:
        started = time.monotonic()
        tool(*self.reload_command[:1] or ("birdc", "/usr/sbin/birdc"))  # before touching files
        parsed = check_config(Router.BIRD, text, self.mode)
        if not parsed.ok:
            log.info("bird -p rejected the configuration for %s; nothing changed", self.target)
            return failed(parsed.describe(), started, Outcome.REJECTED)
        refusal, outcome = self._refusal()
        if refusal:
            log.info("not loading %s: %s", self.target, refusal.splitlines()[0])
            return failed(refusal, started, outcome)
        try:
            previous = replace_file(self.target, text)
        except OSError as exc:
            return failed(f"cannot write {self.target}: {exc}", started, Outcome.UNAVAILABLE)
        if self.reload_command:
            error, outcome = self._run_reload_command(), Outcome.REJECTED
            if not error:
                error, outcome = self._not_running(text, undo=False), Outcome.NOT_CONVERGED
        else:
            error, outcome = self._configure(text)
        if error:
            try:
                restore_file(self.target, previous)
            except OSError as exc:
                error += f"\nrestoring the previous file failed: {exc}"
            if self.reload_command:
                self._run_reload_command()  # best effort: reload what is on disk again
            log.info(
                "BIRD did not take the configuration in %s; put the previous file back",
                self.target,
            )
            return failed(error, started, outcome)
        log.info("BIRD configuration %s applied", self.target)
        return ApplyResult(duration=time.monotonic() - started)

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
        found = parse_bird_protocols(out.stdout) if out.returncode == 0 else []
        patterns = host_session_patterns(self.written() or "") if self.mode is Mode.INCLUDE else ()
        if patterns:
            out = self._birdc("show", "protocols", "all")
            if out.returncode == 0:
                found += host_sessions(out.stdout, patterns)
        return found

    def written(self) -> str | None:
        return read_file(self.target)

    def is_current(self, text: str) -> bool:
        """BIRD runs ``text``: the file holds it, BIRD reloaded after the file was last
        written, it knows every symbol the text defines, and (managed mode) the file is
        the one BIRD runs. The file alone is not enough: an agent restarted after
        another file was loaded (by hand, or by an older lbroute) must load it again."""
        if read_file(self.target) != text:
            return False
        asked = time.time()
        status = self._birdc("show", "status")
        if status.returncode != 0 or not self._loaded_since_written(status.stdout, asked):
            return False
        if self.mode is Mode.MANAGED and self._refusal()[0]:
            return False
        return not self._missing_symbols(text)

    def _loaded_since_written(self, status: str, asked: float) -> bool:
        """BIRD's last reload (``show status``) is not older than the file. BIRD prints
        times in its own zone: its "current server time" against this process's clock
        (read just before asking) gives the offset. Times lbroute cannot read (another
        ``timeformat``) do not decide."""
        times = dict(_STATUS_TIME.findall(status))
        try:
            server = _timestamp(times["Current server time is"])
            loaded = _timestamp(times["Last reconfiguration on"])
            written = self.target.stat().st_mtime
        except (KeyError, ValueError, OSError):
            return True
        return loaded + (asked - server) + LOAD_SLACK >= written

    def _refusal(self) -> tuple[str, Outcome]:
        """Why this configuration must not be loaded, before anything is touched ("" when
        it may), and what that is. Managed mode only: include mode loads the file BIRD
        runs."""
        if self.mode is not Mode.MANAGED:
            return "", Outcome.APPLIED
        if not self.replace_host_config:
            included = bird_includes(read_file(self.config_path) or "")
            if included:
                return (
                    f"{self.config_path} is the host's own BIRD configuration (it includes "
                    f"{_named(included[0])}): managed mode by default never replaces it. "
                    "lbroute owns BIRD's whole configuration only when told so: a NodeAgent "
                    "that selects this node, or --mode managed. Nothing was changed"
                ), Outcome.REFUSED
        own, said, answered = self._own_file()
        if own is None:
            if not answered:
                said = f"BIRD is not answering on {self.socket_path} ({said})"
            else:
                said = f"BIRD does not say which file it runs (birdc configure check: {said})"
            return said, Outcome.UNAVAILABLE
        if not self._is_config_path(own):
            return (
                f"BIRD runs {_named(own)}, not {self.config_path}: lbroute only has BIRD "
                "reload the file it runs, so this one would never be loaded. Start BIRD "
                f"with -c {self.config_path}, or give the agent BIRD's file with "
                "--router-config (lbroute then owns all of it). Nothing was changed"
            ), Outcome.REFUSED
        return "", Outcome.APPLIED

    def _own_file(self) -> tuple[str | None, str, bool]:
        """The file BIRD was started with, as ``configure check`` names it (it reads the
        file without loading it); what birdc said; whether BIRD answered at all."""
        out = self._birdc("configure", "check", verbose=True)
        own = _reading(out.stdout)
        return own, out.output.strip() or "no reply", bool(_bird_replies(out.stdout))

    def _is_config_path(self, own: str) -> bool:
        """BIRD's own file, as BIRD names it, is ``config_path``. A relative name is
        BIRD's working directory's: seen through /proc when BIRD's pid is visible,
        otherwise compared by its last parts."""
        named = Path(own)
        if not named.is_absolute():
            pid = self._daemon_pid()
            if pid is None:
                return self.config_path.parts[-len(named.parts) :] == named.parts
            named = Path(f"/proc/{pid}/cwd") / named
        if os.path.normpath(named) == os.path.normpath(self.config_path):
            return True
        try:
            return os.path.samefile(named, self.config_path)
        except OSError:
            return False

    def _missing_symbols(self, text: str) -> list[str]:
        """The symbols ``text`` defines that the running BIRD does not know."""
        defined = bird_symbols(text)
        if not defined:
            return []
        out = self._birdc("show", "symbols")
        if out.returncode != 0:
            return sorted(defined)
        known = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
        return sorted(defined - known)

    def _not_running(self, text: str, *, undo: bool) -> str:
        """After a reload: "" when BIRD knows what ``text`` defines, otherwise the error
        (and, with ``undo``, the reload undone)."""
        missing = self._missing_symbols(text)
        if not missing:
            return ""
        names = ", ".join(quote(m) for m in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        if self.mode is Mode.INCLUDE:
            said = (
                f"BIRD reloaded its own configuration, but does not know {names}{more}, "
                f"which {self.target} defines: BIRD's configuration does not include "
                f'{self.target}; add include "{self.target}"; to it'
            )
        else:
            said = f"BIRD reloaded, but does not know {names}{more}, which {self.target} defines"
        if undo:
            self._birdc("configure", "undo", verbose=True)
            said += "; undone"
        return said

    def _birdc(self, *command: str, verbose: bool = False) -> Output:
        birdc = tool("birdc", "/usr/sbin/birdc")
        flags = ["-v"] if verbose else []
        return call([birdc, *flags, "-s", str(self.socket_path), *command], self.timeout)

    def _configure(self, text: str) -> tuple[str, Outcome]:
        """Have BIRD reload the file it runs, check that it runs ``text`` and confirm;
        the error ("" when it runs) and what it was."""
        seconds = str(max(1, round(self.timeout)))
        out = self._birdc("configure", "timeout", seconds, verbose=True)
        codes = _bird_replies(out.stdout)
        if not {"0003", "0004", "0005"} & {code for code, _ in codes}:
            # Not taken (a parse or file error), or no answer at all; if BIRD did take
            # it without saying so, its own timer undoes it since nobody confirms.
            errors = [msg for code, msg in codes if code[0] in "89"]
            said = "\n".join(errors) or out.output.strip() or "no reply"
            outcome = Outcome.REJECTED if errors else Outcome.UNAVAILABLE
            return f"birdc configure: {said}{self._context(said, text)}", outcome
        own = _reading(out.stdout)
        if self.mode is Mode.MANAGED and own is not None and not self._is_config_path(own):
            self._birdc("configure", "undo", verbose=True)
            return (
                f"BIRD reloaded {_named(own)}, not {self.config_path}; undone",
                Outcome.REFUSED,
            )
        missing = self._not_running(text, undo=True)
        if missing:
            return missing, Outcome.NOT_CONVERGED
        confirm = self._birdc("configure", "confirm", verbose=True)
        if any(code == "0018" for code, _ in _bird_replies(confirm.stdout)):
            return "", Outcome.APPLIED
        self._birdc("configure", "undo", verbose=True)
        said = confirm.output.strip() or "no reply"
        return f"birdc configure confirm failed ({said}); undone", Outcome.UNAVAILABLE

    def _context(self, said: str, text: str) -> str:
        m = re.search(rf"{re.escape(str(self.target))}:(\d+):", said)
        lines = context(text, int(m.group(1))) if m else ""
        return f"\n{lines}" if lines else ""

    def _run_reload_command(self) -> str:
        out = call(self.reload_command, self.timeout)
        if out.returncode == 0:
            return ""
        said = out.output.strip() or f"exit status {out.returncode}"
        return f"{' '.join(self.reload_command)}: {said}"


_SYMBOL = r"[A-Za-z_]\w*"
_DEFINITION = re.compile(
    r"^[ \t]*(?:"
    rf"protocol[ \t]+\w+[ \t]+(?!from\b)(?P<protocol>{_SYMBOL})"
    rf"|template[ \t]+\w+[ \t]+(?P<template>{_SYMBOL})"
    rf"|(?:filter|function|define)[ \t]+(?P<name>{_SYMBOL})"
    rf"|attribute[ \t]+\w+[ \t]+(?P<attribute>{_SYMBOL})"
    rf"|(?:ipv4|ipv6|ipv6[ \t]+sadr|vpn4|vpn6|roa4|roa6|flow4|flow6|mpls)[ \t]+table[ \t]+"
    rf"(?P<table>{_SYMBOL})"
    r")",
    re.M,
)
_STATUS_TIME = re.compile(r"^\s*(Current server time is|Last reconfiguration on) (.+?)\s*$", re.M)
_INCLUDE = re.compile(r'^[ \t]*include[ \t]+"([^"]*)"', re.M)


def bird_symbols(text: str) -> set[str]:
    """The names a BIRD configuration defines at its top level: protocols, templates,
    filters, functions, constants, attributes and tables (what ``show symbols`` lists)."""
    return {next(g for g in m.groups() if g) for m in _DEFINITION.finditer(text)}


def bird_includes(text: str) -> list[str]:
    """The files a BIRD configuration includes, as written."""
    return _INCLUDE.findall(text)


def _reading(text: str) -> str | None:
    """The file BIRD says it reads (``birdc -v configure``: ``0002-Reading configuration
    from <file>``)."""
    for code, message in _bird_replies(text):
        if code == "0002" and message.startswith("Reading configuration from "):
            return message.removeprefix("Reading configuration from ")
    return None


def _named(path: str) -> str:
    """A file name BIRD gave, quoted for a message (longer than an input value may be)."""
    return quote(path, PATH_QUOTE)


def _timestamp(printed: str) -> float:
    """A time BIRD printed (its default format, its own zone) as seconds, read as UTC:
    only differences between two of them mean anything."""
    moment = datetime.datetime.fromisoformat(printed)
    return moment.replace(tzinfo=datetime.UTC).timestamp()


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


_HOST_HEADER = re.compile(
    r"(?P<name>[A-Za-z_]\S*)\s+(?P<proto>\S+)\s+\S+\s+(?P<state>\S+)\s+"
    r"(?P<since>\S+(?: \d\d:\d\d:\d\d(?:\.\d+)?)?)\s*(?P<info>.*)$"
)
_HOST_MARKER = re.compile(r"^# lbroute-host-sessions:((?: \S+)+)$", re.M)


def host_session_patterns(fragment: str) -> tuple[str, ...]:
    """The host's session names or patterns (NodeAgent ``hostSessions.protocols``) as
    the include-mode fragment lists them (templates/bird/host.j2)."""
    m = _HOST_MARKER.search(fragment)
    return tuple(m.group(1).split()) if m else ()


def host_sessions(text: str, patterns: Sequence[str]) -> list[Session]:
    """The host's BGP sessions in ``birdc show protocols all`` that carry lbroute's
    prefixes (issue 22): BGP protocols, not lbroute's, whose name matches one of
    ``patterns``."""
    return [
        s
        for s in parse_bird_protocols(text, pattern=_HOST_HEADER)
        if s.protocol == "bgp"
        and not s.name.startswith("lbr_")
        and any(fnmatch.fnmatchcase(s.name, p) for p in patterns)
    ]


def parse_bird_protocols(text: str, *, pattern: re.Pattern[str] = _BIRD_HEADER) -> list[Session]:
    """Sessions from ``birdc show protocols all``: lbroute's BGP, OSPF, RIP and BFD
    protocols (with ``pattern``: those whose header line it matches). BGP reports its
    BGP state; the others their protocol state (up, down)."""
    found: list[Session] = []
    for header, body in _bird_blocks(text, pattern):
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


def _bird_blocks(
    text: str, pattern: re.Pattern[str] = _BIRD_HEADER
) -> Iterator[tuple[re.Match[str], str]]:
    header: re.Match[str] | None = None
    body: list[str] = []
    for line in [*text.splitlines(), "end"]:
        m = pattern.match(line)
        if m or not line.startswith(" "):
            if header is not None:
                yield header, "\n".join(body)
            header, body = m, []
        else:
            body.append(line)
