"""A batch of lbroute objects as one :class:`Model`: parsing by kind and the cross-object checks.

:func:`parse_object` hands each object to the parser of its kind (ServiceGroup, Peer,
NodeAgent, Node, Secret) and ignores other kinds. :func:`load` parses a batch, skips the
invalid objects so that the valid ones still render, then makes the checks that need
more than one object: duplicates (an error naming both places; the first valid copy is
used, for every kind, Secrets and Nodes too), Peers' Secrets,
pools that overlap across ServiceGroups (of two, a *settled* one wins: see
:mod:`lbroute.model.lastgood`), Peers that carry no group, and more than one default
group. Each check costs O(n log n) in the number of objects (or pools), never
one object against every other: 64,000 ServiceGroups load in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lbroute.model.agentconfig import NodeAgent, parse_node_agent
from lbroute.model.common import Announce, LabelSelector, Protocol
from lbroute.model.errors import InvalidObject, ObjectRef, Problem, Severity, escape, quote
from lbroute.model.fields import Reader, name_text
from lbroute.model.nodes import Node, parse_node
from lbroute.model.peer import Peer, parse_peer
from lbroute.model.secrets import Secret, SecretRef, SecretValue, parse_secret, secret_value
from lbroute.model.servicegroup import Pool, ServiceGroup, local_problems, parse_service_group
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
                namespace=name_text(meta.get("namespace"), "default"),
                name=name_text(meta.get("name"), "<no name>"),
            )
            raise InvalidObject(
                ref,
                (
                    Problem(
                        severity=Severity.ERROR,
                        ref=ref,
                        path="apiVersion",
                        message=f"{quote(api_version)} is not served; use {API_VERSION}",
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


Where = Callable[[Mapping[str, Any]], str | None]
"""Where an object was read (``file.yaml:12``), or None when not known."""


def load(
    objects: Iterable[Mapping[str, Any]],
    *,
    settled: Collection[ObjectRef] = frozenset(),
    parse: Callable[[Mapping[str, Any]], Parsed | None] = parse_object,
    where: Where | None = None,
) -> Model:
    """Parse a batch of objects and run the cross-object checks; never raises for input.
    ``settled`` objects (used as they are before: :mod:`lbroute.model.lastgood`) win a
    conflict with one that is not, whatever their names; ``parse`` is
    :func:`parse_object` or one that remembers what it parsed; ``where`` names the place
    an object was read (:meth:`lbroute.model.manifests.Manifests.where`), for messages."""
    problems: list[Problem] = []
    found = _first_of_each(objects, parse, where, problems)
    groups = [p for p in found if isinstance(p, ServiceGroup)]
    peers = [p for p in found if isinstance(p, Peer)]
    agents = [p for p in found if isinstance(p, NodeAgent)]
    nodes = [p for p in found if isinstance(p, Node)]
    secrets = {(p.ref.namespace, p.ref.name): p for p in found if isinstance(p, Secret)}
    peers = [p for p in (_resolve_secrets(p, secrets, problems) for p in peers) if p is not None]
    groups = _check_pool_overlaps(groups, problems, settled)
    _check_peers_select_groups(peers, groups, problems)
    _check_defaults(groups, problems)
    problems.extend(p for g in groups for p in local_problems(g))
    return Model(
        service_groups=tuple(groups),
        peers=tuple(peers),
        node_agents=tuple(agents),
        nodes=tuple(nodes),
        problems=tuple(problems),
    )


def _first_of_each(
    objects: Iterable[Mapping[str, Any]],
    parse: Callable[[Mapping[str, Any]], Parsed | None],
    where: Where | None,
    problems: list[Problem],
) -> list[Parsed]:
    """Every valid object, sorted by kind, namespace and name. An object written twice
    (two documents or files with the same kind, namespace and name: a manifest set can
    hold that, the API server cannot) is an error on that object; its first valid copy
    is used, whatever its kind, so a duplicate never silently replaces another."""
    found: dict[ObjectRef, tuple[Parsed, str | None]] = {}
    for obj in objects:
        try:
            parsed = parse(obj)
        except InvalidObject as exc:
            problems.extend(exc.problems)
            continue
        if parsed is None:
            continue
        ref = _ref(parsed)
        place = where(obj) if where is not None else None
        if ref in found:
            problems.append(_duplicate(ref, found[ref][1], place))
            continue
        found[ref] = (parsed, place)
    return [found[ref][0] for ref in sorted(found)]


def _ref(parsed: Parsed) -> ObjectRef:
    if isinstance(parsed, Node):
        return ObjectRef(kind="Node", namespace="", name=parsed.name)
    return parsed.ref


def _duplicate(ref: ObjectRef, first: str | None, again: str | None) -> Problem:
    places = ""
    if first is not None or again is not None:
        places = f" (in {escape(first or 'an earlier document', PLACE_LIMIT)} and again in "
        places += f"{escape(again or 'a later document', PLACE_LIMIT)})"
    scope = f"in namespace {quote(ref.namespace)} " if ref.namespace else ""
    return Problem(
        severity=Severity.ERROR,
        ref=ref,
        path="metadata.name",
        message=f"appears more than once{places}; the first one is used: each {ref.kind} "
        f"{scope}needs a name of its own, so remove one copy or rename it",
    )


PLACE_LIMIT = 300
"""The most characters of a place (a file's path and line) a message shows."""


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
        value = _md5_key(peer.ospf.auth_ref, "OSPF", secrets, r, ns)
        peer = replace(peer, ospf=replace(peer.ospf, auth_key=value))
    if peer.rip is not None and peer.rip.auth_ref is not None:
        value = _md5_key(peer.rip.auth_ref, "RIP", secrets, r, ns)
        peer = replace(peer, rip=replace(peer.rip, auth_key=value))
    problems.extend(r.problems)
    return None if r.failed else peer


MD5_KEY_LIMIT = 16
"""The longest MD5 key OSPF and RIP take (RFC 2328 D.3, RFC 2082): 16 characters."""


def _md5_key(
    ref: SecretRef,
    protocol: str,
    secrets: Mapping[tuple[str, str], Secret],
    r: Reader,
    namespace: str,
) -> SecretValue | None:
    """The MD5 key a Peer's OSPF or RIP authentication names, checked for its length."""
    path = f"{protocol.lower()}.authSecretRef"
    value = secret_value(ref, secrets.get((namespace, ref.name)), r, path)
    if value is not None and len(value.reveal()) > MD5_KEY_LIMIT:
        r.error(path, f"the {protocol} MD5 key is at most {MD5_KEY_LIMIT} characters")
    return value


SKIPPED = " (this ServiceGroup is skipped)"
"""How an overlap error ends: the group that loses is left out. Where its last valid
version stands in for it (:mod:`lbroute.model.lastgood`) it is not, and that module
leaves this remark out."""


def _check_pool_overlaps(
    groups: list[ServiceGroup], problems: list[Problem], settled: Collection[ObjectRef] = ()
) -> list[ServiceGroup]:
    """A pool may belong to one ServiceGroup; of two, the one not ``settled``, else the
    later (by namespace/name), is skipped.

    The pools of the groups kept so far never overlap each other, so a pool overlaps one
    of them exactly when the kept pool that starts at or before it reaches it, or the next
    kept pool starts inside it. Kept pools are marked by their start in a Fenwick tree over
    the starts of all pools (sorted once), where both are found in O(log n).
    """
    starts = sorted({(p.first.version, int(p.first)) for g in groups for p in g.pools})
    index = {start: i for i, start in enumerate(starts)}
    marks = _Marks(len(starts))
    at: list[tuple[Pool, ServiceGroup] | None] = [None] * len(starts)
    kept: list[ServiceGroup] = []
    for group in sorted(groups, key=lambda g: g.ref not in settled) if settled else groups:
        clash = None
        for n, a in enumerate(group.pools):
            first, last = int(a.first), int(a.last)
            i = index[(a.first.version, first)]
            before = marks.count(i + 1)
            near = [marks.find(k) for k in (before, before + 1) if 0 < k <= marks.total]
            for found in near:
                held = at[found]
                assert held is not None
                b, other = held
                if b.family is a.family and int(b.first) <= last and first <= int(b.last):
                    clash = (n, a, b, other)
                    break
            if clash is not None:
                break
        if clash is not None:
            n, a, b, other = clash
            problems.append(
                Problem(
                    severity=Severity.ERROR,
                    ref=group.ref,
                    path=group.pool_path(n),
                    message=f"{a.source} overlaps {b.source} of {other.ref}; pools of different "
                    f"ServiceGroups must not overlap{SKIPPED}",
                )
            )
            continue
        kept.append(group)
        for a in group.pools:
            i = index[(a.first.version, int(a.first))]
            marks.add(i)
            at[i] = (a, group)
    return sorted(kept, key=lambda g: g.ref) if settled else kept


class _Marks:
    """Marked positions among ``size``, as a Fenwick tree: mark one, count the marks before
    a position, find the k-th mark; each in O(log size)."""

    def __init__(self, size: int) -> None:
        self.tree = [0] * (size + 1)
        self.total = 0

    def add(self, position: int) -> None:
        self.total += 1
        i = position + 1
        while i < len(self.tree):
            self.tree[i] += 1
            i += i & -i

    def count(self, end: int) -> int:
        """Marks at positions before ``end``."""
        found = 0
        while end > 0:
            found += self.tree[end]
            end -= end & -end
        return found

    def find(self, k: int) -> int:
        """The position of the k-th mark (k from 1 to ``total``)."""
        position, step = 0, 1 << (len(self.tree) - 1).bit_length()
        while step:
            ahead = position + step
            if ahead < len(self.tree) and self.tree[ahead] < k:
                position = ahead
                k -= self.tree[ahead]
            step >>= 1
        return position


def _check_peers_select_groups(
    peers: list[Peer], groups: list[ServiceGroup], problems: list[Problem]
) -> None:
    """Warn about a Peer that carries no group. Peers with the same selector and protocol
    are decided once, and a selector that requires a label is tried only on the groups that
    have it, so many Peers and many groups cost about their sum, not their product."""
    by_label: dict[tuple[str, str], list[ServiceGroup]] = {}
    for g in groups:
        for label in g.labels:
            by_label.setdefault(label, []).append(g)
    decided: dict[tuple[LabelSelector, Protocol], bool] = {}
    for peer in peers:
        key = (peer.service_group_selector, peer.protocol)
        if key not in decided:
            candidates = _candidates(peer.service_group_selector, groups, by_label)
            decided[key] = any(peer.carries(g) for g in candidates)
        if not decided[key]:
            problems.append(
                Problem(
                    severity=Severity.WARNING,
                    ref=peer.ref,
                    path="spec.serviceGroupSelector",
                    message=_carries_nothing(peer, groups, by_label),
                )
            )


def _carries_nothing(
    peer: Peer, groups: list[ServiceGroup], by_label: Mapping[tuple[str, str], list[ServiceGroup]]
) -> str:
    """Why a Peer announces nothing: no group it selects uses its protocol, or the groups
    it would carry are all local (announce: local, which no router announces)."""
    local = [
        g
        for g in _candidates(peer.service_group_selector, groups, by_label)
        if g.announce is Announce.LOCAL and peer.carries(replace(g, announce=Announce.ROUTED))
    ]
    if local:
        names = ", ".join(str(g.ref) for g in local[:3]) + (" ..." if len(local) > 3 else "")
        return (
            f"selects only ServiceGroups with announce: local ({names}), whose addresses one "
            "node holds on its NIC and no router announces; the session is set up but "
            "announces nothing (select a routed ServiceGroup, or remove the Peer)"
        )
    return (
        f"selects no ServiceGroup that uses {peer.protocol}; the session is set up but "
        "announces nothing"
    )


def _candidates(
    selector: LabelSelector,
    groups: list[ServiceGroup],
    by_label: Mapping[tuple[str, str], list[ServiceGroup]],
) -> Sequence[ServiceGroup]:
    """The fewest groups the selector can match: those with one label it requires (a
    matchLabels pair, or one of the values of an In expression), else all of them."""
    choices: list[Sequence[ServiceGroup]] = [groups]
    choices += [by_label.get(label, []) for label in selector.match_labels]
    choices += [
        [g for v in r.values for g in by_label.get((r.key, v), [])]
        for r in selector.match_expressions
        if r.operator == "In"
    ]
    return min(choices, key=len)


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
