"""FRR: the outbound BGP policy, in a shape that grows with groups plus peers (issue 20).

FRR's route-maps cannot test a number against a set the way BIRD's filters do, and
bgpd validates its whole route-map tree on every change, so a policy with one entry per
group in every distinct selection of groups (what a Peer's ``serviceGroupSelector``
picks) grew with groups times selections: 475 selections of 1,000 groups did not load
in 300 s. Here every group's attributes are written once and a selection is one entry:

- **At redistribution** (:class:`Redistribution`, in the group's entry of the BGP
  redistribution route-map): what the group's routes get towards every neighbor, its
  communities and large communities, its local preference (only iBGP neighbors receive
  it), its MED when it is the same towards every neighbor, and a marker large community
  ``4294967295:1:<the group's sequence number>``. RFC 7300 reserves AS 4294967295, and
  the model refuses it in a group's large communities, so no policy of the user's looks
  like a marker.
- **A selection** (:class:`SelectionView`, one per distinct outbound route-map, the
  name neighbors already share): an expanded large-community list of its groups'
  markers, and one route-map entry that matches it, deletes every marker
  (``lbr-bgp-marks``) and calls the action map of its session kind.
- **An action map** (:class:`ActionMapView`, one per session kind, local ASN and
  family): an entry only for a group that needs more towards that kind of neighbor,
  its eBGP prepends, its classes, or a MED that differs by session kind or that the
  redistribution entry cannot set (a weighted group's or one with classes calls a
  route-map there that resets the metric, and FRR runs an entry's calls after its set
  lines), and a last entry that lets every other route through unchanged.

A change of one group's attributes is then a change of its redistribution entry (and of
its action entries), whatever the number of Peers that select it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from lbroute.model.api import RESERVED_ASN, Community, Family, LargeCommunity
from renderer.view.bgp import (
    BgpActions,
    BgpExportEntry,
    BgpExportView,
    ClassMapView,
    Session,
)
from renderer.view.names import GroupView, Names, family_suffix

MARK_ASN = RESERVED_ASN
"""The global administrator of the marker large communities: the last 32-bit ASN, which
RFC 7300 reserves and the model refuses in a ServiceGroup's large communities."""
MARK_KIND = 1
"""The marker's first data part; its second is the group's sequence number."""
MARKS_PATTERN = f"^{MARK_ASN}:{MARK_KIND}:"
"""The expression of every marker (what ``lbr-bgp-marks`` matches and deletes)."""
MARKS_PER_LINE = 64
"""Group numbers per line of a selection's expanded list; a route matches the list when
it matches one line, so long selections stay short lines (vtysh reads lines into a
fixed buffer)."""


def marker(group: GroupView) -> LargeCommunity:
    return LargeCommunity(global_admin=MARK_ASN, data1=MARK_KIND, data2=group.seq)


@dataclass(frozen=True, kw_only=True)
class Redistribution:
    """What one group's routes get where BGP takes them from the node's interface."""

    group: GroupView
    communities: tuple[Community, ...]
    large_communities: tuple[LargeCommunity, ...]
    """The group's own, then its marker."""
    local_pref: int | None
    """Towards iBGP neighbors (eBGP neighbors never receive a local preference)."""
    med: int | None
    """When every neighbor that gets the group gets this MED, and nothing the entry
    calls resets the metric afterwards."""


@dataclass(frozen=True, kw_only=True)
class ActionEntry:
    """One group's entry in an action map: what its routes get towards one session kind
    (and local ASN) beyond what redistribution gave them."""

    group: GroupView
    class_map: ClassMapView | None
    as_path_prepend: tuple[int, ...]
    med: int | None


@dataclass(frozen=True, kw_only=True)
class ActionMapView:
    name: str
    family: Family
    entries: tuple[ActionEntry, ...]
    """By the group's sequence number."""


@dataclass(frozen=True, kw_only=True)
class SelectionView:
    """One outbound route-map neighbors share: the groups of a selection, for one
    family, session kind and local ASN."""

    export: BgpExportView
    action_map: ActionMapView | None
    """What its single entry calls; None when no group needs anything more."""

    @property
    def name(self) -> str:
        """The route-map's name, and its large-community list's (another namespace)."""
        return self.export.name

    @functools.cached_property
    def mark_lines(self) -> tuple[str, ...]:
        """The regular expressions of its groups' markers, ``_4294967295:1:(12|40)_``,
        at most :data:`MARKS_PER_LINE` numbers each (``_`` is FRR's separator class:
        start, end, a space). Kept while the node is drained, as the attributes are."""
        seqs = sorted(e.group.seq for e in self.export.held)
        chunks = (seqs[i : i + MARKS_PER_LINE] for i in range(0, len(seqs), MARKS_PER_LINE))
        return tuple(f"_{MARK_ASN}:{MARK_KIND}:({'|'.join(map(str, chunk))})_" for chunk in chunks)


@dataclass(frozen=True, kw_only=True)
class FrrBgpPolicy:
    redistribution: dict[str, Redistribution]
    """By the group's identifier: every group some neighbor exports."""
    selections: tuple[SelectionView, ...]
    action_maps: tuple[ActionMapView, ...]
    marks_list: str
    """The expanded large-community list that matches every marker (deleted on the way
    out), with :data:`MARKS_PATTERN`."""

    @property
    def mark_pattern(self) -> str:
        return MARKS_PATTERN

    @functools.cached_property
    def class_maps(self) -> tuple[ClassMapView, ...]:
        """Every class route-map an action entry calls, once, by name."""
        found = {
            e.class_map.name: e.class_map
            for m in self.action_maps
            for e in m.entries
            if e.class_map is not None
        }
        return tuple(found[name] for name in sorted(found))


def frr_bgp_policy(exports: tuple[BgpExportView, ...], names: Names) -> FrrBgpPolicy:
    """The policy of the node's distinct outbound route-maps, ``exports``."""
    sessions: dict[str, dict[Session, BgpActions]] = {}
    for e in exports:
        for x in e.held:
            sessions.setdefault(x.group.ident, {})[e.session] = x.actions
    redistribution = {gid: _redistribution(found) for gid, found in sessions.items()}
    by_map: dict[str, tuple[Family, dict[int, ActionEntry]]] = {}
    for e in exports:
        _, entries = by_map.setdefault(_action_map_name(e, names), (e.family, {}))
        for x in e.entries:
            if x.group.seq not in entries:
                entry = _action_entry(x, redistribution[x.group.ident])
                if entry is not None:
                    entries[x.group.seq] = entry
    maps = {
        name: ActionMapView(
            name=name, family=family, entries=tuple(v for _, v in sorted(found.items()))
        )
        for name, (family, found) in by_map.items()
        if found
    }
    return FrrBgpPolicy(
        redistribution=redistribution,
        selections=tuple(
            SelectionView(export=e, action_map=maps.get(_action_map_name(e, names)))
            for e in exports
        ),
        action_maps=tuple(maps[name] for name in sorted(maps)),
        marks_list=names.join("bgp", "marks"),
    )


def _action_map_name(export: BgpExportView, names: Names) -> str:
    """The action map of an outbound route-map's session kind, local ASN and family."""
    owner = "ibgp" if export.session is Session.IBGP else f"ebgp-{export.local_asn}"
    return names.join("bgp", "act", owner, family_suffix(export.family))


def _redistribution(found: dict[Session, BgpActions]) -> Redistribution:
    some = next(iter(found.values()))
    group = some.group
    meds = {a.med for a in found.values()}
    resets_metric = bool(group.bgp.classes) or group.bgp.weight_by_endpoints
    ibgp = found.get(Session.IBGP)
    return Redistribution(
        group=group,
        communities=some.communities,
        large_communities=(*some.large_communities, marker(group)),
        local_pref=ibgp.local_pref if ibgp is not None else None,
        med=meds.pop() if len(meds) == 1 and not resets_metric else None,
    )


def _action_entry(x: BgpExportEntry, common: Redistribution) -> ActionEntry | None:
    med = x.actions.med if common.med is None else None
    if not (x.class_map or x.as_path_prepend or med is not None):
        return None
    return ActionEntry(
        group=x.group, class_map=x.class_map, as_path_prepend=x.as_path_prepend, med=med
    )
