"""PureLB's configuration (``purelb.io`` v1 and v2) and k8gobgp's BGPConfiguration
(``bgp.purelb.io``) as lbroute objects.

The rules:

- each ServiceGroup becomes lbroute's ServiceGroup of the same name; the one named
  ``default`` is the default group, as PureLB takes it for Services that name none;
  ``local`` pools give ``announce: local``, ``remote`` pools ``announce: routed``; each
  pool keeps its subnet and aggregation (``default``: the subnet's length, as in
  lbroute), and every address of the pool is handed out, as PureLB does; ``netbox``
  (addresses from an external IPAM) has no equivalent;
- an LBNodeAgent becomes a NodeAgent: its local interface (``default``, or a regular
  expression lbroute writes as a shell pattern), extra interfaces and dummy interface;
- a BGPConfiguration's global ASN goes on the NodeAgent (localASN), each neighbor
  becomes a Peer carrying the routed groups, with its timers, multihop, graceful
  restart, source address, address families and password (inline ones into a Secret).

What lbroute cannot express is reported as an error on the source object and field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lbroute.convert.output import Output
from lbroute.convert.report import q, source_of
from lbroute.convert.values import (
    Source,
    lbroute_pool,
    meta_name,
    meta_namespace,
    object_name,
    parse_block,
    selector,
)
from lbroute.model.vocabulary import DEFAULT_INTERFACE

GROUPS = ("purelb.io", "bgp.purelb.io")
STATUS_KINDS = ("BGPNodeStatus", "LBNode")
_U32 = 4294967295


def is_purelb(obj: Mapping[str, Any]) -> bool:
    api = obj.get("apiVersion")
    return isinstance(api, str) and api.split("/")[0] in GROUPS


def convert(objects: Sequence[Mapping[str, Any]], out: Output) -> None:
    """Convert PureLB's and k8gobgp's objects among ``objects`` into ``out``."""
    groups, agents, configs = [], [], []
    for obj in sorted(objects, key=lambda o: (meta_namespace(o), meta_name(o))):
        kind = obj.get("kind")
        if kind == "ServiceGroup":
            groups.append(obj)
        elif kind == "LBNodeAgent":
            agents.append(obj)
        elif kind == "BGPConfiguration":
            configs.append(obj)
        elif kind in STATUS_KINDS:
            out.report.info(obj, "", "status, not configuration: nothing to convert")
        else:
            out.report.error(obj, "", "not a PureLB kind lbroute convert knows: not converted")
    routed = [name for g in groups if (name := _group(out, g)) is not None]
    asn: int | None = None
    for cfg in configs:
        asn = _bgp_config(out, cfg, bool(routed)) or asn
    if len(configs) > 1:
        out.report.error(
            configs[1],
            "",
            "a second BGPConfiguration: lbroute's NodeAgent has one "
            "localASN for the nodes it selects; converted with the first's",
        )
    if routed and not configs:
        out.report.warning(
            "PureLB",
            "",
            f"remote groups ({', '.join(routed)}) are announced by a routing daemon PureLB does "
            "not configure (BIRD, or k8gobgp whose BGPConfiguration is not among the files "
            "converted): write lbroute Peers for its neighbors",
        )
    if not agents and asn is not None:
        out.node_agent("purelb", {"localASN": asn}, "BGPConfiguration global.asn")
    for i, agent in enumerate(agents):
        _agent(out, agent, asn if i == 0 else None)
    if len(agents) > 1:
        out.report.error(
            agents[1],
            "",
            "a second LBNodeAgent: both select every node, and lbroute "
            "uses one NodeAgent per node; keep one",
        )


# -- service groups --------------------------------------------------------------------------


def _group(out: Output, obj: Mapping[str, Any]) -> str | None:
    """Convert one ServiceGroup; its name when it is routed."""
    s = Source(obj, out.report)
    name = meta_name(obj)
    spec: dict[str, Any] = {}
    local, remote = s.get("local"), s.get("remote")
    s.refuse(
        "netbox",
        "addresses from an external IPAM (Netbox) have no lbroute equivalent; "
        "lbroute hands out addresses from the pools of its ServiceGroups",
    )
    s.refuse("egw", "EPIC gateway groups have no lbroute equivalent")
    chosen = (
        local if isinstance(local, Mapping) else remote if isinstance(remote, Mapping) else None
    )
    if chosen is None:
        if s.has("netbox") or s.has("egw"):
            return None
        s.error("", "has neither local nor remote pools: not converted")
        return None
    kind = "local" if chosen is local else "remote"
    pools = _pools(out, obj, kind, chosen, local=kind == "local")
    if not pools:
        s.error(kind, "no pool to convert: no ServiceGroup written")
        return None
    spec["pools"] = pools
    spec["announce"] = "local" if kind == "local" else "routed"
    if name == "default":
        spec["default"] = True
    s.leftover()
    out.group(object_name(name), spec, source_of(obj))
    return object_name(name) if kind == "remote" else None


def _pools(
    out: Output, obj: Mapping[str, Any], kind: str, spec: Mapping[str, Any], *, local: bool
) -> list[dict[str, Any]]:
    s = Source(obj, out.report, f"spec.{kind}")
    entries: list[tuple[str, Any]] = []
    for key in ("v4pool", "v6pool"):
        if isinstance(s.data.get(key), Mapping):
            entries.append((key, s.get(key)))
    for key in ("v4pools", "v6pools"):
        items = s.get(key, [])
        entries += [
            (f"{key}[{i}]", item) for i, item in enumerate(items if isinstance(items, list) else [])
        ]
    if s.has("pool"):  # purelb.io/v1: one pool per family at the top of local
        entries.append(("", {k: s.get(k) for k in ("pool", "subnet", "aggregation")}))
    if s.has("v6pool") and isinstance(s.data.get("v6pool"), str):  # v1's v6 fields
        entries.append(
            (
                "v6",
                {
                    "pool": s.get("v6pool"),
                    "subnet": s.get("v6subnet"),
                    "aggregation": s.get("v6aggregation"),
                },
            )
        )
    if local:
        s.refuse(
            "skipIPv6DAD",
            "lbroute runs duplicate address detection as the kernel does",
            unless=False,
        )
    s.leftover()
    pools = []
    for path, entry in entries:
        pool = _pool(out, obj, f"spec.{kind}.{path}".rstrip("."), entry, local=local)
        if pool is not None:
            pools.append(pool)
    return pools


def _pool(
    out: Output, obj: Mapping[str, Any], path: str, entry: Any, *, local: bool
) -> dict[str, Any] | None:
    if not isinstance(entry, Mapping):
        out.report.error(obj, path, f"{q(entry)} is not a pool {{pool, subnet, aggregation}}")
        return None
    block = parse_block(entry.get("pool"))
    if block is None:
        out.report.error(obj, f"{path}.pool", f"{q(entry.get('pool'))} is not a CIDR or a range")
        return None
    try:
        subnet = ipaddress.ip_network(str(entry.get("subnet")), strict=False)
    except ValueError:
        out.report.error(
            obj, f"{path}.subnet", f"{q(entry.get('subnet'))} is not a network such as 192.0.2.0/24"
        )
        return None
    aggregation = entry.get("aggregation")
    length: int | None = None
    if aggregation not in (None, "", "default"):
        text = str(aggregation).lstrip("/")
        if not text.isdigit() or not subnet.prefixlen <= int(text) <= subnet.max_prefixlen:
            out.report.error(
                obj,
                f"{path}.aggregation",
                f"{q(aggregation)} is not valid for lbroute; expected 'default' or a length from "
                f"{subnet.prefixlen} (the subnet's) to {subnet.max_prefixlen}",
            )
        elif local and int(text) != subnet.prefixlen:
            out.report.error(
                obj,
                f"{path}.aggregation",
                f"{q(aggregation)}: a local address gets its subnet's prefix length on the NIC in "
                "lbroute; converted with 'default'",
            )
        else:
            length = int(text)
    for extra in sorted(set(entry) - {"pool", "subnet", "aggregation"}):
        out.report.error(obj, f"{path}.{extra}", f"{q(entry[extra])}: no lbroute equivalent")
    if int(block.first) < int(subnet.network_address) or int(block.last) > int(
        subnet.broadcast_address
    ):
        out.report.error(obj, f"{path}.subnet", f"{subnet} does not hold the whole pool")
        return None
    return lbroute_pool(block, subnet=subnet, aggregation=length)


# -- node agent ------------------------------------------------------------------------------

_REGEX_META = re.compile(r"[\\()|+?{}^$\[\]]")


def _pattern(value: str) -> str | None:
    """PureLB's interface regular expression as lbroute's shell pattern, when it is one."""
    if value == "default":
        return value
    text = value.removeprefix("^").removesuffix("$")
    if _REGEX_META.search(text.replace(".*", "").replace(".+", "")):
        return None
    text = text.replace(".*", "*").replace(".+", "?*")
    return text if re.fullmatch(r"[A-Za-z0-9_.\-*?]{1,15}", text) else None


def _agent(out: Output, obj: Mapping[str, Any], asn: int | None) -> None:
    s = Source(obj, out.report)
    local = s.get("local", {})
    a = Source(obj, out.report, "spec.local")
    spec: dict[str, Any] = {}
    if asn is not None:
        spec["localASN"] = asn
    interfaces: list[str] = []
    for key in ("localInterface", "localint"):
        value = a.get(key)
        if isinstance(value, str) and value:
            pattern = _pattern(value)
            if pattern is None:
                a.error(
                    key,
                    f"{q(value)}: a regular expression lbroute cannot write as a shell "
                    "pattern (such as eth* or enp0s?); converted as 'default'",
                )
            else:
                if pattern != value:
                    a.info(key, f"{q(value)} written as the shell pattern {q(pattern)}")
                if "." in pattern.replace("*", ""):
                    a.info(key, f"{q(value)}: '.' read as a dot, not as any character")
                interfaces.append(pattern)
    extra = a.get("interfaces", [])
    interfaces += [i for i in (extra if isinstance(extra, list) else []) if i not in interfaces]
    if interfaces and interfaces != ["default"]:
        spec["localInterface"] = interfaces
    for key in ("dummyInterface", "extlbint"):
        value = a.get(key)
        if isinstance(value, str) and value and value != DEFAULT_INTERFACE:
            spec["interface"] = value
    a.refuse("sendgarp", "lbroute always sends gratuitous ARP / unsolicited NA", unless=True)
    garp = a.get("garpConfig")
    if isinstance(garp, Mapping):
        g = Source(obj, out.report, "spec.local.garpConfig")
        why = "lbroute sends gratuitous ARP / unsolicited NA its own way, not configurable"
        g.refuse("enabled", why, unless=True)
        g.refuse("verifyBeforeSend", why, unless=True)
        g.refuse("count", why, unless=3)
        g.refuse("initialDelay", why, unless="100ms")
        g.refuse("interval", why, unless="500ms")
        g.leftover()
    a.refuse(
        "addressConfig",
        "lbroute sets the lifetime of local addresses from its membership "
        "Lease (NodeAgent localLease) and adds no prefix route",
    )
    a.leftover()
    s.leftover()
    if not isinstance(local, Mapping):
        s.error("local", f"{q(local)} is not an object")
    out.node_agent(object_name(meta_name(obj)), spec, source_of(obj))


# -- k8gobgp ---------------------------------------------------------------------------------


def _bgp_config(out: Output, obj: Mapping[str, Any], routed: bool) -> int | None:
    """Convert one BGPConfiguration's neighbors into Peers; returns its global ASN."""
    s = Source(obj, out.report)
    s.get("global")  # read field by field below
    g = Source(obj, out.report, "spec.global")
    asn = g.int_("asn", 1, _U32)
    router_id = g.get("routerID")
    if router_id not in (None, "", "${NODE_IP}", "${NODE_IPV4}"):
        g.error(
            "routerID",
            f"{q(router_id)}: lbroute takes each node's router ID from its "
            "NodeAgent (routerID) or the Node's address",
        )
    g.refuse("listenPort", "lbroute's routers listen on port 179", unless=179)
    g.get("families")  # each neighbor's afiSafis say what it carries
    g.get("routerIDPool")  # only for nodes without an IPv4 address
    g.get("nodeStatus")  # k8gobgp's own status objects
    graceful = g.get("gracefulRestart", {})
    g.leftover()
    netlink = s.get("netlinkImport", {})
    wanted = netlink.get("interfaceList") if isinstance(netlink, Mapping) else None
    if isinstance(wanted, list) and set(wanted) - {DEFAULT_INTERFACE}:
        s.error(
            "netlinkImport.interfaceList",
            f"{q(wanted)}: lbroute announces the addresses of "
            f"its Services only (those on {DEFAULT_INTERFACE})",
        )
    s.refuse("netlinkExport", "lbroute does not install received routes in the kernel")
    for key in ("policyDefinitions", "definedSets", "peerGroups", "dynamicNeighbors"):
        s.refuse(
            key, "no lbroute equivalent (per-ServiceGroup bgp attributes are lbroute's policy)"
        )
    neighbors = s.get("neighbors", [])
    s.leftover()
    for i, n in enumerate(neighbors if isinstance(neighbors, list) else []):
        _neighbor(out, obj, i, n, graceful)
    if not routed and neighbors:
        out.report.warning(obj, "spec.neighbors", "no remote ServiceGroup: the Peers carry nothing")
    return asn


def _neighbor(out: Output, obj: Mapping[str, Any], i: int, n: Any, graceful: Any) -> None:
    base = f"spec.neighbors[{i}]"
    if not isinstance(n, Mapping):
        out.report.error(obj, base, f"{q(n)} is not a neighbor")
        return
    top = Source(obj, out.report, base, n)
    c = Source(obj, out.report, f"{base}.config", n.get("config") or {})
    bgp: dict[str, Any] = {}
    address, interface = c.get("neighborAddress"), c.get("neighborInterface")
    if address:
        bgp["address"] = address
    if interface:
        bgp["interface"] = interface
    peer_asn = c.int_("peerAsn", 1, _U32)
    if peer_asn is not None:
        bgp["asn"] = peer_asn
    local = c.int_("localAsn", 1, _U32)
    if local is not None:
        bgp["localASN"] = local
    label = str(address or interface or i)
    name = object_name(f"{meta_name(obj)}-{label.replace(':', '-')}")
    password, ref = c.get("authPassword"), c.get("authPasswordSecretRef")
    if isinstance(password, str) and password:
        bgp["passwordSecretRef"] = out.secret(
            object_name(name, "-bgp-password"), password, source_of(obj)
        )
    elif isinstance(ref, Mapping) and ref.get("name"):
        found = out.copy_secret(
            meta_namespace(obj) or "default",
            str(ref["name"]),
            str(ref.get("key") or "password"),
            obj,
            f"{c.base}.authPasswordSecretRef",
        )
        if found is not None:
            bgp["passwordSecretRef"] = found
    c.get("description")
    c.refuse("adminDown", "an lbroute Peer is always up: the Peer is not written", unless=False)
    c.refuse("vrf", "lbroute peers in the default VRF only", unless="")
    c.refuse(
        "peerGroup", "peer groups are not converted: write the neighbor's own settings", unless=""
    )
    c.leftover()
    timers = top.get("timers", {})
    t = timers.get("config", {}) if isinstance(timers, Mapping) else {}
    for theirs, ours in (
        ("holdTime", "holdTime"),
        ("keepaliveInterval", "keepaliveTime"),
        ("connectRetry", "connectTime"),
    ):
        value = t.get(theirs) if isinstance(t, Mapping) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            bgp[ours] = value
    if isinstance(t, Mapping) and t.get("minimumAdvertisementInterval"):
        out.report.error(
            obj,
            f"{base}.timers.config.minimumAdvertisementInterval",
            f"{q(t['minimumAdvertisementInterval'])}: no lbroute equivalent",
        )
    multihop = top.get("ebgpMultihop", {})
    if isinstance(multihop, Mapping) and multihop.get("enabled"):
        bgp["ebgpMultihop"] = multihop.get("multihopTtl") or 255
    restart = top.get("gracefulRestart") or graceful
    if isinstance(restart, Mapping) and restart.get("enabled"):
        bgp["gracefulRestart"] = True
        for key in ("helperOnly", "restartTime"):
            if restart.get(key):
                out.report.error(
                    obj,
                    f"{base}.gracefulRestart.{key}",
                    f"{q(restart[key])}: lbroute's graceful restart has no such setting",
                )
    transport = top.get("transport", {})
    if isinstance(transport, Mapping):
        if transport.get("localAddress"):
            bgp["sourceAddress"] = transport["localAddress"]
        for key in ("passiveMode", "bindInterface"):
            if transport.get(key):
                out.report.error(
                    obj, f"{base}.transport.{key}", f"{q(transport[key])}: no lbroute equivalent"
                )
    families = []
    afis = top.get("afiSafis", [])
    for j, afi in enumerate(afis if isinstance(afis, list) else []):
        family = afi.get("family") if isinstance(afi, Mapping) else None
        if not isinstance(afi, Mapping) or not afi.get("enabled", True):
            continue
        if family in ("ipv4-unicast", "ipv6-unicast"):
            families.append(family.split("-")[0])
        else:
            out.report.error(
                obj,
                f"{base}.afiSafis[{j}].family",
                f"{q(family)}: lbroute announces ipv4-unicast and ipv6-unicast only",
            )
        for key in ("addPaths", "prefixLimit"):
            if afi.get(key):
                out.report.error(obj, f"{base}.afiSafis[{j}].{key}", "no lbroute equivalent")
    if families:
        bgp["families"] = sorted(set(families))
    top.refuse(
        "applyPolicy",
        "per-neighbor policies are not converted: lbroute sets route "
        "attributes per ServiceGroup (spec.bgp)",
    )
    top.refuse("routeReflector", "lbroute's nodes are never route reflectors")
    top.get("config")
    nodes = selector(top.get("nodeSelector"))
    top.leftover()
    if c.data.get("adminDown") is True:
        return
    spec: dict[str, Any] = {}
    if nodes is not None:
        spec["nodeSelector"] = nodes
    spec["bgp"] = bgp
    out.peer(name, spec, f"{source_of(obj)} {base}")
