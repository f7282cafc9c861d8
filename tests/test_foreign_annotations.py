"""MetalLB's and PureLB's Service annotations as read-only aliases of lbroute's (issue 19).

Moving in from MetalLB or PureLB must renumber no Service. The allocator and ``lbroute
allocate`` read, when lbroute's own annotation is not set:

- the requested addresses from ``metallb.io/loadBalancerIPs``, the older
  ``metallb.universe.tf/loadBalancerIPs`` and ``purelb.io/addresses``;
- the sharing key from ``metallb.io/allow-shared-ip``, ``metallb.universe.tf/
  allow-shared-ip`` and ``purelb.io/allow-shared-ip``;
- the ServiceGroup from ``metallb.io/address-pool`` and ``metallb.universe.tf/
  address-pool`` (a MetalLB pool names the ServiceGroup of the same name) and
  ``purelb.io/service-group``.

lbroute's own annotation wins (a foreign one that says otherwise is a warning), then
``metallb.io``, ``metallb.universe.tf``, ``purelb.io`` in that order. What MetalLB or
PureLB wrote themselves (``ip-allocated-from-pool``, ``purelb.io/allocated-from``) is
reported and not read. Each use is reported: a ``ForeignAnnotation`` Event on the Service,
once per Service, annotation and value (Warning when it lost to a conflicting one), and a
line of ``lbroute allocate``. A foreign annotation that cannot be honoured (bad syntax, an
address outside the pools, a pool or group that does not exist) is an error naming the
Service, the annotation and what is valid, and the Service gets no address at all (never
one from the default group). A Service MetalLB addressed keeps that address.

The allocator runs against the protocol-level fake API (tests/fakeapi.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from lbroute.cli import main
from tests.fakeapi import FakeAPI
from tests.test_allocator import (  # noqa: F401 (fake and replicas are fixtures)
    Running,
    events,
    fake,
    ips,
    replicas,
    wait,
    writes,
    writes_pending,
)
from tests.test_ipam import group, service

Obj = dict[str, Any]

PUBLIC = group("public", "192.0.2.0/24", "2001:db8:1::/64", default=True)
CAMPUS = group("campus", "198.51.100.0/24")


def svc(name: str, annotations: dict[str, str], **kwargs: Any) -> Obj:
    obj = service(name, **kwargs)
    obj["metadata"].setdefault("annotations", {}).update(annotations)
    return obj


def write_tree(tmp_path: Path, services: list[Obj]) -> Path:
    d = tmp_path / "manifests"
    d.mkdir()
    (d / "groups.yaml").write_text(yaml.safe_dump_all([PUBLIC, CAMPUS]))
    (d / "services.yaml").write_text(yaml.safe_dump_all(services))
    return d


def addresses_in(d: Path) -> dict[str, list[str]]:
    found = {}
    for obj in yaml.safe_load_all((d / "services.yaml").read_text()):
        lb = (obj.get("status") or {}).get("loadBalancer") or {}
        found[obj["metadata"]["name"]] = [i["ip"] for i in lb.get("ingress") or ()]
    return found


def run_allocate(d: Path, *extra: str) -> Any:
    return CliRunner().invoke(main, ["allocate", "-f", str(d), *extra])


# -- every alias, through lbroute allocate ----------------------------------------------------

HONOURED = [
    # (Service, addresses it gets, the alias read)
    (svc("mlb-ip", {"metallb.io/loadBalancerIPs": "192.0.2.77"}), ["192.0.2.77"],
     "metallb.io/loadBalancerIPs"),
    (svc("mlb-old-ip", {"metallb.universe.tf/loadBalancerIPs": "192.0.2.78, 2001:db8:1::78"}),
     ["192.0.2.78", "2001:db8:1::78"], "metallb.universe.tf/loadBalancerIPs"),
    (svc("plb-ip", {"purelb.io/addresses": "198.51.100.9", "purelb.io/service-group": "campus"}),
     ["198.51.100.9"], "purelb.io/addresses"),
    (svc("mlb-pool", {"metallb.io/address-pool": "campus"}), ["198.51.100.2"],
     "metallb.io/address-pool"),
    (svc("mlb-old-pool", {"metallb.universe.tf/address-pool": "campus"}), ["198.51.100.1"],
     "metallb.universe.tf/address-pool"),
    (svc("plb-group", {"purelb.io/service-group": "campus"}), ["198.51.100.3"],
     "purelb.io/service-group"),
    (svc("mlb-share-a", {"metallb.io/allow-shared-ip": "web", "metallb.io/loadBalancerIPs":
                         "192.0.2.80"}, ports=[("TCP", 80)]), ["192.0.2.80"],
     "metallb.io/allow-shared-ip"),
    (svc("mlb-share-b", {"metallb.universe.tf/allow-shared-ip": "web"}, ports=[("TCP", 443)]),
     ["192.0.2.80"], "metallb.universe.tf/allow-shared-ip"),
    (svc("plb-share", {"purelb.io/allow-shared-ip": "web"}, ports=[("UDP", 443)]),
     ["192.0.2.80"], "purelb.io/allow-shared-ip"),
]  # fmt: skip


def test_every_alias_is_honoured_and_reported_once(tmp_path: Path) -> None:
    d = write_tree(tmp_path, [copy.deepcopy(s) for s, _, _ in HONOURED])
    result = run_allocate(d)
    assert result.exit_code == 0, result.output
    assert addresses_in(d) == {s["metadata"]["name"]: want for s, want, _ in HONOURED}
    notes = result.stderr.splitlines()
    for s, _, key in HONOURED:
        name = s["metadata"]["name"]
        line = [n for n in notes if n.startswith(f"note: default/{name}: ") and f"[{key}]" in n]
        assert len(line) == 1, (name, notes)
        ours = {"loadBalancerIPs": "addresses", "addresses": "addresses",
                "allow-shared-ip": "allow-shared-ip", "address-pool": "service-group",
                "service-group": "service-group"}[key.split("/")[1]]  # fmt: skip
        assert f"is read as lbroute.io/{ours}" in line[0]
    assert len(notes) == 11, "one line per foreign annotation (two Services carry two)"
    # Converged: a second run moves nothing and still says what it read.
    again = run_allocate(d)
    assert again.exit_code == 0 and again.stdout == ""
    assert len(again.stderr.splitlines()) == 11


def test_lbroute_annotation_wins_and_a_conflict_is_a_warning(tmp_path: Path) -> None:
    services = [
        svc("ours-wins", {"lbroute.io/addresses": "192.0.2.10",
                          "metallb.io/loadBalancerIPs": "192.0.2.11"}),
        svc("same", {"lbroute.io/service-group": "campus", "purelb.io/service-group": "campus"}),
        svc("new-wins", {"metallb.io/address-pool": "campus",
                         "metallb.universe.tf/address-pool": "public"}),
        svc("addresses-any-order", {"metallb.io/loadBalancerIPs": "2001:db8:1::5,192.0.2.5",
                                    "purelb.io/addresses": "192.0.2.5, 2001:db8:1::5"}),
    ]  # fmt: skip
    d = write_tree(tmp_path, services)
    result = run_allocate(d)
    assert result.exit_code == 0, result.output
    assert addresses_in(d) == {
        "ours-wins": ["192.0.2.10"],
        "same": ["198.51.100.2"],
        "new-wins": ["198.51.100.1"],
        "addresses-any-order": ["2001:db8:1::5", "192.0.2.5"],
    }
    lines = result.stderr.splitlines()
    assert (
        "warning: default/ours-wins: metadata.annotations[metallb.io/loadBalancerIPs]: "
        "'192.0.2.11' is ignored: lbroute.io/addresses is set too and says otherwise, and "
        "wins; remove one of them"
    ) in lines
    assert (
        "note: default/same: metadata.annotations[purelb.io/service-group]: 'campus' is "
        "ignored: lbroute.io/service-group says the same and wins; remove it"
    ) in lines
    assert any(
        line.startswith("warning: default/new-wins: metadata.annotations[metallb.universe.tf/"
                        "address-pool]: 'public' is ignored: metallb.io/address-pool is set")
        for line in lines
    )  # fmt: skip
    assert not any(line.startswith("warning: default/addresses-any-order") for line in lines)


ERRORS = [
    # (Service, what the error line says after "error: Service default/NAME: ")
    (svc("outside", {"metallb.io/loadBalancerIPs": "203.0.113.77"}),
     "metadata.annotations[metallb.io/loadBalancerIPs]: 203.0.113.77 is not in a pool of "
     "ServiceGroup lbroute/public; valid: 192.0.2.0/24"),
    (svc("outside-of-pool", {"metallb.io/address-pool": "campus",
                             "metallb.io/loadBalancerIPs": "192.0.2.9"}),
     "metadata.annotations[metallb.io/loadBalancerIPs]: 192.0.2.9 is not in a pool of "
     "ServiceGroup lbroute/campus; valid: 198.51.100.0/24"),
    (svc("no-pool", {"metallb.universe.tf/address-pool": "production"}),
     "metadata.annotations[metallb.universe.tf/address-pool]: ServiceGroup 'production' not "
     "found in namespace lbroute; valid: campus, public (a MetalLB address pool or PureLB "
     "service group names the lbroute ServiceGroup of the same name; lbroute convert creates "
     "them)"),
    (svc("no-group", {"purelb.io/service-group": "lan"}),
     "metadata.annotations[purelb.io/service-group]: ServiceGroup 'lan' not found"),
    (svc("bad-syntax", {"purelb.io/addresses": "192.0.2.300"}),
     "metadata.annotations[purelb.io/addresses]: '192.0.2.300' is not an IP address; expected "
     "at most one IPv4 and one IPv6 address, separated by a comma (192.0.2.7,2001:db8::7)"),
    (svc("two-v4", {"metallb.io/loadBalancerIPs": "192.0.2.1,192.0.2.2"}),
     "metadata.annotations[metallb.io/loadBalancerIPs]: '192.0.2.1,192.0.2.2' names two IPv4 "
     "addresses"),
    (svc("bad-key", {"metallb.io/allow-shared-ip": "a\tb"}),
     "metadata.annotations[metallb.io/allow-shared-ip]: 'a\\tb' is not valid; expected up to "
     "253 printable characters"),
    (svc("legacy-differs", {"metallb.io/loadBalancerIPs": "192.0.2.40"}, lb_ip="192.0.2.41"),
     "spec.loadBalancerIP: 192.0.2.41 (deprecated) differs from the metallb.io/loadBalancerIPs "
     "annotation (192.0.2.40); set only the annotation"),
]  # fmt: skip


def test_a_foreign_annotation_that_cannot_be_honoured_is_an_error_and_no_address(
    tmp_path: Path,
) -> None:
    d = write_tree(tmp_path, [copy.deepcopy(s) for s, _ in ERRORS])
    result = run_allocate(d)
    assert result.exit_code == 1
    assert addresses_in(d) == {s["metadata"]["name"]: [] for s, _ in ERRORS}, "no new address"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    for s, message in ERRORS:
        name = s["metadata"]["name"]
        mine = [e for e in errors if e.startswith(f"error: Service default/{name}: ")]
        assert len(mine) == 1, (name, errors)
        assert message in mine[0], mine[0]


# -- migration: what MetalLB or PureLB assigned stays -----------------------------------------


MIGRATING = [
    svc("mlb-kept", {"metallb.io/loadBalancerIPs": "192.0.2.77",
                     "metallb.io/ip-allocated-from-pool": "public"}, ingress=["192.0.2.77"]),
    svc("mlb-dynamic", {"metallb.universe.tf/ip-allocated-from-pool": "public"},
        ingress=["192.0.2.200"]),
    svc("mlb-dual", {"metallb.io/address-pool": "public"}, ingress=["192.0.2.201",
                                                                    "2001:db8:1::201"],
        families=["IPv4", "IPv6"], policy="RequireDualStack"),
    svc("mlb-campus", {"metallb.io/address-pool": "campus"}, ingress=["198.51.100.50"]),
    svc("plb-kept", {"purelb.io/service-group": "campus", "purelb.io/allocated-from": "campus"},
        ingress=["198.51.100.51"]),
    svc("mlb-shared-a", {"metallb.io/allow-shared-ip": "dns"}, ports=[("TCP", 53)],
        ingress=["192.0.2.53"]),
    svc("mlb-shared-b", {"metallb.io/allow-shared-ip": "dns"}, ports=[("UDP", 53)],
        ingress=["192.0.2.53"]),
    svc("new", {}),
]  # fmt: skip


def test_metallb_and_purelb_addresses_are_kept_and_nothing_moves(tmp_path: Path) -> None:
    d = write_tree(tmp_path, copy.deepcopy(MIGRATING))
    before = addresses_in(d)
    result = run_allocate(d)
    assert result.exit_code == 0, result.output
    after = addresses_in(d)
    assert {k: v for k, v in after.items() if k != "new"} == {
        k: v for k, v in before.items() if k != "new"
    }, "no address moved"
    assert after["new"] == ["192.0.2.1"]
    assert "warning" not in result.stderr, "every kept address lies in its group's pools"
    out = result.stdout.splitlines()
    assert "default/mlb-kept: keeps 192.0.2.77 (public:192.0.2.0/24)" in out
    assert "default/mlb-campus: keeps 198.51.100.50 (campus:198.51.100.0/24)" in out
    assert "default/mlb-dual: keeps 192.0.2.201, 2001:db8:1::201 (public:192.0.2.0/24," \
           "2001:db8:1::/64)" in out  # fmt: skip
    records = [line for line in result.stderr.splitlines() if "another load balancer" in line]
    assert len(records) == 3  # two ip-allocated-from-pool, one purelb.io/allocated-from
    again = run_allocate(d, "--dry-run")
    assert again.exit_code == 0 and again.stdout == ""


def test_an_address_outside_the_named_group_is_kept_and_reported(tmp_path: Path) -> None:
    """MetalLB gave it from a pool lbroute has under another group: it stays (never
    renumbered), reported as outside the group the annotation names."""
    d = write_tree(tmp_path, [svc("moved-pool", {"metallb.io/address-pool": "campus"},
                                  ingress=["192.0.2.99"])])  # fmt: skip
    result = run_allocate(d)
    assert result.exit_code == 0, result.output
    assert addresses_in(d) == {"moved-pool": ["192.0.2.99"]}
    assert "192.0.2.99 lies outside every pool of ServiceGroup lbroute/campus" in result.stderr


# -- the allocator, against the fake API ------------------------------------------------------


@pytest.fixture
def cluster(fake: FakeAPI) -> FakeAPI:  # noqa: F811 (the fixture imported above)
    fake.put_all([copy.deepcopy(PUBLIC), copy.deepcopy(CAMPUS)])
    return fake


def foreign_events(cluster: FakeAPI, name: str | None = None) -> list[Obj]:
    return events(cluster, "ForeignAnnotation", name)


def test_the_allocator_honours_aliases_and_reports_each_once(
    cluster: FakeAPI,
    replicas: Callable[..., Running],  # noqa: F811
) -> None:
    cluster.put_all(copy.deepcopy([s for s, _, _ in HONOURED]))
    cluster.put_all(
        [
            svc("ours-wins", {"lbroute.io/addresses": "192.0.2.10",
                              "metallb.io/loadBalancerIPs": "192.0.2.11"}),
        ]
    )  # fmt: skip
    running = replicas("a")
    names = [s["metadata"]["name"] for s, _, _ in HONOURED]
    wait(lambda: all(ips(cluster, n) for n in names), "addresses")
    wait(lambda: running.allocator.passes >= 2 and not writes_pending(cluster), "a quiet pass")
    for s, want, key in HONOURED:
        name = s["metadata"]["name"]
        assert ips(cluster, name) == want, name
        mine = [e for e in foreign_events(cluster, name) if f"[{key}]" in e["note"]]
        assert len(mine) == 1, (name, foreign_events(cluster, name))
        assert mine[0]["type"] == "Normal"
        current = cluster.get("services", name)
        assert current is not None
        assert mine[0]["regarding"]["uid"] == current["metadata"]["uid"]
        assert mine[0]["reportingController"] == "lbroute.io/allocator"
    assert ips(cluster, "ours-wins") == ["192.0.2.10"]
    [conflict] = foreign_events(cluster, "ours-wins")
    assert conflict["type"] == "Warning"
    assert "'192.0.2.11' is ignored: lbroute.io/addresses is set too" in conflict["note"]
    total = len(foreign_events(cluster))
    assert total == 12

    # More passes (a Service edited, another created) say nothing again.
    edited = cluster.get("services", "mlb-ip")
    assert edited is not None
    edited["metadata"].setdefault("labels", {})["touched"] = "yes"
    cluster.put("services", edited)
    cluster.put_all([service("late")])
    wait(lambda: ips(cluster, "late"), "the late Service's address")
    passes = running.allocator.passes
    wait(lambda: running.allocator.passes > passes and not writes_pending(cluster), "a pass")
    assert len(foreign_events(cluster)) == total

    # A new value is a new use: reported once more.
    edited = cluster.get("services", "plb-group")
    assert edited is not None
    edited["metadata"]["annotations"]["purelb.io/service-group"] = "public"
    cluster.put("services", edited)
    wait(lambda: len(foreign_events(cluster)) == total + 1, "the new value reported")
    # As with lbroute's own annotation, naming another group moves the Service there.
    wait(lambda: ips(cluster, "plb-group") == ["192.0.2.2"], "the move to public")


def test_the_allocator_gives_no_address_for_an_alias_it_cannot_honour(
    cluster: FakeAPI,
    replicas: Callable[..., Running],  # noqa: F811
) -> None:
    cluster.put_all([*copy.deepcopy([s for s, _ in ERRORS]), service("control")])
    running = replicas("a")
    wait(lambda: ips(cluster, "control"), "the control Service's address")
    wait(lambda: running.allocator.passes >= 2 and not writes_pending(cluster), "a quiet pass")
    failed = {e["regarding"]["name"]: e["note"] for e in events(cluster, "AllocationFailed")}
    for s, message in ERRORS:
        name = s["metadata"]["name"]
        assert ips(cluster, name) == [], name
        assert message in failed[name], failed[name]
    assert failed["outside"].startswith("RequestedOutsidePools: ")
    assert failed["no-pool"].startswith("ServiceGroupNotFound: ")
    assert failed["bad-syntax"].startswith("InvalidService: ")


def test_the_allocator_keeps_what_metallb_assigned(
    cluster: FakeAPI,
    replicas: Callable[..., Running],  # noqa: F811
) -> None:
    cluster.put_all(copy.deepcopy(MIGRATING))
    running = replicas("a")
    wait(lambda: ips(cluster, "new"), "the new Service's address")
    wait(lambda: running.allocator.passes >= 2 and not writes_pending(cluster), "a quiet pass")
    for s in MIGRATING:
        name = s["metadata"]["name"]
        if name != "new":
            want = [i["ip"] for i in s["status"]["loadBalancer"]["ingress"]]
            assert ips(cluster, name) == want, name
    assert ips(cluster, "new") == ["192.0.2.1"]
    status_writes = [r for r in writes(cluster) if r.resource == "services" and
                     r.subresource == "status"]  # fmt: skip
    assert len(status_writes) == 1, "only the new Service's status is written"
    assert events(cluster, "AddressOutsidePool") == []
    assert events(cluster, "AllocationFailed") == []
    kept = cluster.get("services", "mlb-kept")
    assert kept is not None
    assert kept["metadata"]["annotations"]["lbroute.io/allocated-from"] == "public:192.0.2.0/24"
    [record] = [e for e in foreign_events(cluster, "mlb-kept")
                if "ip-allocated-from-pool" in e["note"]]  # fmt: skip
    assert "was written by another load balancer; not read" in record["note"]
