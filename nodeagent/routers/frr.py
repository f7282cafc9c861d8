"""FRR through ``vtysh`` and ``frr-reload.py``: :class:`FrrDriver`, and the parsers of
what vtysh's JSON commands report about sessions (BGP, OSPF, OSPFv3, IS-IS, BFD).

A configuration is checked by ``vtysh --dryrun`` before the file is touched, written
atomically, then made the running one by the cheapest way that works: only the
prefix-list and route-map changes (:mod:`nodeagent.routers.frr_delta`) when FRR runs the
previous file, the whole file through one ``vtysh -f`` when the daemons run nothing,
otherwise ``frr-reload.py --reload``. Whatever the way, success is
``frr-reload.py --test`` finding nothing left to change; when FRR does not take the
configuration, the previous file is put back and reloaded.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbroute.model.api import Router
from nodeagent.routers.check import check_config, tool
from nodeagent.routers.driver import (
    ApplyResult,
    Session,
    failed,
    read_file,
    redact,
    replace_file,
    restore_file,
)
from nodeagent.routers.frr_delta import frr_commands, frr_is_empty, frr_policy_delta
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
            return failed(parsed.describe(), started, rejected=True)
        try:
            previous = replace_file(self.config_path, text)
        except OSError as exc:
            return failed(f"cannot write {self.config_path}: {exc}", started)
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
        return failed(f"{error}\n{restored}", started)

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
        if read_file(self.config_path) == text and self._pending().clean:
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
            out = call(
                [vtysh, "--vty_socket", str(self.vty_socket_dir), "-f", delta.name],
                self.timeout,
            )
        return _strip_ansi(out.output).strip()

    def _vtysh(self, command: str) -> Output:
        vtysh = tool("vtysh", "/usr/bin/vtysh")
        return call([vtysh, "--vty_socket", str(self.vty_socket_dir), "-c", command], self.timeout)

    def _json(self, command: str) -> Any:
        """The parsed reply, or None when the daemon is not running or says nothing."""
        out = self._vtysh(command)
        try:
            return json.loads(out.stdout) if out.returncode == 0 else None
        except ValueError:
            return None

    def _reload_tool(self, mode: str) -> Output:
        """frr-reload.py on the file, with FRR's configuration directory (``--confdir``):
        the file's own when it holds a ``vtysh.conf``, otherwise ``/etc/frr``. vtysh reads
        ``vtysh.conf`` there, and after reloading a file other than ``frr.conf`` in that
        directory, frr-reload.py has vtysh ``write`` the running configuration to it."""
        here = self.config_path.parent
        confdir = here if (here / "vtysh.conf").is_file() else FRR_CONFDIR
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

    def _reload(self, passes: int = 2) -> tuple[Output, _Diff]:
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
            restore_file(self.config_path, previous)
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


def _frr_error(reload: Output, pending: _Diff, limit: int = 20) -> str:
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
