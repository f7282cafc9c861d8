"""Reading addresses and Services fast, with nothing let through that was refused before.

Every pass of the agent reads every Service and every ingress address in it, so
``parse_ip`` reads a dotted quad with ``inet_pton`` and tries only text with a ``:`` as
IPv6. These tests hold it to :func:`ipaddress.ip_address` on text of the characters an
address is written with: the same strings accepted, as the same address, and the same
message for the others (a field's message shows no detail for it). A Service's ingress
lists each address once however it is spelt.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbroute.model.fields import parse_ip
from lbroute.model.service import Service

ALPHABET = "0123456789abcdefABCDEF.:"


def reference(text: str) -> tuple[str, Any]:
    try:
        return "ok", ipaddress.ip_address(text)
    except ValueError as exc:
        return "refused", str(exc)


def ours(text: str) -> tuple[str, Any]:
    try:
        return "ok", parse_ip(text)
    except ValueError as exc:
        return "refused", str(exc)


OCTETS = st.sampled_from(["0", "00", "01", "1", "99", "255", "256", "0255", "a", ""])


@settings(max_examples=3000)
@given(
    st.one_of(
        st.text(ALPHABET, min_size=2, max_size=45),
        st.lists(OCTETS, min_size=3, max_size=5).map(".".join),
        st.ip_addresses().map(str),
        st.ip_addresses(v=6).map(lambda a: str(a).upper()),
    )
)
def test_parse_ip_accepts_exactly_what_ipaddress_accepts(text: str) -> None:
    assert ours(text) == reference(text)


NEAR_MISSES = ["1.2.3.04", "1.2.3", "1.2.3.4.", "256.1.1.1", "::1.02.3.4", "2001:db8::00001"]


@pytest.mark.parametrize("text", [*NEAR_MISSES, "1:2:3:4:5:6:7:8:9"])
def test_near_misses_are_refused_with_the_standard_message(text: str) -> None:
    assert ours(text) == reference(text)
    assert ours(text)[0] == "refused"


def test_an_address_spelt_twice_in_the_ingress_is_read_once() -> None:
    obj = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "lbroute.io/lbroute"},
        "status": {
            "loadBalancer": {
                "ingress": [{"ip": "2001:db8::1"}, {"ip": "192.0.2.1"}, {"ip": "2001:DB8::0:1"}]
            }
        },
    }
    service = Service.read(obj, default_class=False)
    assert service.addresses == (
        ipaddress.ip_address("2001:db8::1"),
        ipaddress.ip_address("192.0.2.1"),
    )
