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
from lbroute.model.vocabulary import DEFAULT_INTERFACE, NODE_AGENT

DEFAULT_LOCAL_ASN = 64512

PATH_RE = re.compile(r"/[A-Za-z0-9_.\-/]{0,255}")
PATH_VALID = "an absolute path of letters, digits, '_', '.', '-' and '/'"


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
    local_interface: str = "default"
    """NIC for local announcements; ``default`` = the one holding the default route."""
    templates_dir: str | None = None
    fast_convergence: bool = True
    config_path: str | None = None
    socket_path: str | None = None
    include_path: str | None = None
    reload_command: tuple[str, ...] = ()


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
            "templatesDir",
            "fastConvergence",
            "configPath",
            "socketPath",
            "includePath",
            "reloadCommand",
        }
    )
    router_id = spec.convert("routerID", _ipv4, "an IPv4 address such as 10.0.0.1")
    mode = spec.choice("mode", choices(Mode), default=Mode.MANAGED) or Mode.MANAGED
    local_interface = spec.raw("localInterface")
    if local_interface != "default":
        local_interface = spec.interface("localInterface")
    reload_command: list[str] = []
    for i, item, _ in spec.items("reloadCommand"):
        if not isinstance(item, str) or not re.fullmatch(r"[A-Za-z0-9_.,:=@%+/\-]{1,255}", item):
            spec.child("reloadCommand").error(
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
        local_interface=local_interface or "default",
        templates_dir=_path(spec, "templatesDir"),
        fast_convergence=spec.bool_("fastConvergence", True),
        config_path=_path(spec, "configPath"),
        socket_path=_path(spec, "socketPath"),
        include_path=include_path,
        reload_command=tuple(reload_command),
    )
    raise_if_failed(spec)
    return agent
