"""What ``kubectl lbroute`` says about a cluster: pure, from the objects the API sent.

:class:`Cluster` is one snapshot (lbroute.kube.inspect reads it), parsed once: the
LoadBalancer Services, their ready endpoints by node, the Nodes, lbroute's kinds and
each node's NodeState. On it:

- :func:`node_rows`, :func:`service_rows`, :func:`pool_rows`: the tables of ``status``,
  ``services`` and ``pools``;
- :func:`why`: the chain from a Service to a route, link by link (type, class, group
  and its validity, address, nodes selected, ready endpoints, announced, sessions or the
  local holder), stopping at the first broken link with what to do about it.

Per node, everything comes from the NodeState the agent writes (router, last apply,
sessions, the prefixes announced per ServiceGroup, local addresses held, conditions) and
from ``lbroute.io/announcing`` on the Services (routed ETP Local, and local addresses).
A routed ETP Cluster Service is announced by the nodes whose NodeState ``status.groups``
lists, for its group, a prefix that covers its address (a host route or the pool's
aggregate) and that are not drained. A NodeState from an agent that does not list its
prefixes yet leaves this to inference (the group selects the node, its last apply did
not fail, it is not drained and it announces something), marked ``(inferred)``.

Sessions in a NodeState carry the router's name (``lbr_bgp_upstream``, or FRR's
neighbor address) and the Peers they are for (``peerNames``); from an agent that does
not name them, a BGP session is matched to its Peer by the router's name, the session
of another protocol by its protocol.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbroute.model import api
from lbroute.model.endpoints import ready_nodes
from lbroute.model.errors import InvalidObject, ObjectRef, escape
from lbroute.model.fields import IPAddress, list_at, mapping_at
from lbroute.model.nodes import EXCLUDE_LABEL
from lbroute.model.service import Service
from lbroute.model.vocabulary import (
    ANNOUNCING_ANNOTATION,
    API_VERSION,
    LOADBALANCER_CLASS,
    NODE_AGENT,
    PEER,
    SERVICE_GROUP,
    Announcer,
    parse_announcing,
)

JSON = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UP_STATES = frozenset({"established", "full", "2-way", "up"})
"""Session states (lowercased) that mean the session carries routes."""


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for c in list_at(mapping_at(obj, "status"), "conditions"):
        if isinstance(c, Mapping) and isinstance(c.get("type"), str):
            found[c["type"]] = c
    return found


def _condition_text(c: Mapping[str, Any] | None) -> str:
    """``True`` / ``False (Reason)`` / ``-``."""
    if not c:
        return "-"
    status = str(c.get("status", "Unknown"))
    reason = c.get("reason")
    return status if status == "True" or not reason else f"{status} ({escape(str(reason))})"


def _ident(name: str) -> str:
    """A Kubernetes name as the renderer names a router protocol after it (ident())."""
    return re.sub(r"[^a-z0-9]", "_", name.lower())


@dataclass(frozen=True, kw_only=True)
class NodeView:
    """One node: its Node object (labels) and its agent's NodeState."""

    name: str
    labels: Mapping[str, str]
    state: Mapping[str, Any] | None

    @property
    def status(self) -> Mapping[str, Any]:
        return mapping_at(self.state or {}, "status")

    @property
    def sessions(self) -> list[Mapping[str, Any]]:
        return [p for p in list_at(self.status, "peers") if isinstance(p, Mapping)]

    @property
    def excluded(self) -> bool:
        return EXCLUDE_LABEL in self.labels

    @property
    def drained(self) -> bool:
        return _conditions(self.state or {}).get("Drained", {}).get("status") == "True"

    @property
    def apply_failed(self) -> bool:
        return mapping_at(self.status, "lastApply").get("result") == "Failed"

    @property
    def announced(self) -> int:
        value = self.status.get("announcedAddresses")
        return value if isinstance(value, int) else 0

    @functools.cached_property
    def groups(self) -> dict[str, tuple[frozenset[Network], bool]] | None:
        """Per ServiceGroup (``namespace/name``), the prefixes the node announces and
        whether some were left out of the list; None: its agent does not list them."""
        raw = self.status.get("groups")
        if not isinstance(raw, list):
            return None
        out: dict[str, tuple[frozenset[Network], bool]] = {}
        for entry in raw:
            if not isinstance(entry, Mapping):
                continue
            networks = set()
            for text in list_at(entry, "prefixes"):
                try:
                    networks.add(ipaddress.ip_network(str(text), strict=False))
                except ValueError:
                    continue
            out[str(entry.get("group"))] = (frozenset(networks), bool(entry.get("omitted")))
        return out

    def covering(self, group: str, address: IPAddress) -> Network | None:
        """The longest prefix of ``group`` this node announces that covers ``address``
        (a lookup per prefix length listed, not a scan of the prefixes)."""
        networks, _cut = (self.groups or {}).get(group, (frozenset(), False))
        lengths = {n.prefixlen for n in networks if n.version == address.version}
        for length in sorted(lengths, reverse=True):
            candidate = ipaddress.ip_network(f"{address}/{length}", strict=False)
            if candidate in networks:
                return candidate
        return None

    def lists_all(self, group: str) -> bool:
        """Whether the NodeState lists every prefix of ``group`` the node announces
        (False: its agent lists none, or the list was cut short)."""
        groups = self.groups
        return groups is not None and not groups.get(group, (frozenset(), False))[1]


def session_up(session: Mapping[str, Any]) -> bool:
    return str(session.get("state", "")).lower() in UP_STATES


@dataclass(frozen=True, kw_only=True)
class Cluster:
    """One snapshot, parsed: build it with :meth:`of`."""

    namespace: str
    default_class: bool
    services: tuple[Mapping[str, Any], ...]
    ready: Mapping[ObjectRef, frozenset[str]]
    nodes: Mapping[str, NodeView]
    groups: Mapping[str, Mapping[str, Any]]
    """ServiceGroups of the install namespace by name, as the API sent them."""
    parsed: Mapping[str, api.ServiceGroup]
    """The valid ones, parsed."""
    invalid: Mapping[str, str]
    """Why each group that does not parse is invalid."""
    peers: tuple[api.Peer, ...]
    agents: tuple[api.NodeAgent, ...]
    events: tuple[Mapping[str, Any], ...] = ()
    notes: tuple[str, ...] = field(default=())
    """Objects that could not be read (invalid Peers, NodeAgents)."""

    @classmethod
    def of(
        cls,
        *,
        namespace: str,
        default_class: bool = False,
        services: Iterable[Mapping[str, Any]] = (),
        slices: Iterable[Mapping[str, Any]] = (),
        nodes: Iterable[Mapping[str, Any]] = (),
        groups: Iterable[Mapping[str, Any]] = (),
        peers: Iterable[Mapping[str, Any]] = (),
        agents: Iterable[Mapping[str, Any]] = (),
        states: Iterable[Mapping[str, Any]] = (),
        events: Iterable[Mapping[str, Any]] = (),
    ) -> Cluster:
        states_by_node: dict[str, Mapping[str, Any]] = {}
        for s in states:
            node = mapping_at(s, "spec").get("nodeName") or mapping_at(s, "metadata").get("name")
            states_by_node[str(node)] = s
        views: dict[str, NodeView] = {}
        for n in nodes:
            name = str(mapping_at(n, "metadata").get("name"))
            labels = {str(k): str(v) for k, v in mapping_at(n["metadata"], "labels").items()}
            views[name] = NodeView(name=name, labels=labels, state=states_by_node.get(name))
        for name, s in states_by_node.items():  # a NodeState without its Node
            views.setdefault(name, NodeView(name=name, labels={}, state=s))
        raw: dict[str, Mapping[str, Any]] = {}
        parsed: dict[str, api.ServiceGroup] = {}
        invalid: dict[str, str] = {}
        for g in groups:
            name = str(mapping_at(g, "metadata").get("name"))
            raw[name] = g
            try:
                sg = api.parse_object(_typed(g, SERVICE_GROUP))
            except InvalidObject as exc:
                invalid[name] = "; ".join(f"{p.path}: {p.message}" for p in exc.problems)
                continue
            if isinstance(sg, api.ServiceGroup):
                parsed[name] = sg
        notes: list[str] = []
        return cls(
            namespace=namespace,
            default_class=default_class,
            services=tuple(services),
            ready=ready_nodes(slices),
            nodes=dict(sorted(views.items())),
            groups=raw,
            parsed=parsed,
            invalid=invalid,
            peers=tuple(_parse_all(peers, PEER, api.Peer, notes)),
            agents=tuple(_parse_all(agents, NODE_AGENT, api.NodeAgent, notes)),
            events=tuple(events),
            notes=tuple(notes),
        )

    # -- lookups

    def service(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        for s in self.services:
            meta = mapping_at(s, "metadata")
            if meta.get("namespace") == namespace and meta.get("name") == name:
                return s
        return None

    def group_name(self, svc: Service) -> str | None:
        """The group a Service is in: its annotation, else the default group."""
        if svc.group:
            return svc.group
        for name, g in sorted(self.groups.items()):
            if mapping_at(g, "spec").get("default") is True:
                return name
        return None

    def group_invalid(self, name: str) -> str | None:
        """Why the group is invalid (its parse, or its Valid condition), or None."""
        if name in self.invalid:
            return self.invalid[name]
        valid = _conditions(self.groups[name]).get("Valid")
        if valid and valid.get("status") == "False":
            return str(valid.get("message") or valid.get("reason") or "Valid is False")
        return None

    def selected(self, group: api.ServiceGroup) -> list[NodeView]:
        """Nodes the group's nodeSelector takes (the exclusion label leaves a node out)."""
        return [
            n
            for n in self.nodes.values()
            if n.labels and group.node_selector.matches(n.labels) and not n.excluded
        ]

    def carriers(self, group: api.ServiceGroup, node: NodeView) -> list[api.Peer]:
        """Peers set up on the node that carry the group's routes."""
        return [p for p in self.peers if p.node_selector.matches(node.labels) and p.carries(group)]

    def protocols(self, group: api.ServiceGroup) -> list[str]:
        if group.announce is api.Announce.LOCAL:
            return ["local (ARP/NDP)"]
        if group.protocols is not None:
            return sorted(p.value for p in group.protocols)
        return sorted({p.protocol.value for p in self.peers if p.carries(group)})

    def announcers(self, obj: Mapping[str, Any], svc: Service) -> list[str]:
        """Who announces the Service, and how: ``node`` (routed ETP Local, from
        lbroute.io/announcing), ``node/interface/address`` (local); for a routed ETP
        Cluster Service ``node`` (a host route) or ``node (PREFIX)`` (an aggregate)
        from the NodeStates, ``node (inferred)`` (see the module docstring)."""
        name = self.group_name(svc)
        group = self.parsed.get(name or "")
        entries = parse_announcing(_annotations(obj).get(ANNOUNCING_ANNOTATION))
        if group is None:
            return [str(e) for e in entries]
        if group.announce is api.Announce.LOCAL or svc.local:
            return [str(e) for e in entries]
        return [a.text for a in self.cluster_announcers(group, svc)]

    def group_key(self, group: api.ServiceGroup) -> str:
        """The group as NodeStates name it: ``namespace/name``."""
        return f"{self.namespace}/{group.name}"

    def cluster_announcers(self, group: api.ServiceGroup, svc: Service) -> list[Announcing]:
        """The nodes that announce the ETP Cluster Service ``svc`` of ``group``."""
        out = []
        key = self.group_key(group)
        selected = {n.name for n in self.selected(group)}
        for n in self.nodes.values():
            if n.state is None or n.drained:
                continue
            prefixes = [p for p in (n.covering(key, a) for a in svc.addresses) if p is not None]
            if prefixes:
                hosts = all(p.prefixlen == p.max_prefixlen for p in prefixes)
                shown = "" if hosts else f" ({','.join(sorted({str(p) for p in prefixes}))})"
                out.append(Announcing(node=n, text=f"{n.name}{shown}", prefixes=prefixes))
            elif (
                not n.lists_all(key)
                and n.name in selected
                and not n.apply_failed
                and n.announced > 0
            ):
                out.append(Announcing(node=n, text=f"{n.name} (inferred)", prefixes=[]))
        return out

    def peer_sessions(self, peer: api.Peer, node: NodeView) -> list[Mapping[str, Any]]:
        """The node's sessions of the Peer (see the module docstring)."""
        if any("peerNames" in s for s in node.sessions):
            return [s for s in node.sessions if peer.name in list_at(s, "peerNames")]
        proto = peer.protocol.value
        out = []
        for s in node.sessions:
            if s.get("protocol") != proto:
                continue
            name = str(s.get("name", ""))
            if proto != "bgp" or _bgp_session_of(peer, name):
                out.append(s)
        return out


@dataclass(frozen=True, kw_only=True)
class Announcing:
    """A node that announces a routed ETP Cluster Service: the prefixes of its NodeState
    that cover the Service's addresses (none: inferred)."""

    node: NodeView
    text: str
    prefixes: list[Network]


def _bgp_session_of(peer: api.Peer, name: str) -> bool:
    bgp = peer.bgp
    ident = _ident(peer.name)
    for sep in ("_", "-"):
        prefix = sep.join(("lbr", "bgp", ident if sep == "_" else ident.replace("_", "-")))
        if name == prefix or name.startswith(prefix + sep):
            return True
    if bgp is None:
        return False
    return name in {str(bgp.address or ""), str(bgp.interface or "")} - {""}


def _typed(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """The object with its kind and apiVersion (list items may come without)."""
    return {**obj, "kind": kind, "apiVersion": obj.get("apiVersion") or API_VERSION}


def _parse_all(
    objs: Iterable[Mapping[str, Any]], kind: str, want: type[Any], notes: list[str]
) -> list[Any]:
    out = []
    for obj in objs:
        try:
            parsed = api.parse_object(_typed(obj, kind))
        except InvalidObject as exc:
            notes.append(f"{exc.ref} is invalid and left out: {exc.problems[0].message}")
            continue
        if isinstance(parsed, want):
            out.append(parsed)
    return out


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping_at(mapping_at(obj, "metadata"), "annotations")


def _svc_name(obj: Mapping[str, Any]) -> str:
    meta = mapping_at(obj, "metadata")
    return f"{escape(str(meta.get('namespace')))}/{escape(str(meta.get('name')))}"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, as kubectl prints them."""
    all_rows = [list(header), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(header))]
    return [
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in all_rows
    ]


# -- status ------------------------------------------------------------------------


def node_rows(cluster: Cluster) -> list[str]:
    """``status``: one line per node with an agent (a NodeState), then the sessions that
    are down."""
    rows = []
    down_lines = []
    for n in cluster.nodes.values():
        if n.state is None:
            continue
        st = n.status
        last = mapping_at(st, "lastApply")
        result = str(last.get("result") or "-")
        if last.get("reason"):
            result += f" ({last['reason']})"
        sessions = n.sessions
        up = sum(session_up(s) for s in sessions)
        down = [s for s in sessions if not session_up(s)]
        down_lines += [
            f"  {n.name}: {s.get('protocol')} {escape(str(s.get('name')))} is "
            f"{escape(str(s.get('state')))}" + (f" since {s['since']}" if s.get("since") else "")
            for s in down
        ]
        local = [str(e.get("address")) for e in list_at(st, "local") if isinstance(e, Mapping)]
        ready = _condition_text(_conditions(n.state).get("Ready"))
        if n.drained:
            ready += ", drained"
        rows.append(
            [
                n.name,
                str(st.get("router") or "-"),
                str(st.get("mode") or "-"),
                result,
                str(last.get("time") or "-"),
                f"{up}/{len(sessions)}",
                str(n.announced),
                ",".join(local) or "-",
                ready,
            ]
        )
    header = ["NODE", "ROUTER", "MODE", "LAST APPLY", "AT", "SESSIONS", "ANNOUNCED"]
    lines = table([*header, "LOCAL", "READY"], rows)
    missing = [n.name for n in cluster.nodes.values() if n.state is None]
    if down_lines:
        lines += ["", "sessions down:", *down_lines]
    if missing:
        lines += ["", "nodes without a NodeState (no agent reports there): " + ", ".join(missing)]
    return lines


# -- services ----------------------------------------------------------------------


def _ours(cluster: Cluster) -> list[tuple[Mapping[str, Any], Service]]:
    out = []
    for obj in cluster.services:
        svc = Service.read(obj, default_class=cluster.default_class)
        if svc.ours:
            out.append((obj, svc))
    return sorted(out, key=lambda p: (p[1].ref.namespace, p[1].ref.name))


def service_rows(cluster: Cluster) -> list[str]:
    """``services``: each LoadBalancer Service of lbroute's."""
    rows = []
    for obj, svc in _ours(cluster):
        name = cluster.group_name(svc)
        group = cluster.parsed.get(name or "")
        how = "-"
        if group is not None:
            if group.announce is api.Announce.LOCAL:
                how = "local"
            else:
                how = "routed, " + ("Local" if svc.local else "Cluster")
        rows.append(
            [
                _svc_name(obj),
                ",".join(str(a) for a in svc.addresses) or "<pending>",
                escape(name) if name else "<none>",
                how,
                ",".join(cluster.protocols(group)) if group else "-",
                ",".join(cluster.announcers(obj, svc)) or "<nobody>",
            ]
        )
    header = ["SERVICE", "ADDRESS", "GROUP", "ANNOUNCE", "PROTOCOLS", "ANNOUNCED BY"]
    return table(header, rows)


# -- pools -------------------------------------------------------------------------


def pool_rows(cluster: Cluster) -> list[str]:
    """``pools``: each ServiceGroup with its pools and usage per family."""
    rows = []
    for name, g in sorted(cluster.groups.items()):
        spec, st = mapping_at(g, "spec"), mapping_at(g, "status")
        used, free = mapping_at(st, "allocated"), mapping_at(st, "available")
        pools = [
            str(p.get("cidr") or p.get("range"))
            for p in list_at(spec, "pools")
            if isinstance(p, Mapping)
        ]
        conditions = _conditions(g)
        valid = _condition_text(conditions.get("Valid"))
        if name in cluster.invalid:
            valid = "False (does not parse)"

        rows.append(
            [
                escape(name),
                str(spec.get("announce") or "routed"),
                "yes" if spec.get("default") is True else "",
                ",".join(pools) or "-",
                _usage(used, free, "ipv4"),
                _usage(used, free, "ipv6"),
                valid,
                _condition_text(conditions.get("LocalHeld")),
            ]
        )
    header = ["GROUP", "ANNOUNCE", "DEFAULT", "POOLS", "IPV4 USED/FREE", "IPV6 USED/FREE"]
    return table([*header, "VALID", "LOCALHELD"], rows)


def _usage(used: Mapping[str, Any], free: Mapping[str, Any], family: str) -> str:
    if family not in used and family not in free:
        return "-"
    return f"{used.get(family, '?')}/{free.get(family, '?')}"


# -- why ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Link:
    """One link of the chain: what was checked, what was found, what to do if broken."""

    ok: bool
    what: str
    fix: str = ""


@dataclass(frozen=True, kw_only=True)
class Verdict:
    service: str
    links: tuple[Link, ...]
    warnings: tuple[str, ...] = ()

    @property
    def reachable(self) -> bool:
        return all(link.ok for link in self.links)

    def lines(self) -> list[str]:
        out = [f"Service {self.service}:"]
        for link in self.links:
            out.append(f"  {'ok' if link.ok else 'BROKEN':<6} {link.what}")
            if link.fix:
                out.append(f"         fix: {link.fix}")
        out += [f"  warning: {w}" for w in self.warnings]
        if self.reachable:
            out.append("reachable as far as lbroute can tell")
        else:
            out.append(f"not reachable: {self.links[-1].what}")
        return out


def why(cluster: Cluster, namespace: str, name: str) -> Verdict:
    """Walk the chain from the Service to its routes; stop at the first broken link."""
    label = f"{escape(namespace)}/{escape(name)}"
    links: list[Link] = []
    warnings: list[str] = []

    def done() -> Verdict:
        return Verdict(service=label, links=tuple(links), warnings=tuple(warnings))

    obj = cluster.service(namespace, name)
    if obj is None:
        links.append(
            Link(
                ok=False,
                what="no Service of type LoadBalancer by that name",
                fix="check the name and namespace (kubectl get svc -A); set spec.type: "
                "LoadBalancer",
            )
        )
        return done()
    spec = mapping_at(obj, "spec")
    svc = Service.read(obj, default_class=cluster.default_class)
    if not svc.ours:
        cls = spec.get("loadBalancerClass")
        links.append(
            Link(
                ok=False,
                what=f"spec.loadBalancerClass is {escape(str(cls)) if cls else 'unset'}, not "
                f"{LOADBALANCER_CLASS}: lbroute does not serve it",
                fix=f"set spec.loadBalancerClass: {LOADBALANCER_CLASS} when creating the "
                "Service (it cannot change later), or run lbroute with --default-class "
                "(and pass --default-class here)"
                if not cls
                else f"recreate the Service with spec.loadBalancerClass: {LOADBALANCER_CLASS}",
            )
        )
        return done()
    cls_text = spec.get("loadBalancerClass") or "none (lbroute is the default class)"
    links.append(Link(ok=True, what=f"type LoadBalancer, class {escape(str(cls_text))}"))
    for p in svc.problems:
        warnings.append(f"{p.path}: {p.message}")

    # the group
    group_name = cluster.group_name(svc)
    where = f"ServiceGroup {escape(cluster.namespace)}/"
    if group_name is None:
        links.append(
            Link(
                ok=False,
                what="the Service names no group and no ServiceGroup is default: true",
                fix=f"annotate it with lbroute.io/service-group (one of: "
                f"{', '.join(sorted(cluster.groups)) or 'no group exists'}) or mark one "
                "group default: true",
            )
        )
        return done()
    if group_name not in cluster.groups:
        links.append(
            Link(
                ok=False,
                what=f"{where}{escape(group_name)} ({svc.group_path}) does not exist",
                fix=f"name one of: {', '.join(sorted(cluster.groups)) or 'none exist'} in "
                f"{svc.group_path}, or create it in namespace {escape(cluster.namespace)}",
            )
        )
        return done()
    problem = cluster.group_invalid(group_name)
    if problem is not None or group_name not in cluster.parsed:
        links.append(
            Link(
                ok=False,
                what=f"{where}{escape(group_name)} is invalid: {escape(problem or 'unreadable')}",
                fix=f"fix the group (lbroute validate; kubectl describe servicegroup "
                f"{escape(group_name)} -n {escape(cluster.namespace)})",
            )
        )
        return done()
    group = cluster.parsed[group_name]
    links.append(
        Link(ok=True, what=f"{where}{escape(group_name)} is valid, announce {group.announce.value}")
    )

    # the address
    if not svc.addresses:
        links.append(
            Link(
                ok=False,
                what="no address assigned (status.loadBalancer.ingress is empty)"
                + _why_no_address(cluster, svc, group_name),
                fix="free addresses or add a pool to the group, or fix the request; the "
                "allocator's Events on the Service say what it tried (kubectl describe svc)",
            )
        )
        return done()
    addresses = ", ".join(str(a) for a in svc.addresses)
    links.append(Link(ok=True, what=f"address {addresses}"))

    # the nodes
    selected = cluster.selected(group)
    if not selected:
        links.append(
            Link(
                ok=False,
                what=f"no Node matches the nodeSelector of {where}{escape(group_name)} (or "
                "every match has the exclude-from-external-load-balancers label)",
                fix="label nodes to match spec.nodeSelector, or widen it",
            )
        )
        return done()
    with_agent = [n for n in selected if n.state is not None]
    if not with_agent:
        links.append(
            Link(
                ok=False,
                what="no lbroute agent reports on the nodes the group selects "
                f"({', '.join(n.name for n in selected)}): no NodeState there",
                fix="check the agent DaemonSet runs on them (kubectl get pods -n "
                f"{escape(cluster.namespace)} -o wide) and its NodeAgents' nodeSelector",
            )
        )
        return done()
    if cluster.agents and not all(
        any(a.node_selector.matches(n.labels) for a in cluster.agents) for n in with_agent
    ):
        lone = [
            n.name
            for n in with_agent
            if not any(a.node_selector.matches(n.labels) for a in cluster.agents)
        ]
        warnings.append(f"no NodeAgent selects {', '.join(lone)}; their agents use defaults")
    links.append(
        Link(
            ok=True,
            what=f"nodes selected: {', '.join(n.name for n in selected)}"
            + (
                f" (agents on {', '.join(n.name for n in with_agent)})"
                if len(with_agent) != len(selected)
                else ""
            ),
        )
    )

    # the endpoints
    ready = cluster.ready.get(svc.ref, frozenset())
    if not ready:
        links.append(
            Link(
                ok=False,
                what="no ready endpoint (no EndpointSlice of the Service lists a ready "
                "endpoint on a node)",
                fix="check the Service's selector matches running, ready Pods "
                f"(kubectl get endpointslices -n {escape(namespace)} "
                f"-l kubernetes.io/service-name={escape(name)})",
            )
        )
        return done()
    names = {n.name for n in with_agent}
    if svc.local:
        usable = sorted(ready & names)
        if not usable:
            links.append(
                Link(
                    ok=False,
                    what=f"externalTrafficPolicy Local: ready endpoints only on "
                    f"{', '.join(sorted(ready))}, where the group's agents do not announce",
                    fix="run the Pods on nodes the group selects, or widen its nodeSelector",
                )
            )
            return done()
        links.append(Link(ok=True, what=f"ready endpoints on {', '.join(usable)}"))
    else:
        links.append(Link(ok=True, what=f"ready endpoints on {', '.join(sorted(ready))}"))

    if group.announce is api.Announce.LOCAL:
        _local(cluster, obj, svc, group_name, links)
    else:
        _routed(cluster, obj, svc, group, with_agent, ready, links, warnings)
    return done()


def _not_announcing(
    cluster: Cluster, group: api.ServiceGroup, node: NodeView, addresses: str
) -> str:
    """Why ``node``, which runs an agent the group selects, does not announce."""
    if node.drained:
        return "drained"
    if node.groups is not None:
        return (
            f"its NodeState lists no prefix of ServiceGroup {escape(cluster.group_key(group))} "
            f"covering {addresses}"
        )
    return "last apply failed" if node.apply_failed else "announces nothing"


def _why_no_address(cluster: Cluster, svc: Service, group_name: str) -> str:
    """The allocator's word: its AllocationFailed Event, else the group's usage."""
    notes = []
    for e in cluster.events:
        regarding = mapping_at(e, "regarding")
        if (
            e.get("reason") == "AllocationFailed"
            and regarding.get("name") == svc.ref.name
            and regarding.get("namespace", svc.ref.namespace) == svc.ref.namespace
        ):
            notes.append((str(e.get("eventTime") or ""), str(e.get("note") or "")))
    if notes:
        return f": the allocator says {escape(max(notes)[1])}"
    g = cluster.groups[group_name]
    allocatable = _conditions(g).get("Allocatable")
    if allocatable and allocatable.get("status") == "False":
        return f": ServiceGroup {escape(group_name)}: {escape(str(allocatable.get('message')))}"
    free = mapping_at(mapping_at(g, "status"), "available")
    full = [f for f, v in sorted(free.items()) if str(v) == "0"]
    if full:
        return f": ServiceGroup {escape(group_name)} has no free {' or '.join(full)} address"
    return ": the allocator has not said why (is it running?)"


def _local(
    cluster: Cluster, obj: Mapping[str, Any], svc: Service, group_name: str, links: list[Link]
) -> None:
    held: dict[str, Announcer] = {}
    for e in parse_announcing(_annotations(obj).get(ANNOUNCING_ANNOTATION)):
        held[e.address] = e
    for n in cluster.nodes.values():
        for entry in list_at(n.status, "local"):
            if isinstance(entry, Mapping):
                address = str(entry.get("address", "")).split("/")[0]
                held.setdefault(
                    address,
                    Announcer(node=n.name, interface=str(entry.get("interface")), address=address),
                )
    missing = [str(a) for a in svc.addresses if str(a) not in held]
    if missing:
        condition = _conditions(cluster.groups[group_name]).get("LocalHeld")
        said = ""
        if condition and condition.get("status") == "False":
            said = f" (LocalHeld: {escape(str(condition.get('message')))})"
        links.append(
            Link(
                ok=False,
                what=f"no node holds {', '.join(missing)}{said}",
                fix="a node the group selects needs an interface on the address's subnet "
                "(NodeAgent localInterface) and a live agent; see kubectl get events -n "
                f"{escape(svc.ref.namespace)}",
            )
        )
        return
    where = ", ".join(escape(str(held[str(a)])) for a in svc.addresses)
    links.append(Link(ok=True, what=f"held on the NIC by {where} (answers ARP/NDP)"))


def _routed(
    cluster: Cluster,
    obj: Mapping[str, Any],
    svc: Service,
    group: api.ServiceGroup,
    with_agent: list[NodeView],
    ready: frozenset[str],
    links: list[Link],
    warnings: list[str],
) -> None:
    if svc.local:
        names = {e.node for e in parse_announcing(_annotations(obj).get(ANNOUNCING_ANNOTATION))}
        announcers = [n for n in with_agent if n.name in names]
        how = f"its {ANNOUNCING_ANNOTATION}"
        if not announcers:
            expect = sorted(ready & {n.name for n in with_agent})
            links.append(
                Link(
                    ok=False,
                    what=f"announced by no node ({how} is empty), though "
                    f"{', '.join(expect)} have ready endpoints",
                    fix="look at the NodeState and the agent's log on "
                    + ", ".join(expect)
                    + f" (kubectl get nodestates -n {escape(cluster.namespace)})",
                )
            )
            return
    else:
        found = cluster.cluster_announcers(group, svc)
        announcers = [a.node for a in found]
        listed = [a for a in found if a.prefixes]
        if listed and len(listed) == len(found):
            prefixes = sorted({str(p) for a in listed for p in a.prefixes})
            how = f"ETP Cluster: their NodeStates list {', '.join(prefixes)}"
        elif listed:
            how = "ETP Cluster: from their NodeStates, inferred where they list no prefixes"
        else:
            how = "ETP Cluster: inferred: NodeState applied, announcing, not drained"
        if not announcers:
            addresses = ", ".join(str(a) for a in svc.addresses)
            why = [f"{n.name}: {_not_announcing(cluster, group, n, addresses)}" for n in with_agent]
            links.append(
                Link(
                    ok=False,
                    what=f"announced by no node ({'; '.join(why)})",
                    fix="kubectl lbroute status, and the agent's log on those nodes",
                )
            )
            return
        for n in announcers:
            if n.apply_failed:
                warnings.append(
                    f"{n.name}: the last apply failed; its router runs its last good configuration"
                )
    links.append(
        Link(ok=True, what=f"announced by {', '.join(n.name for n in announcers)} ({how})")
    )
    carrying: list[str] = []
    for n in announcers:
        peers = cluster.carriers(group, n)
        if not peers:
            warnings.append(f"{n.name}: no Peer carries {group.name} there")
            continue
        for p in peers:
            sessions = cluster.peer_sessions(p, n)
            up = [s for s in sessions if session_up(s)]
            if up:
                carrying.append(f"{n.name} via {p.protocol.value} {escape(p.name)}")
            elif sessions:
                states = ", ".join(
                    f"{escape(str(s.get('name')))} {escape(str(s.get('state')))}" for s in sessions
                )
                warnings.append(f"{n.name}: session of Peer {escape(p.name)} is down ({states})")
            else:
                warnings.append(f"{n.name}: no session of Peer {escape(p.name)} in its NodeState")
    if not carrying:
        links.append(
            Link(
                ok=False,
                what="no session that carries the group is up on the announcing nodes ("
                + ", ".join(n.name for n in announcers)
                + ")",
                fix="check the neighbors (kubectl get peers -n "
                f"{escape(cluster.namespace)}; NodeState status.peers) and the routers' logs",
            )
        )
        return
    links.append(Link(ok=True, what=f"routes carried: {', '.join(carrying)}"))
