"""Between the allocator's passes and the external IPAMs: :class:`Broker`.

A pass (allocator.ipam) returns the Services that need an address from a group's
external pools as requests; :meth:`Broker.fulfil` asks each group's provider for them
and returns what it gave as claims, which the pass then takes like requested addresses
(allocator.controller runs the pass again with them). A claim is kept until the
Service's status shows its address (or the Service is gone, or the pass did not take
it), so a write that fails is retried with the same address, never a second one.

When a provider does not answer, its group is marked down: the Services waiting for an
address are told so (``ExternalIPAMPending``) and the provider is asked again only after
a backoff (1 s, doubling to :data:`MAX_BACKOFF`, with jitter); :attr:`Broker.retry_at`
says when. Services that have their addresses are never touched by any of this: the
passes keep them whatever the IPAM says.

Every :data:`RESYNC` seconds, and at once after a Service let go of an external address,
:meth:`Broker.sync` compares each group's records with what Services hold:

- a record of lbroute's that no Service holds (its Service was deleted, moved or gave
  the family up, maybe while the allocator was down) is released: deleted or marked, as
  the group says;
- an address a Service holds that NetBox does not record at all is recorded again (the
  object was deleted by hand; nobody else has it there);
- an address a Service holds that NetBox records for something else (another object, or
  lbroute's for another Service) is drift: reported (an ``ExternalIPAMDrift`` Event and
  the group's condition), never repaired and never renumbered.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from allocator.external.provider import (
    IpamError,
    Owner,
    Provider,
    Record,
    Refused,
    Unavailable,
)
from allocator.external.selection import Choice, choose, taken_by
from allocator.ipam import ExternalRequest, Failure, Reason
from allocator.ipam.results import Drift
from lbroute.model.api import Family, ServiceGroup
from lbroute.model.errors import ObjectRef
from lbroute.model.fields import IPAddress

log = logging.getLogger(__name__)

RESYNC = 60.0
"""Seconds between two comparisons of a group's records with the Services."""
BATCH = 50
"""Free addresses asked for in one request."""
SYNC_BUDGET = 5.0
"""Seconds one pass spends releasing and repairing records; the rest at the next pass."""
BUDGET = 2.0
"""Seconds one pass spends asking the IPAMs for new addresses before it writes them."""
MIN_BACKOFF = 1.0
MAX_BACKOFF = 60.0

Condition = tuple[str, str, str]
"""A ServiceGroup condition's (status, reason, message)."""

ProviderFactory = Callable[[ServiceGroup], Provider]
"""Makes a group's provider; raises :class:`Refused` when it cannot (no token)."""


@dataclass
class _Group:
    """One group's provider and how it fares."""

    key: object
    provider: Provider | None
    group: ServiceGroup | None = None
    error: str = ""
    refused: bool = False
    """The error is a refusal (no token, no prefix): waiting will not help."""
    down_since: float | None = None
    delay: float = 0.0
    next_try: float = 0.0
    synced: float | None = None
    """When the records were last compared with the Services, to the end."""
    attempted: float | None = None
    """When a comparison was last started (a failed one is tried again a resync later)."""
    drift: tuple[Drift, ...] = ()
    records: int = 0
    selected: float | None = None
    """When the group's prefixSelector was last asked (None: not by this replica yet)."""
    choice: Choice | None = None
    select_error: str = ""
    """The IPAM refused the selector (a tag, tenant or role it does not know)."""


@dataclass
class Outcome:
    """What :meth:`Broker.fulfil` got: addresses per Service and family, and failures."""

    claims: dict[ObjectRef, dict[Family, IPAddress]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)


class Broker:
    """Asks the external IPAMs of one allocator replica."""

    def __init__(
        self,
        factory: ProviderFactory,
        *,
        clock: Callable[[], float] = time.monotonic,
        resync: float = RESYNC,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.resync = resync
        self._groups: dict[str, _Group] = {}
        self._claims: dict[tuple[ObjectRef, Family], IPAddress] = {}
        self._held: frozenset[tuple[IPAddress, ObjectRef]] = frozenset()
        self._more = False
        """The last :meth:`fulfil` or :meth:`sync` left work for the next pass."""
        self._force = False
        """Compare records at the next pass (a claim the pass could not take)."""
        self._waiting: set[tuple[str, Owner]] = set()
        """(group, Service) of this pass's requests: their records are never released."""

    # -- providers ----------------------------------------------------------------------------

    def groups(self, groups: Iterable[ServiceGroup], key: Callable[[ServiceGroup], object]) -> None:
        """Keep a provider per group with external pools; ``key(group)`` says when one must
        be made again (its settings or its token changed). Called at the start of every
        pass."""
        self._more = False
        self._waiting = set()
        seen = set()
        for g in groups:
            if g.netbox is None:
                continue
            seen.add(g.name)
            k = key(g)
            state = self._groups.get(g.name)
            if state is not None and state.key == k:
                continue
            old = state
            try:
                state = _Group(key=k, provider=self.factory(g), group=g)
            except IpamError as exc:
                state = _Group(key=k, provider=None, group=g, error=str(exc), refused=True)
            before = old.group.netbox if old is not None and old.group is not None else None
            if old is not None and before and g.netbox and before.selector == g.netbox.selector:
                # Its status now says what was chosen: not asked again before a resync.
                state.selected, state.choice = old.selected, old.choice
            self._groups[g.name] = state
        for name in set(self._groups) - seen:
            del self._groups[name]

    @property
    def retry_at(self) -> float | None:
        """When a pass should run again to ask a provider that was down, or to sync."""
        if self._more or self._force:
            return self.clock()
        times = []
        for s in self._groups.values():
            if s.provider is None:
                continue
            if s.down_since is not None:
                times.append(s.next_try)
            elif s.attempted is not None:
                times.append(s.attempted + self.resync)
        return min(times) if times else None

    def reset(self) -> None:
        """Forget every provider and claim (leadership changed: what another leader did
        meanwhile is read again from the IPAM)."""
        self._groups.clear()
        self._claims.clear()
        self._held = frozenset()

    def condition(self, group: str) -> Condition | None:
        """The group's ``ExternalIPAM`` condition; None for a group without one."""
        state = self._groups.get(group)
        if state is None:
            return None
        name = state.provider.name if state.provider is not None else "the external IPAM"
        if state.refused and state.error:
            return ("False", "Refused", state.error)
        if state.select_error:
            return ("False", "Refused", f"spec.ipam.netbox.prefixSelector: {state.select_error}")
        if state.down_since is not None:
            return (
                "False",
                "Unreachable",
                f"{state.error}; Services that have addresses keep them, new ones wait "
                f"(asked again with a backoff of up to {MAX_BACKOFF:.0f}s)",
            )
        if state.drift:
            return (
                "False",
                "Drift",
                f"{len(state.drift)} addresses differ in {name}: "
                + "; ".join(f"{d.ref}: {d.message}" for d in state.drift[:3]),
            )
        chose = ""
        if state.choice is not None and state.group is not None and state.group.netbox:
            chosen = state.choice.prefixes
            selector = state.group.netbox.selector
            assert selector is not None
            chose = f"; the prefixSelector ({selector.describe()}) chose " + (
                ", ".join(str(n) for n in chosen) if chosen else "no prefix"
            )
            chose += "".join(f"; {n}" for n in state.choice.notes)
        return (
            "True",
            "InSync",
            f"{name} answers; {state.records} records in the prefixes{chose}",
        )

    @property
    def drift(self) -> tuple[Drift, ...]:
        return tuple(d for s in self._groups.values() for d in s.drift)

    # -- prefixes chosen by a selector -------------------------------------------------------

    def select(
        self, groups: Sequence[ServiceGroup], held: Iterable[IPAddress]
    ) -> dict[str, Choice]:
        """Ask the IPAM which prefixes each group's ``prefixSelector`` matches, when that
        is due (never asked by this replica, or a resync ago), and choose the group's
        prefixes (allocator.external.selection); ``held``: the addresses Services hold.
        Returns the groups whose choice differs from the prefixes they have (their
        status): group name -> the choice to write there."""
        out: dict[str, Choice] = {}
        held = list(held)
        for g in groups:
            state = self._groups.get(g.name)
            if g.netbox is None or g.netbox.selector is None:
                continue
            if state is None or state.provider is None:
                continue
            now = self.clock()
            if state.down_since is not None and now < state.next_try:
                continue
            if state.selected is not None and now < state.selected + self.resync:
                continue
            try:
                matching = state.provider.select()
            except Unavailable as exc:
                self._down(state, str(exc))  # asked again after the backoff
                continue
            except Refused as exc:
                self._up(state)  # it answered
                state.selected, state.select_error = now, str(exc)
                continue
            self._up(state)
            state.selected = now
            state.select_error = ""
            # The groups after it see the choices made before, not the statuses they replace.
            chosen = {name: (*c.prefixes, *c.retained) for name, c in out.items()}
            state.choice = choose(g, matching, taken_by(groups, g.name, chosen), held)
            if not state.choice.same_as(g):
                out[g.name] = state.choice
        return out

    # -- a pass's requests --------------------------------------------------------------------

    def fulfil(self, requests: Sequence[ExternalRequest], budget: float = BUDGET) -> Outcome:
        """Ask for what the pass requested; claims made earlier are given again. Free
        addresses are asked for :data:`BATCH` at a time per group and family (one NetBox
        request each); requested ones one by one. After ``budget`` seconds of asking,
        the rest waits for the next pass (:attr:`retry_at` is then now), so that a
        thousand new Services are written as they come rather than all after the last."""
        out = Outcome()
        shared: dict[tuple[str, str, str, Family], IPAddress] = {}
        followers: dict[tuple[str, str, str, Family], list[ExternalRequest]] = {}
        leaders: dict[tuple[str, str, str, Family], ObjectRef] = {}
        free: dict[tuple[str, Family], list[ExternalRequest]] = {}
        start = self.clock()
        self._waiting = {
            (r.group, Owner(namespace=r.ref.namespace, name=r.ref.name)) for r in requests
        }

        def give(r: ExternalRequest, got: IPAddress) -> None:
            self._claims[(r.ref, r.family)] = got
            out.claims.setdefault(r.ref, {})[r.family] = got
            if r.share is not None:
                key = (r.group, *r.share, r.family)
                if r.address is not None:
                    key = (r.group, r.share[0], f"{r.share[1]}@{r.address}", r.family)
                shared.setdefault(key, got)
                for f in followers.pop(key, []):
                    out.claims.setdefault(f.ref, {})[f.family] = shared[key]

        for r in requests:
            state = self._groups.get(r.group)
            got = self._claims.get((r.ref, r.family))
            if got is not None and (r.address is None or r.address == got):
                give(r, got)
                continue
            share = (r.group, *r.share, r.family) if r.share is not None else None
            if r.address is not None and r.share is not None:
                wanted = (r.group, r.share[0], f"{r.share[1]}@{r.address}", r.family)
                if wanted in shared:  # asked for by another Service of the key: its
                    out.claims.setdefault(r.ref, {})[r.family] = shared[wanted]
                    continue
                if wanted in followers:  # the same requested address, the same key
                    followers[wanted].append(r)
                    continue
                followers[wanted], leaders[wanted] = [], r.ref
                share = wanted
            elif r.address is None and share is not None:
                if share in shared:
                    out.claims.setdefault(r.ref, {})[r.family] = shared[share]
                    continue
                if share in followers:  # another Service of the key asks for it
                    followers[share].append(r)
                    continue
                followers[share], leaders[share] = [], r.ref
            if state is None or state.provider is None:
                why = state.error if state is not None else "no provider"
                out.failures.append(_failure(r, Reason.IPAM_REFUSED, why))
            elif state.down_since is not None and self.clock() < state.next_try:
                out.failures.append(_pending(r, state))
            elif r.address is None:
                free.setdefault((r.group, r.family), []).append(r)
            elif self.clock() - start > budget:
                self._more = True
            else:
                self._ask(state, [r], out, give)
        for (group, _family), waiting in free.items():
            state = self._groups[group]
            for i in range(0, len(waiting), BATCH):
                chunk = waiting[i : i + BATCH]
                if state.down_since is not None and self.clock() < state.next_try:
                    out.failures += [_pending(r, state) for r in chunk]
                elif self.clock() - start > budget:
                    self._more = True
                    break
                else:
                    self._ask(state, chunk, out, give)
        for key, waiting in followers.items():  # their key's address did not come: why
            said = next((f for f in out.failures if f.ref == leaders.get(key)), None)
            if said is not None:
                out.failures += [dataclasses.replace(said, ref=r.ref) for r in waiting]
        return out

    def _ask(
        self,
        state: _Group,
        chunk: list[ExternalRequest],
        out: Outcome,
        give: Callable[[ExternalRequest, IPAddress], None],
    ) -> None:
        """Ask ``state``'s provider for ``chunk`` (one requested address, or free ones of
        one family)."""
        provider = state.provider
        assert provider is not None
        owners = [Owner(namespace=r.ref.namespace, name=r.ref.name) for r in chunk]
        try:
            if chunk[0].address is not None:
                given = {owners[0]: provider.claim(chunk[0].family, owners[0], chunk[0].address)}
            else:
                given = dict(provider.claim_free(chunk[0].family, owners))
        except Unavailable as exc:
            self._down(state, str(exc))
            out.failures += [_pending(r, state) for r in chunk]
            return
        except Refused as exc:
            self._up(state)
            out.failures += [_failure(r, Reason.IPAM_REFUSED, str(exc)) for r in chunk]
            return
        self._up(state)
        for r, owner in zip(chunk, owners, strict=True):
            got = given.get(owner)
            if got is not None:
                give(r, got)
            else:
                out.failures.append(_failure(r, Reason.IPAM_REFUSED, _exhausted(state, r)))

    def settle(
        self,
        current: Mapping[ObjectRef, Iterable[IPAddress]],
        taken: Mapping[ObjectRef, Iterable[IPAddress]],
    ) -> None:
        """Forget the claims that are done: the Service's status shows the address
        (``current``), the Service is gone, or the pass did not take the address
        (``taken``: each Service's addresses as the pass decided)."""
        for (ref, family), address in list(self._claims.items()):
            refused = ref in current and address not in set(taken.get(ref, ()))
            if ref not in current or address in set(current[ref]) or refused:
                del self._claims[(ref, family)]
            if refused and address not in set(current.get(ref, ())):
                self._force = True  # the IPAM's record may be wrong: compare them soon

    # -- comparing records with Services ------------------------------------------------------

    def due(self, holders: Mapping[IPAddress, Sequence[ObjectRef]]) -> bool:
        """Whether :meth:`sync` should run: a group never synced or due again, or a
        Service has let go of an address since the last pass (a sharer among them)."""
        held = frozenset((a, ref) for a, refs in holders.items() for ref in refs)
        let_go = bool(self._held - held)
        self._held = held
        now = self.clock()
        forced, self._force = self._force, False
        return (
            let_go
            or forced
            or any(
                s.provider is not None
                and (s.attempted is None or now >= s.attempted + self.resync)
                and (s.down_since is None or now >= s.next_try)
                for s in self._groups.values()
            )
        )

    def sync(
        self,
        groups: Iterable[ServiceGroup],
        holders: Mapping[IPAddress, Sequence[ObjectRef]],
        group_of: Mapping[ObjectRef, str],
    ) -> list[str]:
        """Compare every group's records with ``holders`` (address -> the Services whose
        status or assignment has it; ``group_of``: each Service's group). Returns what
        it released or recorded again, for the log and Events."""
        done: list[str] = []
        inflight = set(self._claims.values())
        deadline = self.clock() + SYNC_BUDGET
        for g in groups:
            state = self._groups.get(g.name)
            if state is None or state.provider is None:
                continue
            if state.down_since is not None and self.clock() < state.next_try:
                continue
            state.attempted = self.clock()
            try:
                finished = self._sync_group(g, state, holders, group_of, inflight, deadline, done)
            except Unavailable as exc:
                self._down(state, str(exc))
            except Refused as exc:
                state.error, state.refused = str(exc), True
            else:
                self._up(state)
                if finished:
                    state.synced = self.clock()
                else:  # out of time: the rest at the next pass, which comes at once
                    state.attempted, self._more = None, True
        return done

    def _sync_group(
        self,
        g: ServiceGroup,
        state: _Group,
        holders: Mapping[IPAddress, Sequence[ObjectRef]],
        group_of: Mapping[ObjectRef, str],
        inflight: set[IPAddress],
        deadline: float,
        done: list[str],
    ) -> bool:
        """One group's comparison; False when ``deadline`` came first (what was done
        stays done). A change NetBox refuses is logged and the rest goes on."""
        provider = state.provider
        assert provider is not None and g.netbox is not None
        records = provider.records()
        state.records = len(records)
        by_address: dict[IPAddress, list[Record]] = {}
        for rec in records:
            by_address.setdefault(rec.address, []).append(rec)

        def change(what: str, act: Callable[[], None]) -> bool:
            if self.clock() > deadline:
                return False
            try:
                act()
            except Refused as exc:
                log.warning("%s: could not %s: %s", g.ref, what, exc)
                done.append(f"{g.ref}: could not {what}: {exc}")
            else:
                done.append(f"{g.ref}: {what} in {provider.name}")
            return True

        for rec in records:
            if rec.owner is None or not rec.active:
                continue
            if rec.address in holders or rec.address in inflight:
                continue
            if (g.name, rec.owner) in self._waiting:
                continue  # its Service is asking for it again (not written yet)
            if not change(f"release {rec.address} ({rec.owner})", partial(provider.release, rec)):
                return False
        drift: list[Drift] = []
        for address, refs in sorted(holders.items(), key=lambda kv: (kv[0].version, kv[0])):
            if not any(address in net for net in g.netbox.every_prefix):
                continue
            mine = [r for r in refs if group_of.get(r) == g.name]
            if not mine:
                continue
            found = by_address.get(address, [])
            owners = {Owner(namespace=r.namespace, name=r.name) for r in refs}
            if any(r.owner in owners and r.active for r in found):
                continue
            if not found:
                what = f"record {address} for {min(owners)} again (its record was gone)"
                if not change(what, partial(provider.restore, address, min(owners))):
                    return False
                continue
            ours = [r for r in found if r.owner is not None and r.active]
            if ours and len(ours) == len(found):
                # lbroute's, for a Service that no longer holds it (a sharer deleted, or
                # given by NetBox while the holder's record was missing): the holder's.
                what = f"record {address} for {min(owners)} instead of {ours[0].owner}"
                if not change(what, partial(provider.adopt, ours[0], min(owners))):
                    return False
                continue
            shown = ", ".join(r.shown for r in found)
            for ref in mine:
                drift.append(
                    Drift(
                        ref=ref,
                        address=address,
                        group=g.ref,
                        message=f"{address} is recorded in {provider.name} for {shown}, not "
                        "for this Service; the Service keeps it (an address is never "
                        "renumbered): fix the record in NetBox",
                    )
                )
        state.drift = tuple(drift)
        return True

    # -- up and down --------------------------------------------------------------------------

    def _down(self, state: _Group, error: str) -> None:
        now = self.clock()
        if state.down_since is None:
            state.down_since = now
            log.warning("%s", error)
        state.error, state.refused = error, False
        state.delay = min(MAX_BACKOFF, max(MIN_BACKOFF, state.delay * 2))
        state.next_try = now + state.delay * random.uniform(0.8, 1.2)

    def _up(self, state: _Group) -> None:
        if state.down_since is not None:
            name = state.provider.name if state.provider is not None else "the IPAM"
            log.info("%s answers again", name)
        state.down_since, state.delay, state.error, state.refused = None, 0.0, "", False


def _exhausted(state: _Group, r: ExternalRequest) -> str:
    name = state.provider.name if state.provider is not None else "the external IPAM"
    source = state.group.netbox if state.group is not None else None
    nets = [str(n) for n in source.prefixes if Family.of(n) is r.family] if source else []
    where = f" in {', '.join(nets)}" if nets else ""
    return f"{name} has no free {r.family} address left{where}; add a prefix or free one"


def _failure(r: ExternalRequest, reason: Reason, message: str) -> Failure:
    return Failure(ref=r.ref, reason=reason, path="", message=message)


def _pending(r: ExternalRequest, state: _Group) -> Failure:
    """Stable while the IPAM stays down (one Event, not one per attempt)."""
    what = f"{r.address}" if r.address is not None else f"an {r.family} address"
    return _failure(r, Reason.IPAM_PENDING, f"waiting for {what}: {state.error}")
