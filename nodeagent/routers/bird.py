"""BIRD 2 through ``bird -p`` and ``birdc``: :class:`BirdDriver`, and the parsers of
what ``birdc`` prints (reply codes, ``show protocols all``).

A configuration is checked by ``bird -p`` before the file is touched, written
atomically, then loaded with ``birdc configure ... timeout`` and confirmed; when BIRD
refuses it, the previous file is put back and BIRD keeps (or, by its own timer, goes
back to) the previous configuration. Which BIRD runs is the control socket's peer pid,
or BIRD's boot time where that pid is not visible.
"""

from __future__ import annotations

import datetime
import logging
import re
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from lbroute.model.api import Mode, Router
from nodeagent.routers.check import check_config, context, tool
from nodeagent.routers.driver import (
    ApplyResult,
    Session,
    failed,
    read_file,
    replace_file,
    restore_file,
)
from nodeagent.routers.process import Output, call

BIRD_BOOT_JITTER = datetime.timedelta(milliseconds=500)
_UCRED = struct.Struct("3i")
"""struct ucred: pid, uid, gid (SO_PEERCRED)."""

log = logging.getLogger(__name__)


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
            return failed(parsed.describe(), started, rejected=True)
        try:
            previous = replace_file(self.target, text)
        except OSError as exc:
            return failed(f"cannot write {self.target}: {exc}", started)
        error = self._run_reload_command() if self.reload_command else self._configure(text)
        if error:
            try:
                restore_file(self.target, previous)
            except OSError as exc:
                error += f"\nrestoring the previous file failed: {exc}"
            if self.reload_command:
                self._run_reload_command()  # best effort: reload what is on disk again
            log.info(
                "BIRD refused the configuration in %s; put the previous file back", self.target
            )
            return failed(error, started)
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
        return read_file(self.target) == text and self.generation() is not None

    def _birdc(self, *command: str, verbose: bool = False) -> Output:
        birdc = tool("birdc", "/usr/sbin/birdc")
        flags = ["-v"] if verbose else []
        return call([birdc, *flags, "-s", str(self.socket_path), *command], self.timeout)

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
        lines = context(text, int(m.group(1))) if m else ""
        return f"\n{lines}" if lines else ""

    def _run_reload_command(self) -> str:
        out = call(self.reload_command, self.timeout)
        if out.returncode == 0:
            return ""
        said = out.output.strip() or f"exit status {out.returncode}"
        return f"{' '.join(self.reload_command)}: {said}"


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
