"""NetBox as an external IPAM (:class:`~allocator.external.provider.Provider`), through
pynetbox.

A ServiceGroup's ``spec.ipam.netbox`` names NetBox, its token, the prefixes (Prefix
objects, in the global table or one VRF) and what each address object carries. A free
address comes from NetBox's own ``available-ips`` of a prefix, which NetBox hands out
under a lock: two allocators asking at once never get the same one. A requested address
is created as an IP address object, which NetBox refuses when another object has it
(``ENFORCE_GLOBAL_UNIQUE``, a VRF's ``enforce_unique``); it is looked up first so that
the refusal names what has it.

Every object lbroute creates carries the tag ``lbroute`` (and the group's tags), the
description ``lbroute[/<clusterName>]: <namespace>/<service>`` (how a restarted
allocator finds its own, :func:`lbroute.model.netbox.owner_of`), status ``active``, the
role (``anycast`` for a routed group, ``vip`` for a local one, unless the group says),
the tenant and the DNS name when the group sets them.

Requests time out after :data:`TIMEOUT` seconds; a connection error, a timeout or a
5xx answer is :class:`~allocator.external.provider.Unavailable`, any other refusal
:class:`~allocator.external.provider.Refused` with NetBox's own words.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pynetbox
import requests

from allocator.external.provider import (
    Exhausted,
    IpamError,
    Owner,
    Record,
    Refused,
    Unavailable,
)
from lbroute.model.api import Announce, Family, ServiceGroup
from lbroute.model.fields import IPAddress, IPNetwork
from lbroute.model.netbox import (
    TAG,
    NetBoxSource,
    OnRelease,
    Role,
    description,
    dns_name,
    owner_of,
)

log = logging.getLogger(__name__)

TIMEOUT = 10.0
"""Seconds a NetBox request may take (connect and each read)."""


class _Session(requests.Session):
    """A session whose requests time out unless told otherwise."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


class NetBoxProvider:
    """One ServiceGroup's NetBox prefixes."""

    def __init__(
        self, group: ServiceGroup, token: str, *, timeout: float = TIMEOUT, dry_run: bool = False
    ) -> None:
        assert group.netbox is not None
        self.group = group
        self.source: NetBoxSource = group.netbox
        self.dry_run = dry_run
        """Ask, never write: :meth:`claim` returns the address NetBox would give."""
        self.api = pynetbox.api(self.source.api_url, token=token)
        self.api.http_session = _Session(timeout)
        self._prefixes: dict[IPNetwork, Any] | None = None
        self._vrf_id: int | None = None
        self._tags_checked = False
        self._owned: dict[tuple[Owner, Family], IPAddress] | None = None
        """(Service, family) -> its active address in the prefixes (:meth:`_mine`)."""
        self._given: set[IPAddress] = set()
        """Addresses a dry run gave already (NetBox still lists them as free)."""

    @property
    def name(self) -> str:
        return f"NetBox at {self.source.api_url}"

    # -- the Provider interface ---------------------------------------------------------------

    def claim(self, family: Family, owner: Owner, address: IPAddress | None) -> IPAddress:
        with self._errors():
            mine = self._mine(owner, family)
            if mine is not None and (address is None or mine == address):
                return mine
            if address is not None:
                return self._reserve(address, owner)
            for net, prefix in self._prefix_objects().items():
                if Family.of(net.network_address) is not family or net in self.source.retained:
                    continue
                got = self._next_free(prefix, owner)
                if got is not None:
                    return got
            raise Exhausted(
                f"{self.name} has no free {family} address left in "
                + ", ".join(str(n) for n in self.source.prefixes if _family(n) is family)
            )

    def claim_free(self, family: Family, owners: Sequence[Owner]) -> dict[Owner, IPAddress]:
        with self._errors():
            given: dict[Owner, IPAddress] = {}
            rest = []
            for owner in owners:
                mine = self._mine(owner, family)
                if mine is not None:
                    given[owner] = mine
                else:
                    rest.append(owner)
            for net, prefix in self._prefix_objects().items():
                if Family.of(net.network_address) is not family or net in self.source.retained:
                    continue
                while rest:
                    got = self._next_free_many(prefix, rest)
                    if not got:
                        break
                    given.update(got)
                    rest = [o for o in rest if o not in got]
            return given

    def release(self, record: Record) -> None:
        if self.dry_run:
            return
        with self._errors():
            obj = self.api.ipam.ip_addresses.get(int(record.ident))
            if obj is None:
                return
            now = self._record(obj)
            if now.owner != record.owner or now.address != record.address or not now.active:
                log.info("%s: %s changed since it was read; not released", self.name, now.shown)
                return
            if self._owned is not None and record.owner is not None:
                self._owned.pop((record.owner, Family.of(record.address)), None)
            if self.source.on_release is OnRelease.DEPRECATE:
                obj.update(
                    {"status": "deprecated", "description": f"released by {record.shown}"[:200]}
                )
            else:
                obj.delete()

    def adopt(self, record: Record, owner: Owner) -> None:
        if self.dry_run:
            return
        with self._errors():
            obj = self.api.ipam.ip_addresses.get(int(record.ident))
            if obj is None or self._record(obj).owner != record.owner:
                return
            change = {"description": description(self.source.cluster, owner.namespace, owner.name)}
            if self.source.dns_name is not None:
                name = dns_name(
                    self.source.dns_name,
                    name=owner.name,
                    namespace=owner.namespace,
                    group=self.group.name,
                )
                if name is not None:
                    change["dns_name"] = name
            obj.update(change)
            if self._owned is not None:
                if record.owner is not None:
                    self._owned.pop((record.owner, Family.of(record.address)), None)
                self._owned[(owner, Family.of(record.address))] = record.address

    def restore(self, address: IPAddress, owner: Owner) -> None:
        if self.dry_run:
            return
        with self._errors():
            self._reserve(address, owner, again=True)

    def records(self) -> Sequence[Record]:
        with self._errors():
            out: list[Record] = []
            for net in self._prefix_objects():
                for obj in self.api.ipam.ip_addresses.filter(
                    parent=str(net), limit=1000, **self._vrf_filter()
                ):
                    out.append(self._record(obj))
            self._index(out)
            return out

    # -- NetBox ---------------------------------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """NetBox's failures as the provider's errors, in words for the user."""
        try:
            yield
        except pynetbox.RequestError as exc:
            status = exc.req.status_code
            if status >= 500:
                raise Unavailable(f"{self.name} answered {status}: {_words(exc)}") from None
            if status == 404:
                self._prefixes = None  # a prefix may have been deleted: look them up again
            raise Refused(f"{self.name} refused ({status}): {_words(exc)}") from None
        except pynetbox.ContentError:
            raise Unavailable(f"{self.name} sent an answer that is not NetBox's") from None
        except requests.RequestException as exc:
            raise Unavailable(f"{self.name} did not answer: {type(exc).__name__}") from None
        except IpamError:
            raise
        except Exception as exc:  # pynetbox or NetBox doing what no one expected
            # Only the type: an exception's text may quote the request, token included.
            log.error("%s: unexpected %s", self.name, type(exc).__name__)
            raise Unavailable(f"{self.name}: unexpected {type(exc).__name__}") from None

    def _vrf_filter(self) -> dict[str, Any]:
        if self.source.vrf is None:
            return {"vrf_id": "null"}
        if self._vrf_id is None:
            found = list(self.api.ipam.vrfs.filter(name=self.source.vrf))
            if len(found) != 1:
                how = "no VRF" if not found else f"{len(found)} VRFs"
                raise Refused(
                    f"{self.name} has {how} named {self.source.vrf!r}; "
                    "spec.ipam.netbox.vrf must name exactly one"
                )
            self._vrf_id = int(found[0].id)
        return {"vrf_id": self._vrf_id}

    def _prefix_objects(self) -> dict[IPNetwork, Any]:
        """The group's Prefix objects, looked up once (again after a 404)."""
        if self._prefixes is None:
            found: dict[IPNetwork, Any] = {}
            missing = []
            for net in self.source.every_prefix:
                prefix = self._first(
                    self.api.ipam.prefixes.filter(prefix=str(net), **self._vrf_filter())
                )
                if prefix is None:
                    missing.append(str(net))
                else:
                    found[net] = prefix
            if missing:
                where = f"VRF {self.source.vrf!r}" if self.source.vrf else "the global table"
                raise Refused(
                    f"{self.name} has no prefix {', '.join(missing)} in {where}; create it in "
                    "NetBox or fix spec.ipam.netbox.prefixes"
                )
            self._prefixes = found
        return self._prefixes

    def select(self) -> list[IPNetwork]:
        selector = self.source.selector
        assert selector is not None
        with self._errors():
            query: dict[str, Any] = {"status": "active", **self._vrf_filter()}
            if selector.tags:
                query["tag"] = list(selector.tags)  # NetBox: every tag, not any of them
            if selector.tenant is not None:
                query["tenant"] = selector.tenant
            if selector.role is not None:
                query["role"] = selector.role
            # A tag, tenant or role NetBox does not know is a 400: Refused, in its words.
            found = self.api.ipam.prefixes.filter(**query)
            return [ipaddress.ip_network(str(p.prefix)) for p in found]

    @staticmethod
    def _first(found: Any) -> Any:
        return next(iter(found), None)

    def _mine(self, owner: Owner, family: Family) -> IPAddress | None:
        """The active address already recorded for ``owner`` in ``family``, if any: from
        an index of the prefixes' records, listed once (then kept up to date by this
        provider's own claims and by :meth:`records`), so a claim costs one request."""
        if self._owned is None:
            self.records()
        assert self._owned is not None
        return self._owned.get((owner, family))

    def _index(self, records: Sequence[Record]) -> None:
        self._owned = {
            (r.owner, Family.of(r.address)): r.address
            for r in records
            if r.owner is not None and r.active
        }

    def _made(self, address: IPAddress, owner: Owner) -> None:
        if self._owned is not None:
            self._owned[(owner, Family.of(address))] = address

    def _body(self, owner: Owner) -> dict[str, Any]:
        s = self.source
        self._ensure_tags()
        body: dict[str, Any] = {
            "status": "active",
            "description": description(s.cluster, owner.namespace, owner.name),
            "tags": [{"slug": t} for t in s.tags],
        }
        role = s.role or (Role.VIP if self.group.announce is Announce.LOCAL else Role.ANYCAST)
        if role is not Role.NONE:
            body["role"] = role.value
        if s.tenant is not None:
            body["tenant"] = {"slug": s.tenant}
        if s.dns_name is not None:
            name = dns_name(
                s.dns_name, name=owner.name, namespace=owner.namespace, group=self.group.name
            )
            if name is not None:
                body["dns_name"] = name
        if s.vrf is not None:
            body["vrf"] = self._vrf_filter()["vrf_id"]
        return body

    def _ensure_tags(self) -> None:
        """Create lbroute's tag when missing (the group's other tags must exist)."""
        if self._tags_checked:
            return
        for slug in self.source.tags:
            if self.api.extras.tags.get(slug=slug) is not None:
                continue
            if slug != self.source.tags[0]:
                raise Refused(
                    f"{self.name} has no tag {slug!r}; create it in NetBox or remove it from "
                    "spec.ipam.netbox.tags"
                )
            if not self.dry_run:
                try:
                    self.api.extras.tags.create(
                        {"name": slug, "slug": slug, "description": "Addresses lbroute allocated"}
                    )
                except pynetbox.RequestError:
                    # Another allocator made it at the same moment (NetBox answers that
                    # with a 400 or a 500); anything else is raised on the next line.
                    if self.api.extras.tags.get(slug=slug) is None:
                        raise
        self._tags_checked = True

    def _next_free(self, prefix: Any, owner: Owner) -> IPAddress | None:
        if self.dry_run:
            free = prefix.available_ips.list(limit=len(self._given) + 1)
            for item in free:
                address = _address(str(item.address))
                if address not in self._given:
                    self._given.add(address)
                    return address
            return None
        try:
            made = prefix.available_ips.create(self._body(owner))
        except pynetbox.AllocationError:  # 409: nothing left in this prefix
            return None
        if isinstance(made, list):
            made = made[0] if made else None
        if made is None:
            return None
        address = _address(made.address)
        self._made(address, owner)
        log.info("%s: recorded %s for %s", self.name, made.address, owner)
        return address

    def _next_free_many(self, prefix: Any, owners: list[Owner]) -> dict[Owner, IPAddress]:
        """Free addresses of ``prefix`` for as many of ``owners`` as it has room for, in
        one request (NetBox gives all of a batch or none: when it has fewer, it is asked
        how many it has, and then for that many)."""
        if len(owners) == 1 or self.dry_run:
            one = self._next_free(prefix, owners[0])
            return {owners[0]: one} if one is not None else {}
        bodies = [self._body(o) for o in owners]
        try:
            made = prefix.available_ips.create(bodies)
        except pynetbox.AllocationError:
            room = len(list(prefix.available_ips.list(limit=len(owners))))
            if room == 0:
                return {}
            return self._next_free_many(prefix, owners[:room])
        if not isinstance(made, list):
            made = [made]
        by_text = {description(self.source.cluster, o.namespace, o.name): o for o in owners}
        given: dict[Owner, IPAddress] = {}
        for obj in made:
            owner = by_text.get(str(obj.description))
            if owner is not None:
                address = _address(str(obj.address))
                given[owner] = address
                self._made(address, owner)
        log.info("%s: recorded %d addresses in %s", self.name, len(given), prefix)
        return given

    def _reserve(self, address: IPAddress, owner: Owner, *, again: bool = False) -> IPAddress:
        """Record ``address`` for ``owner``: a requested one (in a prefix new addresses
        come from), or ``again`` one a Service holds (in any of the group's prefixes)."""
        within = self.source.every_prefix if again else self.source.prefixes
        net = next((n for n in within if address in n), None)
        if net is None:
            raise Refused(
                f"{address} is in none of the NetBox prefixes {self.group.ref} takes new "
                "addresses from"
            )
        for obj in self.api.ipam.ip_addresses.filter(address=str(address), **self._vrf_filter()):
            record = self._record(obj)
            if record.owner == owner and record.active:
                return address
            shown = record.shown
            raise Refused(f"{address} is taken in {self.name} by {shown} (object {obj.id})")
        if self.dry_run:
            return address
        body = self._body(owner)
        body["address"] = f"{address}/{net.prefixlen}"
        self.api.ipam.ip_addresses.create(body)
        self._made(address, owner)
        log.info("%s: recorded %s for %s", self.name, address, owner)
        return address

    def _record(self, obj: Any) -> Record:
        """What ``obj`` is to lbroute: its own (this cluster's description, the lbroute
        tag and assigned to no interface: a copy made with NetBox's Clone keeps the
        description but not the tag) or anything else."""
        address = _address(str(obj.address))
        text = str(obj.description or "")
        assigned = getattr(obj, "assigned_object", None)
        tags = {str(getattr(t, "slug", t)) for t in getattr(obj, "tags", None) or ()}
        owner = owner_of(self.source.cluster, text) if TAG in tags and not assigned else None
        status = getattr(obj.status, "value", obj.status)
        shown = repr(text) if text else f"an object assigned to {assigned}" if assigned else ""
        return Record(
            address=address,
            ident=str(obj.id),
            owner=Owner(namespace=owner[0], name=owner[1]) if owner else None,
            shown=shown or f"IP address {obj.address}",
            active=str(status) != "deprecated",
        )


def _address(text: str) -> IPAddress:
    """``198.51.100.7/24`` -> 198.51.100.7."""
    return ipaddress.ip_interface(text).ip


def _family(net: IPNetwork) -> Family:
    return Family.of(net.network_address)


def _words(exc: pynetbox.RequestError) -> str:
    """NetBox's error text, on one line and cut short."""
    text = " ".join(str(exc.error).split())
    return text[:300]
