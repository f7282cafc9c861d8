"""ServiceGroup ``withdrawWithoutEndpoints`` (issue 17): an ETP Cluster Service with no
ready endpoint anywhere in the cluster is withdrawn from every node, and announced again
once an endpoint is ready; without the field, ETP Cluster is announced as always.

Withdrawn from every node: each node's desired state is computed from the same objects,
so every node is checked. With the field, the address is a host prefix (as ETP Local's):
an aggregate another Service of the pool keeps announcing would hide the withdrawal.
"""

from __future__ import annotations

from typing import Any

import pytest

from lbroute.model import api
from lbroute.model.errors import InvalidObject
from lbroute.model.servicegroup import local_problems, parse_service_group
from tests.test_desired import endpoints, group, node, service, state_of

NODES = [node("node-a"), node("node-b"), node("node-c")]


def failover(**spec: Any) -> dict[str, Any]:
    return group("dc", [{"cidr": "192.0.2.0/24"}, {"cidr": "2001:db8::/64"}], **spec)


def announced(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Node -> the addresses it puts on kube-lb0."""
    return {
        name: [str(a.interface) for a in state_of(objects, name).announcements]
        for name in ("node-a", "node-b", "node-c")
    }


def everywhere(*addresses: str) -> dict[str, list[str]]:
    return {name: list(addresses) for name in ("node-a", "node-b", "node-c")}


def test_without_the_field_etp_cluster_is_announced_without_endpoints() -> None:
    objects = [failover(), *NODES, service("web", "192.0.2.7")]
    assert announced(objects) == everywhere("192.0.2.7/24")
    assert api.load([failover()]).service_groups[0].withdraw_without_endpoints is False


def test_no_ready_endpoint_in_the_cluster_withdraws_from_every_node() -> None:
    for slices in ([], [endpoints("web", "node-a", ready=False)]):
        objects = [
            failover(withdrawWithoutEndpoints=True),
            *NODES,
            service("web", "192.0.2.7", "2001:db8::7"),
            *slices,
        ]
        assert announced(objects) == everywhere(), slices
        problems = [str(p) for p in state_of(objects, "node-b").problems]
        assert problems == [
            f"warning: Service default/web: status.loadBalancer.ingress: {a} is withdrawn: "
            "no ready endpoint in the cluster (ServiceGroup lbroute/dc sets "
            "withdrawWithoutEndpoints)"
            for a in ("192.0.2.7", "2001:db8::7")
        ]


def test_one_ready_endpoint_anywhere_announces_from_every_node_as_host_routes() -> None:
    objects = [
        failover(withdrawWithoutEndpoints=True),
        *NODES,
        service("web", "192.0.2.7", "2001:db8::7"),
        endpoints("web", "node-c"),
    ]
    assert announced(objects) == everywhere("192.0.2.7/32", "2001:db8::7/128")
    assert state_of(objects, "node-a").problems == ()


def test_a_withdrawn_service_is_not_hidden_by_another_services_aggregate() -> None:
    """Two Services in the group's pool, one without endpoints: only the one with
    endpoints is announced, and as its host route, so no /24 covers the other."""
    objects = [
        failover(withdrawWithoutEndpoints=True),
        *NODES,
        service("web", "192.0.2.7"),
        service("idle", "192.0.2.8"),
        endpoints("web", "node-a"),
    ]
    assert announced(objects) == everywhere("192.0.2.7/32")


def test_a_shared_address_stays_while_one_of_its_services_has_an_endpoint() -> None:
    objects = [
        failover(withdrawWithoutEndpoints=True),
        *NODES,
        service("web", "192.0.2.7"),
        service("web-udp", "192.0.2.7"),
        endpoints("web-udp", "node-b"),
    ]
    state = state_of(objects, "node-a")
    assert [str(a.interface) for a in state.announcements] == ["192.0.2.7/32"]
    assert [s.name for s in state.announcements[0].services] == ["web-udp"]


def test_etp_local_is_unchanged_by_the_field() -> None:
    objects = [
        failover(withdrawWithoutEndpoints=True),
        *NODES,
        service("web", "192.0.2.7", etp="Local"),
        endpoints("web", "node-b"),
    ]
    assert announced(objects) == {"node-a": [], "node-b": ["192.0.2.7/32"], "node-c": []}
    assert state_of(objects, "node-a").problems == ()


@pytest.mark.parametrize("value", ["yes", 1, "true", "on"])
def test_a_value_other_than_true_or_false_names_the_field(value: Any) -> None:
    with pytest.raises(InvalidObject) as e:
        parse_service_group(failover(withdrawWithoutEndpoints=value))
    text = str(e.value)
    assert "ServiceGroup lbroute/dc" in text
    assert "spec.withdrawWithoutEndpoints" in text
    assert "must be true or false" in text


def test_with_announce_local_it_is_ignored_with_a_warning() -> None:
    g = parse_service_group(
        group("lan", [{"cidr": "198.51.100.0/24"}], announce="local", withdrawWithoutEndpoints=True)
    )
    [warning] = local_problems(g)
    assert warning.path == "spec.withdrawWithoutEndpoints"
    assert "is ignored with announce local" in warning.message
    assert "set announce: routed" in warning.message
