"""Who takes part in the election: each node's membership Lease, and whether it is alive.

Each agent publishes a Lease of its own, ``lbroute-node-<node>`` in the install
namespace (coordination.k8s.io/v1, like kubelet's node leases): holderIdentity the node,
leaseDurationSeconds, renewTime, the label :data:`MEMBER_LABEL`, and two annotations:
the subnets it can serve (``lbroute.io/local-subnets``) and the local addresses it
holds (``lbroute.io/local-holding``). :class:`Members` writes ours and reads everyone's
through a :class:`LeaseStore` (the API: lbroute.kube.leases; files in a directory the
agents share: nodeagent.local.leasedir), and says who is alive:

- another node is alive while its Lease keeps changing: from when we saw it change (its
  renewTime or resourceVersion), for its leaseDurationSeconds, measured on our own
  monotonic clock, as client-go judges a leader's Lease: no other node's clock is
  trusted. A Lease seen for the first time counts as just renewed, so a starting agent
  gives a stale Lease its whole duration before it counts that node gone. A change is
  noticed when :meth:`Members.members` is called, so a node may count as alive up to
  one call later than it could: late, never early;
- we are alive only while the store shows back one of our own renewals sent less than
  ``renew_deadline`` (shorter than the duration) ago. A write that fails and a view of
  the others that stopped following (a watch gone quiet while writes still work) both
  end our membership before any other node may count us gone;
- a Lease deleted is a node gone at once: a graceful stop (:meth:`Members.withdraw`)
  hands its addresses over without making the others wait for it to expire;
- a Lease that does not read as one (another node's, hostile or broken: a name that is
  not its node's, a bad annotation, an impossible duration) is reported once, as a
  :class:`~lbroute.model.errors.Problem` and a log line, and left out; it never stops
  the others from being read.

Times are arguments (``now``, on the caller's monotonic clock) as in
nodeagent.scheduler, so the rules are tested with a clock of the test's own. The
renewTime written is wall-clock text that only marks a change; nobody computes with it.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from lbroute.kube.writes import micro_time
from lbroute.model.errors import LbrouteError, ObjectRef, Problem, Severity, quote
from lbroute.model.fields import (
    NAME_RE,
    IPAddress,
    IPNetwork,
    mapping_at,
    name_text,
    parse_ip,
    parse_network,
)
from lbroute.model.vocabulary import (
    LEASE,
    LEASE_API_VERSION,
    LOCAL_HOLDING_ANNOTATION,
    LOCAL_SUBNETS_ANNOTATION,
    MEMBER_LABEL,
    MEMBER_LABEL_VALUE,
    MEMBER_LEASE_PREFIX,
)

log = logging.getLogger(__name__)

JSON = dict[str, Any]

MAX_DURATION = 3600
"""The longest leaseDurationSeconds read from another node's Lease (an hour): a longer
one would keep a dead node in the election for longer than anyone means."""
MAX_ENTRIES = 10_000
"""The most subnets, or addresses held, one Lease may list."""
_NAME_MAX = 253
_TIME_MAX = 40
_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class Membership:
    """One node as the election sees it: alive or not (judged by the reader, see the
    module docstring; :meth:`Members.publish` ignores it), the subnets it has an
    interface on and the local addresses it holds now."""

    alive: bool = True
    subnets: frozenset[IPNetwork] = frozenset()
    holding: frozenset[IPAddress] = frozenset()

    def serves(self, address: IPAddress) -> bool:
        """Has an interface on a subnet that holds ``address``."""
        return any(address in net for net in self.subnets)


def lease_name(node: str) -> str:
    """The name of ``node``'s membership Lease: the prefix and the node's name; a name
    that would be too long for an object is cut and ends in a hash of the whole."""
    name = MEMBER_LEASE_PREFIX + node
    if len(name) <= _NAME_MAX:
        return name
    digest = hashlib.blake2b(node.encode(), digest_size=8).hexdigest()
    return f"{name[: _NAME_MAX - len(digest) - 1].rstrip('.-')}-{digest}"


def _network_key(net: IPNetwork) -> tuple[int, int, int]:
    return net.version, int(net.network_address), net.prefixlen


def _address_key(address: IPAddress) -> tuple[int, int]:
    return address.version, int(address)


def encode(
    node: str, own: Membership, *, namespace: str, duration: int, renewed: datetime.datetime
) -> JSON:
    """``node``'s membership Lease, publishing ``own``, renewed at ``renewed``."""
    return {
        "apiVersion": LEASE_API_VERSION,
        "kind": LEASE,
        "metadata": {
            "name": lease_name(node),
            "namespace": namespace,
            "labels": {MEMBER_LABEL: MEMBER_LABEL_VALUE},
            "annotations": {
                LOCAL_SUBNETS_ANNOTATION: ",".join(
                    str(n) for n in sorted(own.subnets, key=_network_key)
                ),
                LOCAL_HOLDING_ANNOTATION: ",".join(
                    str(a) for a in sorted(own.holding, key=_address_key)
                ),
            },
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": duration,
            "renewTime": micro_time(renewed),
        },
    }


@dataclass(frozen=True, kw_only=True)
class Record:
    """A membership Lease as read: whose it is, how long it lasts, when and in which
    version it was renewed (a change marker), and what it publishes."""

    node: str
    duration: int
    renewed: datetime.datetime
    version: str
    """The resourceVersion ('' for a file)."""
    membership: Membership


def decode(obj: Mapping[str, Any]) -> Record | Problem | None:
    """The membership a Lease publishes; a Problem naming the field when it is not one
    (the Lease is to be ignored); None when it is held by no one (handed back)."""
    meta, spec = mapping_at(obj, "metadata"), mapping_at(obj, "spec")
    name = meta.get("name")
    ref = ObjectRef(
        kind=LEASE, namespace=name_text(meta.get("namespace"), ""), name=name_text(name, "")
    )

    def problem(path: str, message: str) -> Problem:
        return Problem(
            severity=Severity.ERROR,
            ref=ref,
            path=path,
            message=f"{message}; the Lease is ignored",
        )

    holder = spec.get("holderIdentity")
    if holder is None or holder == "":
        return None
    if not isinstance(holder, str) or len(holder) > _NAME_MAX or not NAME_RE.fullmatch(holder):
        return problem(
            "spec.holderIdentity", f"{quote(holder)} is not valid; expected a node's name"
        )
    if name != lease_name(holder):
        return problem(
            "metadata.name",
            f"{quote(name)} is not the membership Lease of node {quote(holder)}, which is "
            f"named {quote(lease_name(holder))}",
        )
    duration = spec.get("leaseDurationSeconds")
    if (
        not isinstance(duration, int)
        or isinstance(duration, bool)
        or not 1 <= duration <= MAX_DURATION
    ):
        return problem(
            "spec.leaseDurationSeconds",
            f"{quote(duration)} is not valid; expected whole seconds from 1 to {MAX_DURATION}",
        )
    renewed = _time(spec.get("renewTime"))
    if renewed is None:
        return problem(
            "spec.renewTime",
            f"{quote(spec.get('renewTime'))} is not valid; expected a time such as "
            "2026-01-02T03:04:05.000000Z",
        )
    annotations = mapping_at(meta, "annotations")
    subnets = _entries(annotations, LOCAL_SUBNETS_ANNOTATION, parse_network)
    if isinstance(subnets, str):
        return problem(
            f"metadata.annotations[{LOCAL_SUBNETS_ANNOTATION}]",
            f"{subnets}; expected networks such as 192.0.2.0/24, comma-separated",
        )
    holding = _entries(annotations, LOCAL_HOLDING_ANNOTATION, parse_ip)
    if isinstance(holding, str):
        return problem(
            f"metadata.annotations[{LOCAL_HOLDING_ANNOTATION}]",
            f"{holding}; expected addresses such as 192.0.2.10, comma-separated",
        )
    version = meta.get("resourceVersion")
    return Record(
        node=holder,
        duration=duration,
        renewed=renewed,
        version=version if isinstance(version, str) else "",
        membership=Membership(alive=False, subnets=subnets, holding=holding),
    )


def _time(value: Any) -> datetime.datetime | None:
    """A MicroTime (or Time) as the API writes it, in UTC; None when it is not one."""
    if not isinstance(value, str) or len(value) > _TIME_MAX or not value[:1].isdigit():
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return when.astimezone(datetime.UTC)


def _entries(
    annotations: Mapping[str, Any], key: str, parse: Callable[[Any], _T]
) -> frozenset[_T] | str:
    """The comma-separated values of one annotation (absent or empty: none), or why
    they cannot be read."""
    raw = annotations.get(key, "")
    if not isinstance(raw, str):
        return f"{quote(raw)} is not a string"
    if not raw.strip():
        return frozenset()
    parts = raw.split(",")
    if len(parts) > MAX_ENTRIES:
        return f"lists {len(parts)} values, more than the {MAX_ENTRIES} allowed"
    found: set[_T] = set()
    for part in parts:
        try:
            found.add(parse(part.strip()))
        except (TypeError, ValueError):
            return f"{quote(part.strip())} is not valid"
    return frozenset(found)


class LeaseStore(Protocol):
    """Where the membership Leases live: the API (lbroute.kube.leases.KubeLeaseStore) or
    a directory of files (nodeagent.local.leasedir.DirectoryLeaseStore)."""

    def write(self, lease: JSON) -> None:
        """Create or replace our own Lease (named in its metadata); raises
        :class:`~lbroute.model.errors.LbrouteError` or OSError when it could not."""

    def read_all(self) -> tuple[list[JSON], list[Problem]] | None:
        """Every membership Lease as last seen, and a Problem for each one that could
        not be read as an object; None while the store has not read them yet."""

    def delete(self, name: str) -> None:
        """Delete our Lease ``name`` (nothing when it is not there); raises like
        :meth:`write`."""


@dataclass(frozen=True)
class _Seen:
    marker: tuple[datetime.datetime, str]
    at: float


class Members:
    """Our membership, published through ``store``, and everyone's as judged on our clock.

    A loop calls :meth:`publish` once per renew interval and :meth:`members` whenever it
    elects, and :meth:`withdraw` when it stops (module docstring: the rules).
    ``duration`` is our Lease's leaseDurationSeconds, ``renew_deadline`` (shorter) how
    long after the newest renewal the store showed back we still count as alive.
    """

    def __init__(
        self,
        store: LeaseStore,
        *,
        node: str,
        namespace: str,
        duration: int,
        renew_deadline: float,
    ) -> None:
        if not 0 < renew_deadline < duration:
            raise ValueError(
                f"renew_deadline {renew_deadline} must be above 0 and below the lease "
                f"duration {duration}"
            )
        self.store = store
        self.node = node
        self.namespace = namespace
        self.duration = duration
        self.renew_deadline = renew_deadline
        self.problems: tuple[Problem, ...] = ()
        """What was wrong with the Leases at the last :meth:`members`."""
        self._published: Membership | None = None
        self._renewed: datetime.datetime | None = None
        self._sent: dict[datetime.datetime, float] = {}
        """Our renewals not yet older than the deadline: renewTime -> when sent."""
        self._shown: float | None = None
        """When the newest renewal of ours that the store showed back was sent."""
        self._seen: dict[str, _Seen] = {}
        self._failing = False
        self._unreadable = False
        self.readable = False
        """The last :meth:`members` read the Leases (False: the store failed, or has
        not read them yet)."""

    @property
    def name(self) -> str:
        return lease_name(self.node)

    def publish(self, own: Membership, now: float) -> bool:
        """Renew our Lease, publishing ``own``'s subnets and holdings; True when written."""
        wall = datetime.datetime.now(datetime.UTC)
        if self._renewed is not None and wall <= self._renewed:  # the wall clock stepped
            wall = self._renewed + datetime.timedelta(microseconds=1)
        lease = encode(
            self.node, own, namespace=self.namespace, duration=self.duration, renewed=wall
        )
        try:
            self.store.write(lease)
        except (LbrouteError, OSError) as exc:
            if not self._failing:
                log.warning("could not renew the membership lease %s: %s", self.name, exc)
            self._failing = True
            return False
        if self._failing or self._published is None:
            log.info("membership lease %s written", self.name)
        self._failing = False
        self._published, self._renewed = own, wall
        self._sent = {t: at for t, at in self._sent.items() if now - at < self.renew_deadline}
        self._sent[wall] = now
        return True

    def members(self, now: float) -> dict[str, Membership]:
        """Every node with a membership Lease (ours included), alive or not at ``now``.

        While the store has not read the Leases yet, only ours, not alive: no election
        may be made without knowing the others."""
        try:
            seen = self.store.read_all()
        except (LbrouteError, OSError) as exc:
            if not self._unreadable:
                log.warning("could not read the membership leases: %s", exc)
            self._unreadable = True
            seen = None
        else:
            self._unreadable = False
        self.readable = seen is not None
        found: dict[str, Membership] = {}
        if seen is not None:
            leases, problems = seen
            found = self._judge(leases, list(problems), now)
        own = self._published or Membership()
        shown = self._shown
        alive = seen is not None and shown is not None and now - shown < self.renew_deadline
        found[self.node] = replace(own, alive=alive)
        return found

    def _judge(
        self, leases: Iterable[JSON], problems: list[Problem], now: float
    ) -> dict[str, Membership]:
        found: dict[str, Membership] = {}
        for lease in leases:
            record = decode(lease)
            if record is None:
                continue
            if isinstance(record, Problem):
                problems.append(record)
                continue
            if record.node == self.node:
                sent = self._sent.get(record.renewed)
                if sent is not None and (self._shown is None or sent > self._shown):
                    self._shown = sent
                continue
            marker = (record.renewed, record.version)
            prior = self._seen.get(record.node)
            if prior is None or prior.marker != marker:
                prior = self._seen[record.node] = _Seen(marker, now)
            found[record.node] = replace(record.membership, alive=now - prior.at < record.duration)
        for gone in set(self._seen) - set(found):
            del self._seen[gone]
        for problem in problems:
            if problem not in self.problems:
                log.warning("%s", problem)
        self.problems = tuple(problems)
        return found

    def withdraw(self) -> None:
        """Delete our Lease (a graceful stop): the others count us gone at once."""
        self._published, self._renewed, self._shown = None, None, None
        self._sent.clear()
        try:
            self.store.delete(self.name)
        except (LbrouteError, OSError) as exc:
            log.warning(
                "could not delete the membership lease %s (it expires by itself within %ss): %s",
                self.name,
                self.duration,
                exc,
            )
            return
        log.info("membership lease %s deleted", self.name)
