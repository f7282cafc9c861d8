"""The harness against the real NetBox: the REST calls an IPAM provider makes."""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

import pytest

from tests.netbox.server import NETBOX_VERSION, ApiError, NetBoxServer


def _prefix(netbox: NetBoxServer, prefix: str, **fields: Any) -> int:
    created = netbox.api("POST", "/api/ipam/prefixes/", {"prefix": prefix, **fields})
    assert created["prefix"] == prefix
    return int(created["id"])


def _next_ip(netbox: NetBoxServer, prefix_id: int, **fields: Any) -> str:
    created = netbox.api("POST", f"/api/ipam/prefixes/{prefix_id}/available-ips/", fields)
    return str(created["address"])


def test_status_names_the_version(netbox: NetBoxServer) -> None:
    status = netbox.api("GET", "/api/status/")
    assert status["netbox-version"] == NETBOX_VERSION
    assert netbox.url.startswith("http://127.0.0.1:")


def test_api_refuses_an_unknown_token(netbox: NetBoxServer) -> None:
    with pytest.raises(ApiError) as refused:
        netbox.api("GET", "/api/ipam/prefixes/", token="0" * 40)
    assert refused.value.status in (401, 403)


def test_available_ips_in_order(netbox_clean: NetBoxServer) -> None:
    prefix = _prefix(netbox_clean, "198.51.100.0/29")
    assert _next_ip(netbox_clean, prefix) == "198.51.100.1/29"
    assert _next_ip(netbox_clean, prefix) == "198.51.100.2/29"
    free = netbox_clean.api("GET", f"/api/ipam/prefixes/{prefix}/available-ips/")
    assert [ip["address"] for ip in free][:1] == ["198.51.100.3/29"]


def test_concurrent_allocations_never_share_an_address(netbox_clean: NetBoxServer) -> None:
    prefix = _prefix(netbox_clean, "198.51.100.0/28")  # 14 usable addresses
    workers, each = 6, 2
    barrier = threading.Barrier(workers)
    got: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def allocate() -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(each):
                address = _next_ip(netbox_clean, prefix)
                with lock:
                    got.append(address)
        except BaseException as e:
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=allocate) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(got) == workers * each
    assert len(set(got)) == len(got), sorted(got)
    assert all(ipaddress.ip_interface(a) in ipaddress.ip_network("198.51.100.0/28") for a in got)
    listed = netbox_clean.api("GET", "/api/ipam/ip-addresses/?parent=198.51.100.0/28&limit=100")
    assert sorted(ip["address"] for ip in listed["results"]) == sorted(got)


def test_ipv6_prefix(netbox_clean: NetBoxServer) -> None:
    prefix = _prefix(netbox_clean, "2001:db8:42::/64")
    assert _next_ip(netbox_clean, prefix) == "2001:db8:42::1/64"
    assert _next_ip(netbox_clean, prefix) == "2001:db8:42::2/64"


def test_tag_and_tenant(netbox_clean: NetBoxServer) -> None:
    tag = netbox_clean.api("POST", "/api/extras/tags/", {"name": "lbroute", "slug": "lbroute"})
    tenant = netbox_clean.api("POST", "/api/tenancy/tenants/", {"name": "Team A", "slug": "team-a"})
    prefix = _prefix(netbox_clean, "203.0.113.0/30", tenant=tenant["id"])
    address = netbox_clean.api(
        "POST",
        f"/api/ipam/prefixes/{prefix}/available-ips/",
        {"tenant": tenant["id"], "tags": [{"slug": "lbroute"}], "description": "default/web"},
    )
    assert address["address"] == "203.0.113.1/30"
    assert address["tenant"]["slug"] == "team-a"
    assert [t["id"] for t in address["tags"]] == [tag["id"]]
    tagged = netbox_clean.api("GET", "/api/ipam/ip-addresses/?tag=lbroute&tenant=team-a")
    assert [ip["description"] for ip in tagged["results"]] == ["default/web"]


def test_each_test_starts_empty(netbox_clean: NetBoxServer) -> None:
    for endpoint in ("ipam/ip-addresses", "ipam/prefixes", "extras/tags", "tenancy/tenants"):
        assert netbox_clean.api("GET", f"/api/{endpoint}/?brief=true")["count"] == 0, endpoint
