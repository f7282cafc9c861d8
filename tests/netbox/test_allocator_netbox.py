"""The allocator with ServiceGroups backed by a real NetBox (tests/netbox/server.py) and
the fake Kubernetes API (tests/fakeapi.py): allocate, release, requested addresses free
and taken, exhaustion, dual-stack from two prefixes, a sharing key, NetBox down during
allocation and during release, records edited or deleted by hand, an allocator restart
(no renumbering, no second record), two allocators at once, and ``lbroute allocate``.

NetBox is reached through a loopback TCP relay (:class:`Relay`) that a test can cut,
so "NetBox down" is a refused connection while NetBox itself keeps running.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pynetbox
import pytest
import yaml
from click.testing import CliRunner

from allocator.external import NetBoxProvider, Owner
from lbroute.cli import main as cli_main
from lbroute.kube.serving import serve
from lbroute.model.api import Family
from lbroute.model.servicegroup import parse_service_group
from tests.fakeapi import FakeAPI
from tests.test_allocator import NS, Running, events, ips, wait
from tests.test_ipam import service
from tests.test_netbox_selector import selector_group
from tests.test_netbox_unit import nb_group

Obj = dict[str, Any]
PREFIX4 = "198.51.100.0/29"  # .1 to .6
PREFIX6 = "2001:db8:77::/124"


class Relay:
    """A loopback TCP relay to NetBox that can be cut (connections refused) and mended."""

    def __init__(self, target: str) -> None:
        host, _, port = target.split("//", 1)[1].partition(":")
        self.target = (host, int(port.split("/")[0]))
        self.listener: socket.socket | None = None
        self.port = 0
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        self.port = s.getsockname()[1]
        s.listen(64)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        if self.listener is not None:
            with contextlib.suppress(OSError):  # wakes the accept() blocked on it
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        with self.lock:
            for c in self.conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def nb(netbox_clean: Any) -> Any:
    """pynetbox on the test NetBox, emptied, with the prefixes the tests use."""
    api = pynetbox.api(netbox_clean.url, token=netbox_clean.token)
    api.ipam.prefixes.create({"prefix": PREFIX4, "status": "active"})
    api.ipam.prefixes.create({"prefix": PREFIX6, "status": "active"})
    api.tenancy.tenants.create({"name": "Acme", "slug": "acme"})
    return api


@pytest.fixture
def relay(netbox: Any) -> Iterator[Relay]:
    r = Relay(netbox.url)
    yield r
    r.down()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeAPI]:
    with FakeAPI(namespaces=("default", NS)) as api:
        yield api


def token_secret(netbox: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "netbox-token", "namespace": NS},
        # As `echo TOKEN > f; kubectl create secret --from-file` makes it: a newline.
        "stringData": {"token": netbox.token + "\n"},
    }


@pytest.fixture
def start(cluster: FakeAPI, tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def go(identity: str = "a", **kwargs: Any) -> Running:
        kwargs.setdefault("ipam_resync", 1.0)
        # Leases long enough not to be lost while the machine is busy (CI runs these
        # tests beside the unit tests); a clean stop hands the Lease back at once.
        kwargs.setdefault("lease_duration", 8.0)
        kwargs.setdefault("renew_deadline", 5.0)
        r = Running(cluster, tmp_path, identity, **kwargs)
        started.append(r)
        return r

    yield go
    for r in started:
        if r.thread.is_alive():
            r.end()


def deprecating(running: Running) -> bool:
    """Whether the allocator's provider for the group releases by marking."""
    state = running.allocator.broker._groups.get("nb")
    netbox = state.group.netbox if state is not None and state.group is not None else None
    return netbox is not None and netbox.on_release.value == "deprecate"


def records(api: Any, **filters: Any) -> dict[str, Any]:
    """NetBox's IP address objects, by address (no prefix length)."""
    return {
        str(ipaddress.ip_interface(o.address).ip): o
        for o in api.ipam.ip_addresses.filter(**filters)
    }


def group_with(relay: Relay, **netbox: Any) -> Obj:
    netbox.setdefault("prefixes", [PREFIX4])
    return nb_group("nb", url=relay.url, **netbox)


def condition(cluster: FakeAPI, kind: str = "ExternalIPAM") -> Obj:
    g = cluster.get("servicegroups", "nb", NS) or {}
    return next(
        (c for c in (g.get("status") or {}).get("conditions") or () if c["type"] == kind), {}
    )


# -- allocate and release ---------------------------------------------------------------------


def test_a_service_gets_the_next_free_netbox_address_recorded_as_lbroutes(
    netbox: Any, nb: Any, relay: Relay, cluster: FakeAPI, start: Callable[..., Running]
) -> None:
    nb.ipam.ip_addresses.create({"address": "198.51.100.1/29", "description": "gateway"})
    cluster.put_all(
        [
            group_with(relay, tenant="acme", tags=[], dnsName="{name}.{namespace}.lb.example.com"),
            token_secret(netbox),
            service("web", namespace="shop"),
        ]
    )
    start()
    assert wait(lambda: ips(cluster, "web", "shop"), "an address") == ["198.51.100.2"]
    rec = records(nb)["198.51.100.2"]
    assert rec.address == "198.51.100.2/29"  # the prefix's length
    assert rec.description == "lbroute: shop/web"
    assert [t.slug for t in rec.tags] == ["lbroute"]
    assert rec.tenant.slug == "acme"
    assert rec.dns_name == "web.shop.lb.example.com"
    assert rec.role.value == "anycast" and rec.status.value == "active"
    svc = cluster.get("services", "web", "shop") or {}
    assert svc["metadata"]["annotations"]["lbroute.io/allocated-from"] == f"nb:{PREFIX4}"
    wait(lambda: condition(cluster).get("reason") == "InSync", "ExternalIPAM InSync")
    assert events(cluster, "AddressAssigned", "web")


def test_a_deleted_service_gives_its_record_back_or_marks_it(
    netbox: Any, nb: Any, relay: Relay, cluster: FakeAPI, start: Callable[..., Running]
) -> None:
    cluster.put_all([group_with(relay), token_secret(netbox), service("a"), service("b")])
    running = start()
    wait(lambda: ips(cluster, "a") and ips(cluster, "b"), "both addressed")
    assert set(records(nb)) == {"198.51.100.1", "198.51.100.2"}
    cluster.remove("services", "a")
    wait(lambda: set(records(nb)) == {"198.51.100.2"}, "a's record deleted")
    # With onRelease: deprecate, the object stays, marked. The allocator must have seen
    # the group's new setting before the Service goes: ServiceGroups and Services come
    # by separate watches, so a deletion right after the edit may be seen first (and
    # then released as the group said until then: 2 runs in 10 failed without this).
    cluster.put_all([group_with(relay, onRelease="deprecate")])
    wait(lambda: deprecating(running), "the group's onRelease seen by the allocator")
    cluster.remove("services", "b")
    wait(
        lambda: (
            records(nb).get("198.51.100.2") is not None
            and records(nb)["198.51.100.2"].status.value == "deprecated"
        ),
        "b's record deprecated",
    )
    assert records(nb)["198.51.100.2"].description.startswith("released by")


def test_requested_addresses_are_reserved_when_free_and_refused_when_taken(
    netbox: Any, nb: Any, relay: Relay, cluster: FakeAPI, start: Callable[..., Running]
) -> None:
    nb.ipam.ip_addresses.create({"address": "198.51.100.5/29", "description": "core router"})
    cluster.put_all(
        [
            group_with(relay),
            token_secret(netbox),
            service("free", addresses="198.51.100.4"),
            service("taken", addresses="198.51.100.5"),
        ]
    )
    start()
    assert wait(lambda: ips(cluster, "free"), "the requested address") == ["198.51.100.4"]
    assert records(nb)["198.51.100.4"].description == "lbroute: default/free"
    failed = wait(lambda: events(cluster, "AllocationFailed", "taken"), "refused")
    note = failed[0]["note"]
    assert "ExternalIPAMRefused" in note and "198.51.100.5 is taken" in note
    assert "core router" in note
    assert ips(cluster, "taken") == []
    assert records(nb)["198.51.100.5"].description == "core router", "left alone"


def test_an_exhausted_prefix_is_reported_and_the_others_keep_theirs(
    netbox: Any, nb: Any, relay: Relay, cluster: FakeAPI, start: Callable[..., Running]
) -> None:
    for n in range(1, 6):
        nb.ipam.ip_addresses.create({"address": f"198.51.100.{n}/29", "description": "other"})
    cluster.put_all(
        [group_with(relay), token_secret(netbox), service("last"), service("none-left")]
    )
    start()
    got = wait(lambda: ips(cluster, "last") or ips(cluster, "none-left"), "the last address")
    assert got == ["198.51.100.6"]
    loser = "none-left" if ips(cluster, "last") else "last"
    failed = wait(lambda: events(cluster, "AllocationFailed", loser), "exhausted")
    assert "no free ipv4 address left in 198.51.100.0/29" in failed[0]["note"]


def test_dual_stack_from_two_prefixes_and_a_shared_address(
    netbox: Any, nb: Any, relay: Relay, cluster: FakeAPI, start: Callable[..., Running]
) -> None:
    cluster.put_all(
        [
            group_with(relay, prefixes=[PREFIX4, PREFIX6]),
            token_secret(netbox),
            service("dual", families=["IPv4", "IPv6"], policy="RequireDualStack"),
            service("dns-tcp", share="dns", ports=[("TCP", 53)]),
            service("dns-udp", share="dns", ports=[("UDP", 53)]),
        ]
    )
    start()
    dual = wait(lambda: ips(cluster, "dual"), "both families")
    assert [ipaddress.ip_address(a).version for a in dual] == [4, 6]
    assert ipaddress.ip_address(dual[1]) in ipaddress.ip_network(PREFIX6)
    tcp = wait(lambda: ips(cluster, "dns-tcp"), "dns-tcp")
    assert wait(lambda: ips(cluster, "dns-udp"), "dns-udp") == tcp
    found = records(nb)
    assert len(found) == 3, "one record for the shared address"
    assert found[dual[1]].address.endswith("/124")


def test_prefixes_in_order_and_a_vrf_of_their_own(
    netbox: Any, nb: Any, relay: Relay, cluster: FakeAPI, start: Callable[..., Running]
) -> None:
    # The first prefix has one free address left, the second comes next.
    for n in range(1, 6):
        nb.ipam.ip_addresses.create({"address": f"198.51.100.{n}/29", "description": "other"})
    nb.ipam.prefixes.create({"prefix": "192.0.2.0/29"})
    # A VRF holding the same prefix as the global table: only the VRF's is used.
    vrf = nb.ipam.vrfs.create({"name": "prod", "enforce_unique": True})
    nb.ipam.prefixes.create({"prefix": "203.0.113.0/29", "vrf": vrf.id})
    nb.ipam.prefixes.create({"prefix": "203.0.113.0/29"})
    nb.ipam.ip_addresses.create({"address": "203.0.113.1/29", "description": "global one"})
    in_vrf = nb_group("invrf", url=relay.url, prefixes=["203.0.113.0/29"], vrf="prod",
                      default=False)  # fmt: skip
    cluster.put_all(
        [
            group_with(relay, prefixes=[PREFIX4, "192.0.2.0/29"]),
            in_vrf,
            token_secret(netbox),
            service("first", created="2026-01-01T00:00:01Z"),
            service("second", created="2026-01-01T00:00:02Z"),
            service("vrf", group="invrf"),
        ]
    )
    start()
    assert wait(lambda: ips(cluster, "first"), "first") == ["198.51.100.6"]
    assert wait(lambda: ips(cluster, "second"), "second") == ["192.0.2.1"]
    assert wait(lambda: ips(cluster, "vrf"), "in the VRF") == ["203.0.113.1"]
    made = [o for o in nb.ipam.ip_addresses.filter(vrf_id=vrf.id)]
    assert [(o.address, o.description) for o in made] == [
        ("203.0.113.1/29", "lbroute: default/vrf")
    ]
    assert records(nb, vrf_id="null")["203.0.113.1"].description == "global one"


# -- prefixes chosen by tag, tenant and role --------------------------------------------------


def selected(cluster: FakeAPI, group: str = "nb") -> Obj:
    g = cluster.get("servicegroups", group, NS) or {}
    return dict(((g.get("status") or {}).get("ipam") or {}).get("netbox") or {})


def test_a_prefix_selector_takes_what_netbox_tags_and_keeps_what_services_hold(
    netbox: Any, nb: Any, relay: Relay, cluster: FakeAPI, start: Callable[..., Running]
) -> None:
    tag = nb.extras.tags.create({"name": "k8s-lb", "slug": "k8s-lb"}).id
    role = nb.ipam.roles.create({"name": "LB", "slug": "lb"}).id
    first = nb.ipam.prefixes.create({"prefix": "192.0.2.0/29", "tags": [tag], "role": role})
    nb.ipam.prefixes.create({"prefix": "192.0.2.0/30", "tags": [tag], "role": role})  # a child
    nb.ipam.prefixes.create({"prefix": "192.0.2.8/29", "tags": [tag]})  # no role
    nb.ipam.prefixes.create(
        {"prefix": "192.0.2.16/29", "tags": [tag], "role": role, "status": "reserved"}
    )
    group = selector_group(url=relay.url, selector={"tags": ["k8s-lb"], "role": "lb"})
    cluster.put_all([group, token_secret(netbox), service("a")])
    start()
    assert wait(lambda: ips(cluster, "a"), "a addressed") == ["192.0.2.1"]
    assert selected(cluster) == {"prefixes": ["192.0.2.0/29"]}
    said = wait(
        lambda: condition(cluster).get("reason") == "InSync" and condition(cluster), "InSync"
    )
    assert "the prefixSelector (tag k8s-lb, role lb) chose 192.0.2.0/29" in said["message"]
    assert "192.0.2.0/30 overlaps 192.0.2.0/29, chosen before it: left out" in said["message"]
    assert records(nb)["192.0.2.1"].description == "lbroute: default/a"

    # A prefix tagged in NetBox joins at the next resync, after the ones before it.
    nb.ipam.prefixes.create({"prefix": "203.0.113.0/29", "tags": [tag], "role": role})
    wait(lambda: selected(cluster) == {"prefixes": ["192.0.2.0/29", "203.0.113.0/29"]}, "joined")

    # Untagged while a holds an address of it: retained (a keeps its address and its
    # route), new Services get theirs elsewhere.
    first.update({"tags": []})
    want = {"prefixes": ["203.0.113.0/29"], "retained": ["192.0.2.0/29"]}
    wait(lambda: selected(cluster) == want, "retained")
    cluster.put_all([service("b")])
    assert wait(lambda: ips(cluster, "b"), "b addressed") == ["203.0.113.1"]
    assert ips(cluster, "a") == ["192.0.2.1"], "never renumbered"

    # a goes: its record is released and the prefix no one holds is dropped; the tagged
    # child it kept out is taken now.
    cluster.remove("services", "a")
    want = {"prefixes": ["192.0.2.0/30", "203.0.113.0/29"]}
    wait(lambda: selected(cluster) == want, "dropped, the child taken")
    wait(lambda: "192.0.2.1" not in records(nb), "a's record released")
    assert set(records(nb)) == {"203.0.113.1"}


def test_a_selector_netbox_refuses_is_said_on_the_group(
    netbox: Any, nb: Any, relay: Relay, cluster: FakeAPI, start: Callable[..., Running]
) -> None:
    group = selector_group(url=relay.url, selector={"tags": ["no-such-tag"]})
    cluster.put_all([group, token_secret(netbox), service("a")])
    start()
    said = wait(
        lambda: condition(cluster).get("reason") == "Refused" and condition(cluster), "Refused"
    )
    assert said["message"].startswith("spec.ipam.netbox.prefixSelector: NetBox at")
    assert "no-such-tag" in said["message"]
    failed = wait(lambda: events(cluster, "AllocationFailed", "a"), "a waits")
    assert (
        "no NetBox prefix has been chosen by its prefixSelector (tag no-such-tag)"
        in (failed[0]["note"])
    )
    assert selected(cluster) == {}, "nothing chosen"


# -- NetBox away ------------------------------------------------------------------------------


def test_netbox_down_leaves_existing_services_alone_and_new_ones_wait(
    netbox: Any, nb: Any, relay: Relay, cluster: FakeAPI, start: Callable[..., Running]
) -> None:
    cluster.put_all([group_with(relay), token_secret(netbox), service("old")])
    allocator = start().allocator
    server = serve(0, allocator.metrics, allocator.health, "127.0.0.1")
    health = f"http://127.0.0.1:{server.server_address[1]}/healthz"

    def healthz() -> str:
        with urllib.request.urlopen(health, timeout=5) as reply:
            return str(reply.read().decode())

    try:
        assert wait(lambda: ips(cluster, "old"), "old addressed") == ["198.51.100.1"]
        assert healthz() == "ok\n"
        relay.down()
        cluster.put_all([service("new")])
        failed = wait(lambda: events(cluster, "AllocationFailed", "new"), "new waits")
        assert "ExternalIPAMPending" in failed[0]["note"]
        assert "did not answer" in failed[0]["note"]
        wait(lambda: condition(cluster).get("reason") == "Unreachable", "Unreachable condition")
        # Alive (200), and saying what does not work.
        said = wait(lambda: "degraded" in (h := healthz()) and h, "/healthz says it")
        assert said.startswith("ok\ndegraded: ServiceGroup nb: external IPAM: Unreachable: ")
        assert "did not answer" in said
        _netbox_back(cluster, nb, relay)
        wait(lambda: healthz() == "ok\n", "/healthz all ok again")
    finally:
        server.shutdown()
        server.server_close()


def _netbox_back(cluster: FakeAPI, nb: Any, relay: Relay) -> None:
    # Deleted while NetBox is away: released once it is back.
    cluster.remove("services", "old")
    time.sleep(1.0)
    assert ips(cluster, "new") == []
    relay.up()
    assert wait(lambda: ips(cluster, "new"), "new addressed", timeout=30) == ["198.51.100.2"]
    wait(lambda: set(records(nb)) == {"198.51.100.2"}, "old released", timeout=30)
    wait(lambda: condition(cluster).get("reason") == "InSync", "InSync again")
    assert len(events(cluster, "AllocationFailed", "new")) == 1, "one Event while down"


def test_records_deleted_or_edited_by_hand(
    netbox: Any, nb: Any, relay: Relay, cluster: FakeAPI, start: Callable[..., Running]
) -> None:
    cluster.put_all([group_with(relay), token_secret(netbox), service("a"), service("b")])
    start()
    wait(lambda: ips(cluster, "a") and ips(cluster, "b"), "both addressed")
    a, b = ips(cluster, "a")[0], ips(cluster, "b")[0]
    records(nb)[a].delete()
    records(nb)[b].update({"description": "stolen by the lab"})
    # A copy made with NetBox's Clone keeps the description but not the tag: not ours,
    # never released although no Service holds its address.
    nb.ipam.ip_addresses.create({"address": "198.51.100.6/29", "description": "lbroute: default/a"})
    wait(lambda: a in records(nb), "a's record made again", timeout=15)
    assert records(nb)[a].description == "lbroute: default/a"
    drift = wait(lambda: events(cluster, "ExternalIPAMDrift", "b"), "drift reported", timeout=15)
    assert "stolen by the lab" in drift[0]["note"]
    assert ips(cluster, "b") == [b], "never renumbered"
    assert records(nb)[b].description == "stolen by the lab", "not repaired"
    wait(lambda: condition(cluster).get("reason") == "Drift", "Drift condition")
    assert records(nb)["198.51.100.6"].description == "lbroute: default/a", "a copy, kept"


def test_a_restarted_allocator_renumbers_nothing_and_records_nothing_twice(
    netbox: Any, nb: Any, relay: Relay, cluster: FakeAPI, start: Callable[..., Running]
) -> None:
    group = group_with(relay)
    cluster.put_all([group, token_secret(netbox), service("a")])
    first = start("first")
    wait(lambda: ips(cluster, "a"), "a addressed")
    first.end()
    # A crash after NetBox recorded an address for b but before b's status was written.
    provider = NetBoxProvider(parse_service_group(group), netbox.token)
    crashed = provider.claim(Family.IPV4, Owner(namespace="default", name="b"), None)
    cluster.put_all([service("b")])
    before = {k: v.id for k, v in records(nb).items()}
    start("second")
    assert wait(lambda: ips(cluster, "b"), "b addressed") == [str(crashed)]
    assert ips(cluster, "a") == ["198.51.100.1"]
    time.sleep(1.5)  # a sync ran
    assert {k: v.id for k, v in records(nb).items()} == before


def test_two_replicas_elect_one_leader_that_alone_records(
    netbox: Any, nb: Any, relay: Relay, cluster: FakeAPI, start: Callable[..., Running]
) -> None:
    names = [f"svc-{i}" for i in range(5)]
    cluster.put_all([group_with(relay), token_secret(netbox), *(service(n) for n in names)])
    a, b = start("a"), start("b")
    wait(lambda: all(ips(cluster, n) for n in names), "every Service addressed", timeout=40)
    given = [ips(cluster, n)[0] for n in names]
    assert len(set(given)) == 5
    assert set(records(nb)) == set(given), "one record each, by the leader alone"
    assert sum(r.leader() for r in (a, b)) == 1
    # The leader goes: the other takes over and finds every record as it was.
    (a if a.leader() else b).end()
    cluster.put_all([service("after")])
    after = wait(lambda: ips(cluster, "after"), "the new leader allocates", timeout=40)
    assert set(records(nb)) == {*given, *after}


def test_two_allocators_never_get_one_netbox_address(netbox: Any, nb: Any) -> None:
    """Two clusters' allocators (or a split brain) asking at the same moment."""
    nb.ipam.prefixes.create({"prefix": "192.0.2.0/27", "status": "active"})
    group = parse_service_group(nb_group("nb", url=netbox.url, prefixes=["192.0.2.0/27"]))
    got: list[str] = []
    lock = threading.Lock()

    def ask(side: str) -> None:
        provider = NetBoxProvider(group, netbox.token)
        for i in range(8):
            a = provider.claim(Family.IPV4, Owner(namespace=side, name=f"svc-{i}"), None)
            with lock:
                got.append(str(a))

    threads = [threading.Thread(target=ask, args=(side,)) for side in ("east", "west")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == 16 and len(set(got)) == 16, got
    assert len(records(nb)) == 16


# -- lbroute allocate -------------------------------------------------------------------------


def test_lbroute_allocate_asks_netbox_and_dry_run_writes_nothing(
    netbox: Any, nb: Any, tmp_path: Path
) -> None:
    (tmp_path / "group.yaml").write_text(
        yaml.safe_dump(nb_group("nb", url="https://netbox.invalid", prefixes=[PREFIX4]))
    )
    (tmp_path / "svc.yaml").write_text(
        yaml.safe_dump_all([service("a"), service("b")], sort_keys=False)
    )
    runner = CliRunner()
    env = {"LBROUTE_NETBOX_TOKEN": netbox.token, "LBROUTE_NETBOX_URL": netbox.url}
    dry = runner.invoke(cli_main, ["allocate", "-f", str(tmp_path), "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "default/a: would assign 198.51.100.1 from nb" in dry.output
    assert "default/b: would assign 198.51.100.2 from nb" in dry.output
    assert records(nb) == {}, "a dry run writes nothing to NetBox"
    real = runner.invoke(cli_main, ["allocate", "-f", str(tmp_path)], env=env)
    assert real.exit_code == 0, real.output
    assert set(records(nb)) == {"198.51.100.1", "198.51.100.2"}
    assert "198.51.100.1" in (tmp_path / "svc.yaml").read_text()
    (tmp_path / "more.yaml").write_text(yaml.safe_dump(service("c")))
    no_token = runner.invoke(cli_main, ["allocate", "-f", str(tmp_path)], env={})
    assert no_token.exit_code == 1
    assert "default/c: needs an address from the NetBox prefixes" in no_token.output
    assert "LBROUTE_NETBOX_TOKEN" in no_token.output


def test_lbroute_allocate_chooses_a_selectors_prefixes_and_writes_them_in_the_group(
    netbox: Any, nb: Any, tmp_path: Path
) -> None:
    tag = nb.extras.tags.create({"name": "k8s-lb", "slug": "k8s-lb"}).id
    nb.ipam.prefixes.create({"prefix": "192.0.2.0/29", "tags": [tag]})
    group_file = tmp_path / "group.yaml"
    group_file.write_text(  # as a person writes it: kept as it is, the status added
        "# NetBox says which prefixes\n"
        "apiVersion: lbroute.io/v1alpha1\n"
        "kind: ServiceGroup\n"
        "metadata: {name: nb, namespace: lbroute}\n"
        "spec:\n"
        "  default: true\n"
        "  ipam:\n"
        "    netbox:\n"
        "      url: https://netbox.invalid\n"
        "      tokenSecretRef: {name: netbox-token}\n"
        "      prefixSelector: {tags: [k8s-lb]}\n"
    )
    (tmp_path / "svc.yaml").write_text(yaml.safe_dump(service("a")))
    runner = CliRunner()
    env = {"LBROUTE_NETBOX_TOKEN": netbox.token, "LBROUTE_NETBOX_URL": netbox.url}
    before = group_file.read_text()
    dry = runner.invoke(cli_main, ["allocate", "-f", str(tmp_path), "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "default/a: would assign 192.0.2.1 from nb" in dry.output
    assert group_file.read_text() == before and records(nb) == {}, "a dry run writes nothing"
    real = runner.invoke(cli_main, ["allocate", "-f", str(tmp_path)], env=env)
    assert real.exit_code == 0, real.output
    written = yaml.safe_load(group_file.read_text())
    assert written["status"]["ipam"] == {"netbox": {"prefixes": ["192.0.2.0/29"]}}
    assert group_file.read_text().startswith(before), "the person's lines are kept"
    assert set(records(nb)) == {"192.0.2.1"}
    # The agents read the group from these files: the prefix is its pool.
    group = parse_service_group(written)
    assert [str(p) for p in group.pools] == ["192.0.2.0/29"]
