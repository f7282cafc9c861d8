"""Which NetBox prefixes a ServiceGroup's ``prefixSelector`` takes: :func:`choose`.

The IPAM says which of its prefixes match (in its own order); the allocator decides
which of them become the group's pools, so that every reader of the group (the node
agents, which never talk to the IPAM) agrees, and writes them into the group's status
(``status.ipam.netbox.prefixes``). A matching prefix is left out, with a note for the
group's condition, when it is special-purpose, overlaps another group's pools (or one
chosen for another group before it), overlaps one of the group's prefixes that holds
Services' addresses (those stay as they are), overlaps a prefix chosen before it for this
group (NetBox lists a parent before its children: the parent is taken), or would be one
more than :data:`~lbroute.model.netbox.MAX_PREFIXES`.

A prefix chosen before that no longer matches (untagged, deleted, its status changed) is
retained while a Service still holds one of its addresses (``status.ipam.netbox.
retained``): an address is never renumbered and its routes stay announced the way they
were, but no new address comes from it. Once its last address is let go it is dropped at
the next choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lbroute.model.api import ServiceGroup
from lbroute.model.fields import IPAddress, IPNetwork
from lbroute.model.netbox import MAX_PREFIXES
from lbroute.model.servicegroup import special_purpose

Span = tuple[int, int, int, str]
"""(IP version, first, last, how to name it) of addresses a prefix may not overlap."""


@dataclass(frozen=True, kw_only=True)
class Choice:
    prefixes: tuple[IPNetwork, ...]
    """New addresses come from these."""
    retained: tuple[IPNetwork, ...] = ()
    """No longer matching, kept for the addresses Services hold."""
    notes: tuple[str, ...] = ()
    """Matching prefixes left out, and why; prefixes retained."""

    def status(self) -> dict[str, list[str]]:
        """``status.ipam.netbox`` saying this choice."""
        out = {"prefixes": [str(n) for n in self.prefixes]}
        if self.retained:
            out["retained"] = [str(n) for n in self.retained]
        return out

    def same_as(self, group: ServiceGroup) -> bool:
        """Whether ``group`` has these prefixes (its status says this choice)."""
        assert group.netbox is not None
        return (self.prefixes, self.retained) == (group.netbox.prefixes, group.netbox.retained)


def span(net: IPNetwork, what: str) -> Span:
    return (net.version, int(net[0]), int(net[-1]), what)


def taken_by(
    groups: Iterable[ServiceGroup], but: str, chosen: Mapping[str, Sequence[IPNetwork]]
) -> list[Span]:
    """The address spans of every group's pools but those of group ``but``'s NetBox
    prefixes (its own pools count: exactly one source per address); ``chosen``: NetBox
    prefixes chosen just now for groups, instead of those they have."""
    out: list[Span] = []
    for g in groups:
        for p in g.pools:
            if p.external is not None and (g.name == but or g.name in chosen):
                continue
            out.append((p.first.version, int(p.first), int(p.last), f"{g.ref}'s pool {p}"))
        if g.name in chosen and g.name != but:
            out += [span(n, f"{g.ref}'s NetBox prefix {n}") for n in chosen[g.name]]
    return out


def _overlap(net: IPNetwork, spans: Iterable[Span]) -> str | None:
    first, last = int(net[0]), int(net[-1])
    for version, a, b, what in spans:
        if version == net.version and a <= last and first <= b:
            return what
    return None


def choose(
    group: ServiceGroup,
    matching: Sequence[IPNetwork],
    taken: Sequence[Span],
    held: Iterable[IPAddress],
) -> Choice:
    """The prefixes ``group`` takes of those its selector ``matching`` in the IPAM, beside
    the address spans ``taken`` elsewhere; ``held``: addresses Services hold now."""
    assert group.netbox is not None
    held = list(held)
    # The group's prefixes that hold Services' addresses stay as they are (whatever else
    # now matches around them): their addresses keep their routes.
    anchored = [
        n
        for n in group.netbox.every_prefix
        if any(a.version == n.version and a in n for a in held) and _overlap(n, taken) is None
    ]
    chosen: list[IPNetwork] = []
    notes: list[str] = []
    for net in matching:
        if net in anchored:
            chosen.append(net)
        elif found := special_purpose(net[0], net[-1]):
            notes.append(f"{net} is special-purpose ({found[0][1]}): left out")
        elif (what := _overlap(net, taken)) is not None:
            notes.append(f"{net} overlaps {what}: left out")
        elif (what := _overlap(net, (span(n, str(n)) for n in anchored))) is not None:
            notes.append(f"{net} overlaps {what}, which holds Services' addresses: left out")
        elif (what := _overlap(net, (span(n, str(n)) for n in chosen))) is not None:
            notes.append(f"{net} overlaps {what}, chosen before it: left out")
        elif len(chosen) >= MAX_PREFIXES:
            notes.append(f"{net}: a group takes at most {MAX_PREFIXES} prefixes: left out")
        else:
            chosen.append(net)
    retained = [n for n in anchored if n not in chosen]
    notes += [
        f"{n} no longer matches but Services hold addresses of it: retained (no new address "
        "from it) until they let go"
        for n in retained
    ]
    return Choice(prefixes=tuple(chosen), retained=tuple(retained), notes=tuple(notes))
