"""The NodeAgent kind: how the agent drives the router on the nodes it selects.

Which router (BIRD or FRR) and mode (the agent owns the whole configuration, or writes
a fragment the operator includes), the router ID and local ASN, the interfaces Service
addresses live on and are answered from, and where the router's files, socket and
templates are. The module is not called ``nodeagent`` so that it is never mistaken for
the agent package of that name. Which NodeAgent applies to a node is decided by the
renderer's view, where the nodes are known.

A NodeAgent only chooses among what the agent's command line allows (issue 24: whoever
can write a NodeAgent must not be able to run commands or write files on every node):
the paths here are absolute and normalised (no ``.`` or ``..`` part), so that the
agent's check that one lies under an allowed directory (nodeagent.settings) means what
it says, and ``reloadCommand`` is one argv, each argument without shell syntax.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lbroute.model.common import (
    EVERYTHING,
    LabelSelector,
    Mode,
    Router,
    choices,
    envelope,
    raise_if_failed,
    selector,
)
from lbroute.model.errors import ObjectRef, quote
from lbroute.model.fields import Reader, parse_ip
from lbroute.model.vocabulary import DEFAULT_INTERFACE, DEFAULT_LOCAL_INTERFACE, NODE_AGENT

DEFAULT_LOCAL_ASN = 64512

PATH_RE = re.compile(r"/[A-Za-z0-9_.\-/]{0,255}")
PATH_VALID = "an absolute path of letters, digits, '_', '.', '-' and '/'"

LOCAL_INTERFACE_RE = re.compile(r"[A-Za-z0-9_.\-*?\[\]]{1,15}")
LOCAL_INTERFACE_VALID = (
    "'default', an interface name, or an fnmatch pattern such as 'eth*' (1 to 15 of "
    "letters, digits, '_', '.', '-', '*', '?', '[', ']')"
)


@dataclass(frozen=True)
class LocalLease:
    """How often each agent renews its membership Lease, and how long it lasts.

    An agent whose Lease is older than ``duration`` seconds is dead to the others'
    elections; local addresses are given a valid lifetime of
    ``max(1, floor(duration - renew))`` seconds, renewed with the Lease, so a dead
    agent's addresses leave its NIC by themselves about that long after its last
    renewal. Every agent writes its Lease ``1 / renew`` times a second and every agent
    watches all of them: N agents cost N/renew writes and N*N/renew watch events a
    second on the API server.
    """

    duration: float = 2.0
    renew: float = 0.5

    @property
    def address_lifetime(self) -> int:
        return max(1, int(self.duration - self.renew))


DEFAULT_DRAIN_SECONDS = 30
"""How long a draining node keeps its de-preferred announcements before withdrawing
them. Long enough for what moves the traffic after the de-preference is sent: an
upstream's BGP best-path run, its update to its own peers (MRAI: 0 s for iBGP, up to
30 s for eBGP on routers that keep the RFC 4271 default) and the FIB programming of a
hardware router (seconds for a full table), or an IGP's SPF throttle and flooding (a
few seconds at most). 30 s covers one eBGP MRAI with room to spare; a shorter drain
risks withdrawing while a router still forwards to the node, a longer one only makes
maintenance slower."""

MAX_DRAIN_PREPEND = 10


@dataclass(frozen=True)
class DrainPolicy:
    """How a node drains (issue 17): de-prefer its announcements for ``seconds``, then
    withdraw them. ``on_cordon``: a cordoned Node (spec.unschedulable) drains too.
    Towards eBGP neighbors, besides the GRACEFUL_SHUTDOWN community, ``prepend`` more
    copies of the local ASN and, when set, ``med`` as the MED."""

    seconds: int = DEFAULT_DRAIN_SECONDS
    on_cordon: bool = False
    prepend: int = 0
    med: int | None = None


BIRD_SYMBOL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
BIRD_SYMBOL_VALID = "a BIRD symbol: 1 to 64 letters, digits and '_', not starting with a digit"
HOST_PROTOCOL_RE = re.compile(r"[A-Za-z_*?][A-Za-z0-9_*?]{0,63}")
HOST_PROTOCOL_VALID = (
    "a BIRD protocol name or a pattern of one with '*' and '?' (1 to 64 letters, digits, "
    "'_', '*', '?', not starting with a digit), such as Global_10_0_0_1 or 'Node_*'"
)


class HostSessionKind(StrEnum):
    """Which attributes ``lbroute_export()`` sets (like a Peer of that session kind)."""

    EBGP = "eBGP"
    IBGP = "iBGP"


@dataclass(frozen=True)
class HostSessions:
    """Include mode (issue 22): BGP sessions the host's BIRD owns (a CNI's, such as
    Calico's) that announce lbroute's prefixes. lbroute never configures them: its
    fragment pipes the carried groups' routes into the host's tables and defines
    ``lbroute_export()``, which the host's export filter calls once. ``protocols``
    (names or fnmatch patterns) only say which sessions those are, for status."""

    protocols: tuple[str, ...]
    service_group_selector: LabelSelector = EVERYTHING
    ibgp: bool = False
    """Which BGP attributes ``lbroute_export()`` sets: towards eBGP (prepend, no
    local preference) or towards iBGP (local preference, no prepend)."""
    ipv4_table: str = "master4"
    ipv6_table: str = "master6"


@dataclass(frozen=True, kw_only=True)
class NodeAgent:
    ref: ObjectRef
    node_selector: LabelSelector = EVERYTHING
    router: Router = Router.BIRD
    mode: Mode = Mode.MANAGED
    router_id: ipaddress.IPv4Address | None = None
    local_asn: int = DEFAULT_LOCAL_ASN
    interface: str = DEFAULT_INTERFACE
    """The dummy interface that carries Service addresses."""
    local_interface: tuple[str, ...] = DEFAULT_LOCAL_INTERFACE
    """NICs for local announcements, in order of preference: ``default`` (the one
    holding the family's default route), names and fnmatch patterns."""
    local_lease: LocalLease = LocalLease()
    templates_dir: str | None = None
    fast_convergence: bool = True
    config_path: str | None = None
    socket_path: str | None = None
    include_path: str | None = None
    reload_command: tuple[str, ...] = ()
    drain: DrainPolicy = DrainPolicy()
    host_sessions: HostSessions | None = None
    """Include mode: the host's own BGP sessions that carry lbroute's prefixes."""


def _ipv4(value: Any) -> ipaddress.IPv4Address:
    address = parse_ip(value)
    if not isinstance(address, ipaddress.IPv4Address):
        raise ValueError("")
    return address


def _path(spec: Reader, key: str) -> str | None:
    """An absolute path with no ``.`` or ``..`` part (``/etc/bird/../shadow`` would
    otherwise pass for a path under ``/etc/bird``)."""
    value = spec.str_(key, pattern=PATH_RE, valid=PATH_VALID)
    if value is not None and {".", ".."} & set(value.split("/")):
        spec.error(key, f"{quote(value)} is not valid; expected {PATH_VALID}, without '.' or '..'")
        return None
    return value


def _local_interface(spec: Reader) -> tuple[str, ...]:
    """``localInterface``: one entry as a string, or an ordered list of them."""
    value = spec.raw("localInterface")
    if value is None:
        return ("default",)
    if isinstance(value, str):
        spec.str_("localInterface", pattern=LOCAL_INTERFACE_RE, valid=LOCAL_INTERFACE_VALID)
        return (value,)
    if not isinstance(value, list) or not value:
        spec.error(
            "localInterface",
            f"must be a string or a non-empty list of strings: {LOCAL_INTERFACE_VALID}",
        )
        return ("default",)
    entries: list[str] = []
    for i, item, _ in spec.items("localInterface"):
        if not isinstance(item, str) or not LOCAL_INTERFACE_RE.fullmatch(item):
            spec.item_error(
                "localInterface", i, f"{quote(item)} is not valid; expected {LOCAL_INTERFACE_VALID}"
            )
        elif item in entries:
            spec.item_error("localInterface", i, f"{quote(item)} is listed twice")
        else:
            entries.append(item)
    return tuple(entries) or ("default",)


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("")
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float: out of range all the same
        raise ValueError("") from None


_LEASE_VALID = (
    "a number of seconds from {} such as {}, without quotes or unit (unlike the timers of a "
    "Peer, these take fractions of a second, so the CRD types them as numbers, which "
    "cannot be duration strings)"
)


def _local_lease(spec: Reader) -> LocalLease:
    if spec.raw("localLease") is None:
        return LocalLease()
    lease = spec.child("localLease")
    lease.unknown({"durationSeconds", "renewSeconds"})
    default = LocalLease()
    duration = lease.convert("durationSeconds", _seconds, _LEASE_VALID.format("1 to 300", "2"))
    renew = lease.convert("renewSeconds", _seconds, _LEASE_VALID.format("0.1 to 60", "0.5"))
    duration = default.duration if duration is None else duration
    renew = default.renew if renew is None else renew
    if not 1 <= duration <= 300:
        lease.error("durationSeconds", f"{duration:g} is out of range; expected 1 to 300 seconds")
        return default
    if not 0.1 <= renew <= 60:
        lease.error("renewSeconds", f"{renew:g} is out of range; expected 0.1 to 60 seconds")
        return default
    if renew * 2 > duration:
        lease.error(
            "renewSeconds",
            f"{renew:g} is more than half of durationSeconds {duration:g}: one late renewal "
            "would make the node look dead; expected at most half of durationSeconds",
        )
        return default
    return LocalLease(duration=duration, renew=renew)


def parse_node_agent(obj: Mapping[str, Any]) -> NodeAgent:
    ref, _meta, spec = envelope(obj, NODE_AGENT)
    spec.unknown(
        {
            "nodeSelector",
            "router",
            "mode",
            "routerID",
            "localASN",
            "interface",
            "localInterface",
            "localLease",
            "templatesDir",
            "fastConvergence",
            "configPath",
            "socketPath",
            "includePath",
            "reloadCommand",
            "drainSeconds",
            "drainOnCordon",
            "drainPrepend",
            "drainMED",
            "hostSessions",
        }
    )
    router_id = spec.convert("routerID", _ipv4, "an IPv4 address such as 10.0.0.1")
    mode = spec.choice("mode", choices(Mode), default=Mode.MANAGED) or Mode.MANAGED
    local_interface = _local_interface(spec)
    local_lease = _local_lease(spec)
    reload_command: list[str] = []
    for i, item, _ in spec.items("reloadCommand"):
        if not isinstance(item, str) or not re.fullmatch(r"[A-Za-z0-9_.,:=@%+/\-]{1,255}", item):
            spec.item_error(
                "reloadCommand",
                i,
                f"{quote(item)} is not valid; expected one argument of letters, digits, _.,:=@%+/-",
            )
        else:
            reload_command.append(item)
    include_path = _path(spec, "includePath")
    if mode is Mode.INCLUDE and include_path is None and not spec.failed:
        spec.error("includePath", "is required with mode include: the file the fragment goes to")
    agent = NodeAgent(
        ref=ref,
        node_selector=selector(spec, "nodeSelector"),
        router=spec.choice("router", choices(Router), default=Router.BIRD) or Router.BIRD,
        mode=mode,
        router_id=router_id,
        local_asn=spec.int_("localASN", 1, 4294967295) or DEFAULT_LOCAL_ASN,
        interface=spec.interface("interface") or DEFAULT_INTERFACE,
        local_interface=local_interface,
        local_lease=local_lease,
        templates_dir=_path(spec, "templatesDir"),
        fast_convergence=spec.bool_("fastConvergence", True),
        config_path=_path(spec, "configPath"),
        socket_path=_path(spec, "socketPath"),
        include_path=include_path,
        reload_command=tuple(reload_command),
        drain=_drain(spec),
        host_sessions=_host_sessions(spec),
    )
    raise_if_failed(spec)
    return agent


def _drain(spec: Reader) -> DrainPolicy:
    """``drainSeconds``, ``drainOnCordon``, ``drainPrepend`` and ``drainMED``."""
    seconds = spec.int_("drainSeconds", 0, 3600, unit="seconds")
    prepend = spec.int_("drainPrepend", 0, MAX_DRAIN_PREPEND)
    return DrainPolicy(
        seconds=DEFAULT_DRAIN_SECONDS if seconds is None else seconds,
        on_cordon=spec.bool_("drainOnCordon", False),
        prepend=prepend or 0,
        med=spec.int_("drainMED", 0, 4294967295),
    )


def _host_sessions(spec: Reader) -> HostSessions | None:
    """``hostSessions``: the host BIRD's own sessions that announce lbroute's prefixes
    (used in include mode only; the view says when it is ignored)."""
    if spec.raw("hostSessions") is None:
        return None
    h = spec.child("hostSessions")
    h.unknown({"protocols", "serviceGroupSelector", "session", "ipv4Table", "ipv6Table"})
    protocols: list[str] = []
    for i, item, _ in h.items("protocols"):
        if not isinstance(item, str) or not HOST_PROTOCOL_RE.fullmatch(item):
            h.item_error(
                "protocols", i, f"{quote(item)} is not valid; expected {HOST_PROTOCOL_VALID}"
            )
        elif item.lower().startswith("lbr_"):
            h.item_error(
                "protocols",
                i,
                f"{quote(item)} names lbroute's own protocols (lbr_*); expected the host's "
                "sessions (lbroute's own sessions are Peers)",
            )
        elif item in protocols:
            h.item_error("protocols", i, f"{quote(item)} is listed twice")
        else:
            protocols.append(item)
    if not protocols and not h.failed:
        h.error("protocols", f"is required: a non-empty list, each {HOST_PROTOCOL_VALID}")
    session = h.choice("session", choices(HostSessionKind), default=HostSessionKind.EBGP)
    ipv4 = h.str_("ipv4Table", pattern=BIRD_SYMBOL_RE, valid=BIRD_SYMBOL_VALID)
    ipv6 = h.str_("ipv6Table", pattern=BIRD_SYMBOL_RE, valid=BIRD_SYMBOL_VALID)
    for key, table in (("ipv4Table", ipv4), ("ipv6Table", ipv6)):
        if table is not None and table.lower().startswith("lbr"):
            h.error(key, f"{quote(table)} is one of lbroute's own tables; expected the host's")
    return HostSessions(
        protocols=tuple(protocols),
        service_group_selector=selector(h, "serviceGroupSelector"),
        ibgp=session is HostSessionKind.IBGP,
        ipv4_table=ipv4 or "master4",
        ipv6_table=ipv6 or "master6",
    )
