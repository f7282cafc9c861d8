"""One allocation pass at the cost of what changed: :class:`Incremental`.

A full pass (:func:`~allocator.ipam.assign.allocate`) costs about 0.6 s at 10,000
Services (``bench/alloc_bench.py``), and the controller ran one for every change of
any Service. :class:`Incremental` gives exactly what :func:`allocate` would give for
the same ServiceGroups and Services, keeping from one pass to the next what each step
decided and redoing only what a change can reach:

- step 1 (what every Service holds now) per address: each address keeps its claimants
  in the order of age, and only the addresses a changed Service held or holds are
  settled again; a claimant whose outcome there changed (it lost the address, or its
  port clash report reads differently) is decided again;
- the decision of each Service (group, families, what it keeps) depends on the Service,
  the ServiceGroups and the addresses it lost in step 1: it is made again for the
  Services that changed and those whose step 1 changed;
- steps 2 and 3 (requested addresses, then shared and free ones) touch the book only
  for a Service that still wants an address (*active*: a request it does not hold, a
  family it has no address of). Only those run again, every pass, in the order of age,
  on the book as step 1 left it; what they held is taken back before the next pass
  (:class:`~allocator.ipam.journal.JournaledBook`). A Service that waits for a free
  address therefore sees every address freed in between, as in a full pass;
- assignments, failures (in the order a full pass reports them), addresses kept outside
  the pools and the counts per pool are kept per Service and summed up as they change.

A pass is full (counted in :attr:`Incremental.full`, by reason) when there is no
previous one, when the ServiceGroups, the invalid groups or the namespace differ from
the last pass's, when a ServiceGroup has pools of an external IPAM or there are
``claims`` (a plain :func:`allocate`, nothing kept), or when two Services share a name.
A pass's :class:`~allocator.ipam.results.Allocation` carries the assignments that
change something and a :class:`~allocator.ipam.results.Delta` naming the Services that
may differ from the pass before, so the writer too does only what changed.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from allocator.ipam.assign import allocate, assignment, claim, release, request, rest
from allocator.ipam.book import PoolState
from allocator.ipam.journal import JournaledBook
from allocator.ipam.plan import Fail, Plan, decide
from allocator.ipam.results import Allocation, Assignment, Delta, Failure, Outside, Reason
from allocator.ipam.stats import counted_in, tally
from allocator.service import LBService
from lbroute.model.api import Family, ServiceGroup
from lbroute.model.errors import ObjectRef
from lbroute.model.fields import IPAddress

Age = tuple[str, ObjectRef]
"""(creationTimestamp, ref): the order in which a full pass takes Services."""


@dataclass(eq=False)
class _Entry:
    """One Service as the last pass left it."""

    svc: LBService
    age: Age
    step1: dict[IPAddress, tuple[Failure | None, bool]] = field(default_factory=dict)
    """Each address it holds now: step 1's report on it, and whether it keeps it."""
    plan: Plan | None = None
    """Its decision (lbroute's Services), before steps 2 and 3."""
    active: bool = False
    """Steps 2 and 3 may touch the book for it: they run again every pass."""
    failures: tuple[tuple[Failure, ...], tuple[Failure, ...], tuple[Failure, ...]] = ((), (), ())
    """Step 1's, the decision's and (when not active) step 2's reports."""
    outside: tuple[Outside, ...] = ()
    assignment: Assignment | None = None
    held: tuple[IPAddress, ...] = ()
    """What it counts as holding in the pools' counts."""
    listed: bool = False
    """In :attr:`Incremental._notable`."""

    @property
    def notable(self) -> bool:
        """Whether a pass must look at it again to sum up failures and ``outside``."""
        return self.active or bool(self.outside) or any(self.failures)


@dataclass(frozen=True, kw_only=True)
class _Inputs:
    """What a pass depends on besides the Services: another value means a full pass."""

    groups: tuple[ServiceGroup, ...]
    invalid: Mapping[str, str]
    namespace: str


class Incremental:
    """Passes that cost what changed since the last one, with the result of a full pass."""

    def __init__(self) -> None:
        self.full: dict[str, int] = {}
        """Full passes by reason: ``first``, ``groups``, ``external``, ``duplicate``."""
        self.incremental = 0
        """Passes that redid only what changed."""
        self._start(None)

    def _start(self, inputs: _Inputs | None) -> None:
        """Forget every Service: each is new to the next pass."""
        groups = inputs.groups if inputs is not None else ()
        self._inputs = inputs
        self._book = JournaledBook(groups)
        self._by_name = {g.name: g for g in groups}
        self._default = next((g for g in groups if g.default), None)
        self._entries: dict[ObjectRef, _Entry] = {}
        self._by_id: dict[int, LBService] = {}
        """id -> each Service object of the last pass (kept alive, so an id is never
        another object's): one unchanged costs a lookup."""
        self._claimants: dict[IPAddress, list[tuple[Age, LBService]]] = {}
        self._notable: list[Age] = []
        """The Services with failures, addresses outside their pools or active, by age."""
        self._refs: list[ObjectRef] = []
        self._assignments: list[Assignment] = []
        """Every assignment, in the order of ``_refs`` (by ref, as a full pass orders them)."""
        self._changed: set[ObjectRef] = set()
        self._held: dict[IPAddress, int] = {}
        self._in_use: dict[PoolState, int] = {}
        self._token: object | None = None
        self._touched: set[ObjectRef] = set()
        """The Services whose Service or assignment this pass changed."""

    def allocate(
        self,
        groups: Sequence[ServiceGroup],
        services: Iterable[LBService],
        *,
        invalid_groups: Mapping[str, str] | None = None,
        namespace: str = "lbroute",
        claims: Mapping[ObjectRef, Mapping[Family, IPAddress]] | None = None,
    ) -> Allocation:
        """What :func:`~allocator.ipam.assign.allocate` gives for these arguments."""
        inputs = _Inputs(
            groups=tuple(groups), invalid=dict(invalid_groups or {}), namespace=namespace
        )
        if claims or any(
            g.netbox is not None or any(p.external is not None for p in g.pools)
            for g in inputs.groups
        ):
            return self._plain("external", inputs, services, claims)
        services = services if isinstance(services, Sequence) else list(services)
        reason = None
        if self._inputs is None or self._inputs != inputs:
            reason = "first" if self._inputs is None else "groups"
            self._start(inputs)
        changes = self._diff(services)
        if changes is None:
            return self._plain("duplicate", inputs, services, None)
        if reason is None:
            self.incremental += 1
        else:
            self.full[reason] = self.full.get(reason, 0) + 1
        return self._pass(changes)

    # -- what changed --------------------------------------------------------------------------

    def _plain(
        self,
        reason: str,
        inputs: _Inputs,
        services: Iterable[LBService],
        claims: Mapping[ObjectRef, Mapping[Family, IPAddress]] | None,
    ) -> Allocation:
        """A full pass that keeps nothing: the next one starts afresh."""
        self.full[reason] = self.full.get(reason, 0) + 1
        self._start(None)
        return allocate(
            inputs.groups,
            services,
            invalid_groups=inputs.invalid,
            namespace=inputs.namespace,
            claims=claims,
        )

    def _diff(
        self, services: Sequence[LBService]
    ) -> list[tuple[ObjectRef, LBService | None]] | None:
        """The Services added, changed (None: deleted) since the last pass; None when two
        Services share a name."""
        known = self._by_id
        seen = {id(svc) for svc in services}
        if len(seen) != len(services):
            return None  # one object twice
        others: dict[ObjectRef, LBService] = {}
        for svc in [s for s in services if id(s) not in known]:
            if svc.ref in others:
                return None
            others[svc.ref] = svc
        changes: list[tuple[ObjectRef, LBService | None]] = []
        replaced = 0
        for ref, svc in others.items():
            entry = self._entries.get(ref)
            if entry is not None:
                if id(entry.svc) in seen:
                    return None
                replaced += 1
                if entry.svc == svc:  # read again, the same: nothing to do
                    del known[id(entry.svc)]
                    entry.svc = svc
                    known[id(svc)] = svc
                    continue
            changes.append((ref, svc))
        if len(seen) - len(others) + replaced < len(self._entries):
            changes += [
                (ref, None)
                for ref, entry in self._entries.items()
                if id(entry.svc) not in seen and ref not in others
            ]
        return changes

    # -- one pass --------------------------------------------------------------------------

    def _pass(self, changes: list[tuple[ObjectRef, LBService | None]]) -> Allocation:
        book = self._book
        book.undo()  # the book as step 1 left it
        self._touched = set()
        addresses: dict[IPAddress, None] = {}
        dirty: dict[ObjectRef, None] = {}
        for ref, svc in changes:
            self._replace(ref, svc, addresses)
            self._touched.add(ref)
            dirty[ref] = None
        for address in addresses:
            self._settle(address, dirty)
        for ref in dirty:
            entry = self._entries.get(ref)
            if entry is not None:
                self._decide(entry)
        return self._steps()

    def _replace(
        self, ref: ObjectRef, svc: LBService | None, addresses: dict[IPAddress, None]
    ) -> None:
        """Put ``svc`` in the place of the Service of ``ref`` (None: it is gone) as a
        claimant of the addresses it holds; what it held and holds is settled again."""
        old = self._entries.get(ref)
        if old is not None:
            del self._by_id[id(old.svc)]
            for address in old.svc.addresses:
                claimants = self._claimants[address]
                claimants.remove((old.age, old.svc))
                if not claimants:
                    del self._claimants[address]
                addresses[address] = None
            self._unlist(old)
        if svc is None:
            if old is not None:
                self._assign(old, None, ())
                del self._entries[ref]
            return
        entry = _Entry(svc=svc, age=(svc.created, svc.ref))
        if old is not None:
            entry.assignment, entry.held = old.assignment, old.held
        self._entries[ref] = entry
        self._by_id[id(svc)] = svc
        for address in svc.addresses:
            bisect.insort(self._claimants.setdefault(address, []), (entry.age, svc), key=_age)
            addresses[address] = None

    def _settle(self, address: IPAddress, dirty: dict[ObjectRef, None]) -> None:
        """Step 1 again for one address, over its claimants oldest first."""
        book = self._book
        book.release(address)
        found: list[Failure] = []
        for _, svc in self._claimants.get(address, ()):
            found.clear()
            kept = claim(address, svc, book, _into(found))
            outcome = (found[0] if found else None, kept)
            entry = self._entries[svc.ref]
            if entry.step1.get(address) != outcome:
                entry.step1[address] = outcome
                dirty[svc.ref] = None

    def _decide(self, entry: _Entry) -> None:
        """The Service's decision, and all that follows from it alone."""
        svc, book = entry.svc, self._book
        self._unlist(entry)
        step1 = tuple(f for a in svc.addresses if (f := entry.step1[a][0]) is not None)
        if not svc.ours:
            entry.failures = (step1, (), ())
            entry.plan, entry.active, entry.outside = None, False, ()
            if svc.allocated_from is not None:
                a = release(svc, book)
                self._assign(entry, a, a.addresses)
            else:
                self._assign(entry, None, svc.addresses)
        else:
            lost = {a for a in svc.addresses if not entry.step1[a][1]}
            plan = Plan(svc=svc, lost=lost)
            decided: list[Failure] = []
            inputs = self._inputs
            assert inputs is not None
            decide(
                plan,
                self._by_name,
                self._default,
                inputs.invalid,
                inputs.namespace,
                book,
                _into(decided),
            )
            entry.plan, entry.active = plan, _active(plan)
            group = plan.group
            entry.outside = (
                tuple(
                    Outside(ref=svc.ref, address=a, group=group.ref)
                    for a in plan.keep.values()
                    if book.in_group(a, group) is None
                )
                if group is not None and not plan.frozen
                else ()
            )
            requested: list[Failure] = []
            if not entry.active:  # step 2 reports only what the Service asks for alone
                done = _fresh(plan)
                request(done, {}, book, _into(requested))
                a = assignment(done, book)
                self._assign(entry, a, a.addresses)
            entry.failures = (step1, tuple(decided), tuple(requested))
        if entry.notable:
            bisect.insort(self._notable, entry.age)
            entry.listed = True

    def _unlist(self, entry: _Entry) -> None:
        if entry.listed:
            del self._notable[bisect.bisect_left(self._notable, entry.age)]
            entry.listed = False

    def _steps(self) -> Allocation:
        """Steps 2 and 3 for the active Services, then the pass's result."""
        book = self._book
        book.begin()
        entries = self._entries
        notable = [entries[age[1]] for age in self._notable]
        active = [(e, _fresh(e.plan)) for e in notable if e.active and e.plan is not None]
        second: dict[ObjectRef, list[Failure]] = {}
        third: list[Failure] = []
        for e, plan in active:
            request(plan, {}, book, _into(second.setdefault(e.svc.ref, [])))
        for _e, plan in active:
            rest(plan, book, _into(third))
        for e, plan in active:
            a = assignment(plan, book)
            self._assign(e, a, a.addresses)
        failures: list[Failure] = []
        for phase in range(2):
            for e in notable:
                failures += e.failures[phase]
        for e in notable:
            failures += second[e.svc.ref] if e.active else e.failures[2]
        failures += third
        outside = tuple(o for e in notable for o in e.outside)
        inputs = self._inputs
        assert inputs is not None
        pools, groups = tally(inputs.groups, book, self._in_use, outside)
        token, after = object(), self._token
        self._token = token
        changed = sorted(self._changed)
        at = self._refs
        delta = {
            r: (found.assignment if (found := entries.get(r)) else None) for r in self._touched
        }
        return Allocation(
            assignments=tuple(self._assignments),
            failures=tuple(failures),
            outside=outside,
            pools=pools,
            groups=groups,
            changed=tuple(self._assignments[bisect.bisect_left(at, r)] for r in changed),
            delta=Delta(token=token, after=after, services=delta),
        )

    # -- what is kept per Service --------------------------------------------------------------

    def _assign(self, entry: _Entry, a: Assignment | None, held: tuple[IPAddress, ...]) -> None:
        """Record the Service's assignment and what it holds for the counts."""
        ref = entry.svc.ref
        if a != entry.assignment:
            self._touched.add(ref)
        i = bisect.bisect_left(self._refs, ref)
        present = i < len(self._refs) and self._refs[i] == ref
        if a is None:
            if present:
                del self._refs[i], self._assignments[i]
        elif present:
            self._assignments[i] = a
        else:
            self._refs.insert(i, ref)
            self._assignments.insert(i, a)
        if a is not None and a.changed:
            self._changed.add(ref)
        else:
            self._changed.discard(ref)
        entry.assignment = a
        if held != entry.held:
            for address in entry.held:
                self._count(address, -1)
            for address in held:
                self._count(address, 1)
            entry.held = held

    def _count(self, address: IPAddress, by: int) -> None:
        n = self._held.get(address, 0) + by
        if n:
            self._held[address] = n
        else:
            del self._held[address]
        if (n == 0 and by < 0) or (n == by and by > 0):  # it stops, or starts, being held
            state = counted_in(self._book, address)
            if state is not None:
                self._in_use[state] = self._in_use.get(state, 0) + (1 if by > 0 else -1)


def _age(item: tuple[Age, LBService]) -> Age:
    return item[0]


def _into(found: list[Failure]) -> Fail:
    def fail(svc: LBService, reason: Reason, path: str, message: str) -> None:
        found.append(Failure(ref=svc.ref, reason=reason, path=path, message=message))

    return fail


def _fresh(plan: Plan | None) -> Plan:
    """A copy of a decision for steps 2 and 3 to fill in."""
    assert plan is not None
    return dataclasses.replace(
        plan, keep=dict(plan.keep), new={}, pending={}, lost=set(plan.lost), blocked=False
    )


def _active(plan: Plan) -> bool:
    """Whether steps 2 and 3 would touch the book for the Service: it asks for an address
    it does not keep, or lacks a family it asks for no address of (and no request of a
    family it may not have blocks it)."""
    if plan.frozen or plan.group is None:
        return False
    blocked = False
    requested: set[Family] = set()
    for address in plan.svc.requested:
        f = Family.of(address)
        if f not in plan.wanted:
            blocked = True
        elif plan.keep.get(f) != address:
            return True
        else:
            requested.add(f)
    return not blocked and any(f not in plan.keep and f not in requested for f in plan.wanted)
