"""MetalLB's configuration (``metallb.io``) as lbroute objects.

The rules:

- each IPAddressPool becomes the ServiceGroup of the same name (a Service naming the
  pool then names the group); its addresses exactly as MetalLB hands them out
  (``avoidBuggyIPs`` leaves out each .0 and .255, every other address is handed out,
  network and broadcast included); ``autoAssign`` (the default) makes it the default
  group, and lbroute has one;
- the BGPAdvertisements that select a pool give its group ``announce: routed`` over BGP,
  its communities (Community aliases resolved), LOCAL_PREF, ``aggregationLength`` /
  ``aggregationLengthV6`` as the pools' ``aggregation`` (a /32 or /128 when unset, as
  MetalLB announces), their nodeSelectors as the group's, and their ``peers`` as the
  Peers' serviceGroupSelector. Several advertisements on one pool are merged where they
  differ only in peers or only in nodes; BGP attributes that differ per peer cannot be;
- L2Advertisements give ``announce: local`` (their ``interfaces`` become a NodeAgent's
  ``localInterface``);
- each BGPPeer (v1beta1 or v1beta2) becomes one Peer per entry of its nodeSelectors,
  with durations in seconds, its BFDProfile inlined, an inline password moved into a
  Secret and a passwordSecret copied into lbroute's namespace.

What lbroute cannot express is reported as an error on the source object and field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbroute.convert.output import GROUP_LABEL, Output
from lbroute.convert.report import q, source_of
from lbroute.convert.values import (
    Source,
    labels_of,
    lbroute_pool,
    matches,
    merge_selectors,
    meta_name,
    meta_namespace,
    networks,
    object_name,
    parse_block,
    selector,
    split_at,
    without_buggy,
)

GROUP = "metallb.io"
CONFIG_KINDS = (
    "IPAddressPool",
    "BGPPeer",
    "BGPAdvertisement",
    "L2Advertisement",
    "BFDProfile",
    "Community",
)
STATUS_KINDS = ("ServiceL2Status", "ServiceBGPStatus", "BGPSessionState")
_STANDARD = re.compile(r"([0-9]{1,5}):([0-9]{1,5})")
_LARGE = re.compile(r"large:([0-9]{1,10}):([0-9]{1,10}):([0-9]{1,10})")
_U32 = 4294967295
HOLD_DEFAULT = 90
"""MetalLB's hold time when a BGPPeer sets none (the keepalive is a third of it)."""


def is_metallb(obj: Mapping[str, Any]) -> bool:
    api = obj.get("apiVersion")
    return isinstance(api, str) and api.split("/")[0] == GROUP


@dataclass(frozen=True)
class _Ad:
    obj: Mapping[str, Any]
    pools: tuple[str, ...]
    pool_selectors: tuple[Any, ...]
    nodes: tuple[dict[str, Any] | None, ...]
    """Its nodeSelectors; (None,) for every node."""
    peers: frozenset[str] | None = None
    """BGP: the BGPPeers it goes to; None for all."""
    attributes: tuple[Any, ...] = ()
    """BGP: (aggregation v4, v6, localPref, communities, large communities)."""
    interfaces: tuple[str, ...] = ()
    """L2: the interfaces it answers on; () for all."""

    @property
    def name(self) -> str:
        return meta_name(self.obj)

    def selects(self, pool: Mapping[str, Any]) -> bool:
        if not self.pools and not self.pool_selectors:
            return True
        return meta_name(pool) in self.pools or any(
            matches(s, labels_of(pool)) for s in self.pool_selectors
        )


@dataclass
class _Group:
    name: str
    peers: frozenset[str] | None = None
    """The BGPPeers that carry it (None: all); routed BGP groups only."""
    bgp: bool = False


@dataclass
class _State:
    out: Output
    communities: dict[str, str] = field(default_factory=dict)
    bfd: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    groups: list[_Group] = field(default_factory=list)


def convert(objects: Sequence[Mapping[str, Any]], out: Output) -> None:
    """Convert MetalLB's objects among ``objects`` into ``out``."""
    st = _State(out)
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for obj in objects:
        kind = obj.get("kind")
        if kind in STATUS_KINDS:
            out.report.info(obj, "", "status, not configuration: nothing to convert")
        elif kind in CONFIG_KINDS:
            by_kind.setdefault(str(kind), []).append(obj)
        elif kind == "AddressPool":
            out.report.error(
                obj,
                "",
                "the AddressPool kind (removed from MetalLB) is not converted; "
                "convert it to IPAddressPool and an advertisement first",
            )
        else:
            out.report.error(obj, "", "not a MetalLB kind lbroute convert knows: not converted")
    for kind in by_kind:
        by_kind[kind].sort(key=lambda o: (meta_namespace(o), meta_name(o)))
    _communities(st, by_kind.get("Community", []))
    st.bfd = {meta_name(p): p for p in by_kind.get("BFDProfile", [])}
    bgp_ads = [_bgp_ad(st, a) for a in by_kind.get("BGPAdvertisement", [])]
    l2_ads = [_l2_ad(st, a) for a in by_kind.get("L2Advertisement", [])]
    pools = by_kind.get("IPAddressPool", [])
    pool_names = {meta_name(p) for p in pools}
    for ad in (*bgp_ads, *l2_ads):
        for name in ad.pools:
            if name not in pool_names:
                out.report.error(
                    ad.obj,
                    "spec.ipAddressPools",
                    f"IPAddressPool {q(name)} is not among the files converted",
                )
    defaults = [p for p in pools if Source(p, out.report).data.get("autoAssign") is not False]
    for pool in pools:
        _pool(
            st,
            pool,
            [a for a in bgp_ads if a.selects(pool)],
            [a for a in l2_ads if a.selects(pool)],
            default=bool(defaults) and pool is defaults[0],
        )
    for extra in defaults[1:]:
        out.report.error(
            extra,
            "spec.autoAssign",
            f"true (the default): MetalLB also hands out this pool's addresses to Services that "
            f"name no pool; lbroute has one default ServiceGroup ({meta_name(defaults[0])}), from "
            "which alone such Services get addresses",
        )
    _l2_agent(st, l2_ads)
    peers = by_kind.get("BGPPeer", [])
    names = {meta_name(p) for p in peers}
    for ad in bgp_ads:
        for name in sorted((ad.peers or frozenset()) - names):
            out.report.error(
                ad.obj, "spec.peers", f"BGPPeer {q(name)} is not among the files converted"
            )
    for peer in peers:
        _peer(st, peer)
    if any(g.bgp for g in st.groups) and not peers:
        out.report.warning(
            "MetalLB",
            "",
            "no BGPPeer among the files converted: the routed groups "
            "are announced to no one until Peers exist",
        )


# -- communities, advertisements -------------------------------------------------------------


def _communities(st: _State, objs: list[Mapping[str, Any]]) -> None:
    for obj in objs:
        s = Source(obj, st.out.report)
        items = s.get("communities", [])
        for i, item in enumerate(items if isinstance(items, list) else []):
            name, value = (
                (item.get("name"), item.get("value")) if isinstance(item, Mapping) else (None, None)
            )
            if not isinstance(name, str) or not isinstance(value, str):
                s.error(f"communities[{i}]", f"{q(item)} is not valid; expected {{name, value}}")
            elif name in st.communities and st.communities[name] != value:
                s.error(
                    f"communities[{i}]", f"alias {q(name)} is defined twice with different values"
                )
            else:
                st.communities[name] = value
        s.leftover()


def _community(value: str) -> tuple[str, str] | None:
    """('standard' | 'large', lbroute's text) of a MetalLB community value."""
    if (m := _STANDARD.fullmatch(value)) and all(int(x) <= 65535 for x in m.groups()):
        return "standard", value
    if (m := _LARGE.fullmatch(value)) and all(int(x) <= _U32 for x in m.groups()):
        return "large", ":".join(m.groups())
    return None


def _bgp_ad(st: _State, obj: Mapping[str, Any]) -> _Ad:
    s = Source(obj, st.out.report)
    v4 = s.int_("aggregationLength", 0, 32)
    v6 = s.int_("aggregationLengthV6", 0, 128)
    pref = s.int_("localPref", 0, _U32)
    standard: list[str] = []
    large: list[str] = []
    items = s.get("communities", [])
    for i, item in enumerate(items if isinstance(items, list) else []):
        text = st.communities.get(item, item) if isinstance(item, str) else None
        found = _community(text) if text is not None else None
        if found is None:
            s.error(
                f"communities[{i}]",
                f"{q(item)} is neither a community (65000:100, large:65000:1:2) nor an alias "
                "defined by a Community object among the files converted",
            )
            continue
        (standard if found[0] == "standard" else large).append(found[1])
    peers = s.get("peers")
    ad = _Ad(
        obj=obj,
        pools=tuple(s.get("ipAddressPools", [])),
        pool_selectors=tuple(s.get("ipAddressPoolSelectors", [])),
        nodes=_node_selectors(s),
        peers=frozenset(peers) if peers else None,
        attributes=(
            32 if v4 is None else v4,
            128 if v6 is None else v6,
            pref,
            tuple(sorted(set(standard))),
            tuple(sorted(set(large))),
        ),
    )
    s.leftover()
    return ad


def _l2_ad(st: _State, obj: Mapping[str, Any]) -> _Ad:
    s = Source(obj, st.out.report)
    interfaces = s.get("interfaces", [])
    ad = _Ad(
        obj=obj,
        pools=tuple(s.get("ipAddressPools", [])),
        pool_selectors=tuple(s.get("ipAddressPoolSelectors", [])),
        nodes=_node_selectors(s),
        interfaces=tuple(interfaces) if isinstance(interfaces, list) else (),
    )
    s.leftover()
    return ad


def _node_selectors(s: Source) -> tuple[dict[str, Any] | None, ...]:
    items = s.get("nodeSelectors", [])
    found = tuple(selector(i) for i in items) if isinstance(items, list) else ()
    return found or (None,)


# -- pools -----------------------------------------------------------------------------------


def _pool(
    st: _State, obj: Mapping[str, Any], bgp: list[_Ad], l2: list[_Ad], *, default: bool
) -> None:
    report = st.out.report
    s = Source(obj, report)
    avoid = s.get("avoidBuggyIPs") is True
    s.get("autoAssign")
    s.refuse(
        "serviceAllocation",
        "lbroute has no per-namespace or per-Service pool restrictions or priorities: any "
        "Service may name any ServiceGroup",
    )
    spec: dict[str, Any] = {}
    name = meta_name(obj)
    group = _Group(object_name(name))
    if name != group.name:
        s.error(
            "", f"the name {q(name)} is not a valid lbroute object name; converted as {group.name}"
        )
    attributes: tuple[Any, ...] = (32, 128, None, (), ())
    if bgp and l2:
        report.error(
            obj,
            "",
            f"is advertised both by BGP ({bgp[0].name}) and by L2 ({l2[0].name}); an lbroute "
            "ServiceGroup is announced one way, routed or local: converted as routed (BGP), the "
            "L2 announcement is not converted",
        )
    if bgp:
        spec["announce"] = "routed"
        spec["protocols"] = ["bgp"]
        group.bgp = True
        attributes = _bgp_attributes(st, obj, bgp)
        group.peers, nodes = _bgp_reach(st, obj, bgp)
        pref, standard, large = attributes[2:]
        policy: dict[str, Any] = {}
        if standard:
            policy["communities"] = list(standard)
        if large:
            policy["largeCommunities"] = list(large)
        if pref is not None:
            policy["localPref"] = pref
        if policy:
            spec["bgp"] = policy
    elif l2:
        spec["announce"] = "local"
        nodes = _merged_nodes(st, obj, [n for a in l2 for n in a.nodes], "L2Advertisements")
    else:
        spec["announce"] = "routed"
        spec["protocols"] = []
        nodes = None
        report.warning(
            obj,
            "",
            "no advertisement selects this pool: MetalLB assigns its addresses without announcing "
            "them; converted as a routed group that no protocol carries (its addresses still go "
            "on kube-lb0)",
        )
    if default:
        spec["default"] = True
    if nodes is not None:
        spec["nodeSelector"] = nodes
    pools = _addresses(s, avoid, attributes[:2] if bgp else None)
    spec = {"pools": pools, **spec}
    s.leftover()
    if pools:
        st.out.group(group.name, spec, source_of(obj))
        st.groups.append(group)
    else:
        report.error(obj, "spec.addresses", "no address to convert: no ServiceGroup written")


def _addresses(s: Source, avoid: bool, aggregation: tuple[int, int] | None) -> list[dict[str, Any]]:
    """lbroute pools for the IPAddressPool's addresses, each exactly what MetalLB hands out.
    ``aggregation``: (IPv4, IPv6) prefix lengths of a BGP group; None for L2."""
    pools: list[dict[str, Any]] = []
    items = s.get("addresses", [])
    for i, item in enumerate(items if isinstance(items, list) else []):
        block = parse_block(item)
        if block is None:
            s.error(
                f"addresses[{i}]", f"{q(item)} is not a CIDR or a range (192.0.2.10-192.0.2.20)"
            )
            continue
        runs = without_buggy(block) if avoid else [block]
        if aggregation is None:
            pools += [lbroute_pool(r) for r in runs]
            continue
        length = aggregation[0] if block.version == 4 else aggregation[1]
        host = 32 if block.version == 4 else 128
        if length >= host:
            pools += [lbroute_pool(r, aggregation=host) for r in runs]
            continue
        nets = networks(block)
        narrow = [n for n in nets if n.prefixlen > length]
        if narrow:
            s.error(
                f"addresses[{i}]",
                f"{q(item)} holds {narrow[0]}, longer than the aggregation length /{length} "
                "(MetalLB refuses this too); converted with host routes",
            )
            pools += [lbroute_pool(r, aggregation=host) for r in runs]
            continue
        for run in runs:
            for part, net in split_at(run, nets):
                pools.append(lbroute_pool(part, subnet=net, aggregation=length))
    return pools


def _bgp_attributes(st: _State, obj: Mapping[str, Any], ads: list[_Ad]) -> tuple[Any, ...]:
    first = ads[0]
    for ad in ads[1:]:
        if ad.attributes != first.attributes:
            names = (
                "aggregationLength",
                "aggregationLengthV6",
                "localPref",
                "communities",
                "communities (large)",
            )
            differ = [
                n for n, a, b in zip(names, first.attributes, ad.attributes, strict=True) if a != b
            ]
            st.out.report.error(
                obj,
                "",
                f"BGPAdvertisements {first.name} and {ad.name} announce this pool with different "
                f"{', '.join(dict.fromkeys(differ))}; lbroute gives a ServiceGroup one set of BGP "
                f"attributes for all its peers: converted with those of {first.name} (split the "
                "pool into one IPAddressPool per advertisement to keep both)",
            )
    return first.attributes


def _bgp_reach(
    st: _State, obj: Mapping[str, Any], ads: list[_Ad]
) -> tuple[frozenset[str] | None, dict[str, Any] | None]:
    """The BGPPeers that carry the pool and the nodes that announce it."""
    peer_sets = {ad.peers for ad in ads}
    node_sets = [ad.nodes for ad in ads]
    if len(peer_sets) > 1 and any(n != node_sets[0] for n in node_sets):
        st.out.report.error(
            obj,
            "",
            f"BGPAdvertisements {', '.join(a.name for a in ads)} announce this pool to different "
            "peers from different nodes; lbroute announces a group from the same nodes to every "
            "Peer that carries it: converted with all their peers from all their nodes",
        )
    peers = None if None in peer_sets else frozenset().union(*(p or () for p in peer_sets))
    nodes = _merged_nodes(st, obj, [n for a in ads for n in a.nodes], "BGPAdvertisements")
    return peers, nodes


def _merged_nodes(
    st: _State, obj: Mapping[str, Any], selectors: list[dict[str, Any] | None], what: str
) -> dict[str, Any] | None:
    merged, ok = merge_selectors(selectors)
    if not ok:
        st.out.report.error(
            obj,
            "",
            f"the nodeSelectors of its {what} ({len(selectors)}) cannot be written as one label "
            "selector (lbroute's ServiceGroup nodeSelector): converted with the first; label "
            "the nodes so that one selector says it",
        )
        return selectors[0]
    return merged


def _l2_agent(st: _State, ads: list[_Ad]) -> None:
    lists = {ad.interfaces for ad in ads if ad.interfaces}
    if not lists:
        return
    first = sorted(lists)[0]
    if len(lists) > 1:
        st.out.report.error(
            "L2Advertisements",
            "spec.interfaces",
            f"differ ({', '.join('[' + ', '.join(i) + ']' for i in sorted(lists))}); lbroute's "
            f"NodeAgent lists one set of local interfaces for all local groups: converted with "
            f"[{', '.join(first)}]",
        )
    st.out.node_agent("metallb-l2", {"localInterface": list(first)}, "L2Advertisement interfaces")
    st.out.report.warning(
        "NodeAgent metallb-l2",
        "",
        "selects every node: merge its localInterface into your NodeAgent if you have one",
    )


# -- peers -----------------------------------------------------------------------------------


def _peer(st: _State, obj: Mapping[str, Any]) -> None:
    report = st.out.report
    s = Source(obj, report)
    name = meta_name(obj)
    bgp: dict[str, Any] = {}
    address, interface = s.get("peerAddress"), s.get("interface")
    if address:
        bgp["address"] = address
    if interface:
        bgp["interface"] = interface
    asn = s.int_("peerASN", 0, _U32)
    local = s.int_("myASN", 1, _U32)
    dynamic = s.get("dynamicASN")
    if asn:
        bgp["asn"] = asn
    elif dynamic == "internal" and local:
        bgp["asn"] = local
        s.info("dynamicASN", "internal: the neighbor's ASN is the local one (iBGP)")
    elif dynamic == "external" and interface:
        s.info("dynamicASN", "external: an unnumbered Peer with no asn accepts any external ASN")
    else:
        s.error(
            "peerASN",
            "lbroute needs the neighbor's ASN for a neighbor by address: set peerASN; the Peer "
            "is not written",
        )
    if local:
        bgp["localASN"] = local
    port = s.int_("peerPort", 1, 65535)
    if port is not None and port != 179:
        bgp["port"] = port
    if s.has("sourceAddress"):
        bgp["sourceAddress"] = s.get("sourceAddress")
    hold = s.seconds("holdTime", 0, 65535)
    keepalive = s.seconds("keepaliveTime", 0, 65535)
    if hold is None and not s.has("holdTime"):
        hold = HOLD_DEFAULT
        s.info("holdTime", f"unset: MetalLB's default, {HOLD_DEFAULT} seconds, written out")
    if keepalive is None and not s.has("keepaliveTime") and hold:
        keepalive = hold // 3
    if hold is not None:
        bgp["holdTime"] = hold
    if keepalive is not None:
        bgp["keepaliveTime"] = keepalive
    connect = s.seconds("connectTime", 1, 65535)
    if connect is not None:
        bgp["connectTime"] = connect
    if s.get("ebgpMultiHop") is True:
        bgp["ebgpMultihop"] = 255
    if s.get("enableGracefulRestart") is True:
        bgp["gracefulRestart"] = True
    _password(st, s, name, bgp)
    profile = s.get("bfdProfile")
    if profile:
        bfd = _bfd(st, obj, str(profile))
        if bfd is not None and "ebgpMultihop" in bgp and "sourceAddress" not in bgp:
            s.error(
                "bfdProfile",
                f"{q(profile)}: lbroute needs spec.sourceAddress for BFD over a multihop "
                "session (a fixed local address); the Peer is written without BFD",
            )
        elif bfd is not None:
            bgp["bfd"] = bfd
    bgp["families"] = _families(s, address)
    s.refuse(
        "routerID",
        "lbroute takes each node's router ID from its NodeAgent (routerID) or "
        "the Node's address; one ID for every session of every node is not converted",
    )
    s.refuse("vrf", "lbroute peers in the default VRF only")
    selectors = _node_selectors(s)
    s.leftover()
    if "asn" not in bgp and not interface:
        return
    carried = _carried(st, name)
    for i, nodes in enumerate(selectors):
        spec: dict[str, Any] = {}
        if nodes is not None:
            spec["nodeSelector"] = nodes
        if carried is not None:
            spec["serviceGroupSelector"] = carried
        spec["bgp"] = dict(bgp)
        suffix = f"-{i + 1}" if len(selectors) > 1 else ""
        st.out.peer(object_name(name, suffix), spec, source_of(obj))


def _families(s: Source, address: Any) -> list[str]:
    v6 = isinstance(address, str) and ":" in address
    own = ["ipv6" if v6 else "ipv4"]
    dual = s.get("dualStackAddressFamily")
    disable = s.get("disableMP")
    if dual is True:
        return ["ipv4", "ipv6"]
    if disable is None and dual is None and address:
        s.info(
            "disableMP",
            f"unset: the session carries {own[0]} only (MetalLB 0.15 and later); MetalLB "
            "before 0.15 also sent the other family over it: add it to families if yours did",
        )
    return own if address else ["ipv4", "ipv6"]


def _password(st: _State, s: Source, name: str, bgp: dict[str, Any]) -> None:
    password = s.get("password")
    secret = s.get("passwordSecret")
    if password and secret:
        s.error("passwordSecret", "password is set too; converted with password")
    if isinstance(password, str) and password:
        bgp["passwordSecretRef"] = st.out.secret(
            object_name(name, "-bgp-password"), password, source_of(s.obj)
        )
    elif isinstance(secret, Mapping) and secret.get("name"):
        ns = secret.get("namespace") or meta_namespace(s.obj) or "default"
        ref = st.out.copy_secret(
            str(ns), str(secret["name"]), "password", s.obj, "spec.passwordSecret"
        )
        if ref is not None:
            bgp["passwordSecretRef"] = ref


def _bfd(st: _State, peer: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    profile = st.bfd.get(name)
    if profile is None:
        st.out.report.error(
            peer, "spec.bfdProfile", f"BFDProfile {q(name)} is not among the files converted"
        )
        return None
    s = Source(profile, st.out.report)
    bfd: dict[str, Any] = {}
    for theirs, ours in (("receiveInterval", "minRx"), ("transmitInterval", "minTx")):
        value = s.int_(theirs, 10, 60000)
        if value is not None:
            bfd[ours] = value
    multiplier = s.int_("detectMultiplier", 2, 255)
    if multiplier is not None:
        bfd["multiplier"] = multiplier
    why = "lbroute's BFD has receive and transmit intervals and a multiplier only"
    s.refuse("echoMode", why, unless=False)
    if s.get("echoMode") is not True:
        s.get("echoInterval")  # only used in echo mode
    s.refuse("passiveMode", why, unless=False)
    s.refuse("minimumTtl", why, unless=254)
    s.leftover()
    line = f"{source_of(profile)} -> inlined in the Peers that use it"
    if line not in st.out.report.converted:
        st.out.report.converted.append(line)
    return bfd


def _carried(st: _State, peer: str) -> dict[str, Any] | None:
    """The serviceGroupSelector of a Peer made from BGPPeer ``peer``: None when it carries
    every converted BGP group."""
    bgp = [g for g in st.groups if g.bgp]
    mine = [g.name for g in bgp if g.peers is None or peer in g.peers]
    if len(mine) == len(bgp):
        return None
    if not mine:
        st.out.report.warning(
            f"BGPPeer {peer}", "", "no advertisement names it: the Peer carries no ServiceGroup"
        )
        return {"matchExpressions": [{"key": GROUP_LABEL, "operator": "DoesNotExist"}]}
    return {"matchExpressions": [{"key": GROUP_LABEL, "operator": "In", "values": sorted(mine)}]}
