"""A batch of lbroute objects as one :class:`Model`: parsing by kind and the cross-object checks.

:func:`parse_object` hands each object to the parser of its kind (ServiceGroup, Peer,
NodeAgent, Node, Secret) and ignores other kinds. :func:`load` parses a batch, skips the
invalid objects so that the valid ones still render, then makes the checks that need
more than one object: duplicates (the first by namespace/name is used), Peers' Secrets,
pools that overlap across ServiceGroups (a binary search per pool, so 1,000 groups stay
cheap), Peers that carry no group, and more than one default group.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from lbroute.model.agentconfig import NodeAgent, parse_node_agent
from lbroute.model.common import Family
from lbroute.model.errors import InvalidObject, ObjectRef, Problem, Severity
from lbroute.model.fields import Reader
from lbroute.model.nodes import Node, parse_node
from lbroute.model.peer import Peer, parse_peer
from lbroute.model.secrets import Secret, parse_secret, secret_value
from lbroute.model.servicegroup import Pool, ServiceGroup, parse_service_group
from lbroute.model.vocabulary import API_VERSION, GROUP, NODE_AGENT, PEER, SERVICE_GROUP

Parsed = ServiceGroup | Peer | NodeAgent | Node | Secret

KINDS: dict[tuple[str, str], Callable[[Mapping[str, Any]], Parsed]] = {
    (API_VERSION, SERVICE_GROUP): parse_service_group,
    (API_VERSION, PEER): parse_peer,
    (API_VERSION, NODE_AGENT): parse_node_agent,
    ("v1", "Node"): parse_node,
    ("v1", "Secret"): parse_secret,
}
"""(apiVersion, kind) -> the parser of that kind."""


def parse_object(obj: Mapping[str, Any]) -> Parsed | None:
    """Convert one API object; None for kinds lbroute ignores. Raises InvalidObject."""
    if not isinstance(obj, Mapping):
        return None
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    parser = KINDS.get((str(api_version), str(kind)))
    if parser is None:
        if str(api_version).startswith(GROUP + "/") and kind in (SERVICE_GROUP, PEER, NODE_AGENT):
            raw_meta = obj.get("metadata")
            meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
            ref = ObjectRef(
                kind=str(kind),
                namespace=str(meta.get("namespace") or "default"),
                name=str(meta.get("name", "<no name>")),
            )
            raise InvalidObject(
                ref,
                (
                    Problem(
                        severity=Severity.ERROR,
                        ref=ref,
                        path="apiVersion",
                        message=f"{api_version!r} is not served; use {API_VERSION}",
                    ),
                ),
            )
        return None
    return parser(obj)


@dataclass(frozen=True, kw_only=True)
class Model:
    """Every valid object, sorted by namespace and name, and the problems found loading."""

    service_groups: tuple[ServiceGroup, ...] = ()
    peers: tuple[Peer, ...] = ()
    node_agents: tuple[NodeAgent, ...] = ()
    nodes: tuple[Node, ...] = ()
    problems: tuple[Problem, ...] = ()

    def node(self, name: str) -> Node | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)


def load(objects: Iterable[Mapping[str, Any]]) -> Model:
    """Parse a batch of objects and run the cross-object checks; never raises for input."""
    problems: list[Problem] = []
    groups: list[ServiceGroup] = []
    peers: list[Peer] = []
    agents: list[NodeAgent] = []
    nodes: dict[str, Node] = {}
    secrets: dict[tuple[str, str], Secret] = {}
    for obj in objects:
        try:
            parsed = parse_object(obj)
        except InvalidObject as exc:
            problems.extend(exc.problems)
            continue
        if isinstance(parsed, ServiceGroup):
            groups.append(parsed)
        elif isinstance(parsed, Peer):
            peers.append(parsed)
        elif isinstance(parsed, NodeAgent):
            agents.append(parsed)
        elif isinstance(parsed, Node):
            nodes[parsed.name] = parsed
        elif isinstance(parsed, Secret):
            secrets[(parsed.ref.namespace, parsed.ref.name)] = parsed
    groups = _dedupe(groups, problems)
    peers = _dedupe(peers, problems)
    agents = _dedupe(agents, problems)
    peers = [p for p in (_resolve_secrets(p, secrets, problems) for p in peers) if p is not None]
    groups = _check_pool_overlaps(groups, problems)
    _check_peers_select_groups(peers, groups, problems)
    _check_defaults(groups, problems)
    return Model(
        service_groups=tuple(groups),
        peers=tuple(peers),
        node_agents=tuple(agents),
        nodes=tuple(sorted(nodes.values(), key=lambda n: n.name)),
        problems=tuple(problems),
    )


_Obj = TypeVar("_Obj", ServiceGroup, Peer, NodeAgent)


def _dedupe(items: list[_Obj], problems: list[Problem]) -> list[_Obj]:
    by_ref: dict[ObjectRef, _Obj] = {}
    for item in items:
        if item.ref in by_ref:
            problems.append(
                Problem(
                    severity=Severity.ERROR,
                    ref=item.ref,
                    path="metadata.name",
                    message="appears more than once; the first one is used",
                )
            )
            continue
        by_ref[item.ref] = item
    return [by_ref[k] for k in sorted(by_ref)]


def _resolve_secrets(
    peer: Peer, secrets: Mapping[tuple[str, str], Secret], problems: list[Problem]
) -> Peer | None:
    r = Reader({}, peer.ref, "spec", [])
    ns = peer.ref.namespace
    if peer.bgp is not None and peer.bgp.password_ref is not None:
        ref = peer.bgp.password_ref
        value = secret_value(ref, secrets.get((ns, ref.name)), r, "bgp.passwordSecretRef")
        peer = replace(peer, bgp=replace(peer.bgp, password=value))
    if peer.ospf is not None and peer.ospf.auth_ref is not None:
        ref = peer.ospf.auth_ref
        value = secret_value(ref, secrets.get((ns, ref.name)), r, "ospf.authSecretRef")
        if value is not None and len(value) > 16:
            r.error("ospf.authSecretRef", "an OSPF MD5 key is at most 16 characters")
        peer = replace(peer, ospf=replace(peer.ospf, auth_key=value))
    if peer.rip is not None and peer.rip.auth_ref is not None:
        ref = peer.rip.auth_ref
        value = secret_value(ref, secrets.get((ns, ref.name)), r, "rip.authSecretRef")
        if value is not None and len(value) > 16:
            r.error("rip.authSecretRef", "a RIP MD5 key is at most 16 characters")
        peer = replace(peer, rip=replace(peer.rip, auth_key=value))
    problems.extend(r.problems)
    return None if r.failed else peer


def _check_pool_overlaps(groups: list[ServiceGroup], problems: list[Problem]) -> list[ServiceGroup]:
    """A pool may belong to one ServiceGroup; the later group (by namespace/name) is skipped.

    Kept pools are held sorted per family, so each check is a binary search.
    """
    kept: list[ServiceGroup] = []
    spans: dict[Family, list[tuple[int, int, Pool, ServiceGroup]]] = {f: [] for f in Family}
    for group in groups:
        clash = None
        for a in group.pools:
            taken = spans[a.family]
            i = bisect.bisect_left(taken, (int(a.first),))
            for first, last, b, other in taken[max(0, i - 1) : i + 1]:
                if first <= int(a.last) and int(a.first) <= last:
                    clash = (other, a, b)
                    break
            if clash:
                break
        if clash is not None:
            other, a, b = clash
            problems.append(
                Problem(
                    severity=Severity.ERROR,
                    ref=group.ref,
                    path=f"spec.pools[{group.pools.index(a)}]",
                    message=f"pool {a} overlaps pool {b} of {other.ref}; pools of different "
                    "ServiceGroups must not overlap (this ServiceGroup is skipped)",
                )
            )
            continue
        kept.append(group)
        for a in group.pools:
            bisect.insort(
                spans[a.family], (int(a.first), int(a.last), a, group), key=lambda t: t[:2]
            )
    return kept


def _check_peers_select_groups(
    peers: list[Peer], groups: list[ServiceGroup], problems: list[Problem]
) -> None:
    for peer in peers:
        if not any(peer.carries(g) for g in groups):
            problems.append(
                Problem(
                    severity=Severity.WARNING,
                    ref=peer.ref,
                    path="spec.serviceGroupSelector",
                    message=f"selects no ServiceGroup that uses {peer.protocol}; the session is "
                    "set up but announces nothing",
                )
            )


def _check_defaults(groups: list[ServiceGroup], problems: list[Problem]) -> None:
    defaults = [g for g in groups if g.default]
    for g in defaults[1:]:
        problems.append(
            Problem(
                severity=Severity.WARNING,
                ref=g.ref,
                path="spec.default",
                message=f"{defaults[0].ref} is also marked default; Services that name no group "
                f"get addresses from {defaults[0].ref}",
            )
        )
