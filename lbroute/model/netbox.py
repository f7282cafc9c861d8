"""A ServiceGroup's external IPAM: ``spec.ipam.netbox``, addresses from NetBox.

The group names NetBox (``url``), the Secret key holding its API token
(``tokenSecretRef``) and the NetBox prefixes it takes addresses from (``prefixes``, each
a Prefix object in NetBox, optionally in one ``vrf``); the allocator asks NetBox for the
next free address of a prefix and records it there as lbroute's (allocator.external). What
the allocator writes on each IP address object is typed here too: the tenant, the tags,
the role, a DNS name made from a fixed template (``{name}``, ``{namespace}`` and
``{group}`` only: no expression, no code) and what a release does (``onRelease``: delete
the object or mark it deprecated).

Each NetBox prefix is a pool of the group for everything but choosing a free address:
the node agents aggregate a Service's address to the prefix's length (``aggregation:
default``) or announce it as a host route (``host``), and the prefixes must not overlap
the group's own pools or another group's: exactly one source per address.

:func:`description` and :func:`marker` say how an object in NetBox is known as lbroute's,
and of which cluster (``clusterName``, for clusters that share NetBox prefixes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from lbroute.model.errors import quote
from lbroute.model.fields import IPNetwork, Reader, parse_network
from lbroute.model.secrets import SecretRef, secret_ref

NETBOX = "netbox"
"""The provider name a NetBox pool carries (:attr:`lbroute.model.servicegroup.Pool.external`)."""

TAG = "lbroute"
"""The tag (slug) on every IP address object lbroute creates in NetBox."""

MAX_PREFIXES = 64

URL_RE = re.compile(r"https?://[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?(/[A-Za-z0-9._~\-/]{0,200})?")
URL_VALID = "an http or https URL such as https://netbox.example.com (no user, query or fragment)"

SLUG_RE = re.compile(r"[a-z0-9]([a-z0-9_\-]{0,98}[a-z0-9])?")
SLUG_VALID = "a NetBox slug: lowercase letters, digits, '-' and '_' (up to 100 characters)"

_DNS_TEMPLATE_RE = re.compile(r"([a-z0-9\-.]|\{name\}|\{namespace\}|\{group\}){1,200}")
DNS_VALID = (
    "a DNS name made of lowercase letters, digits, '-', '.' and the placeholders {name}, "
    "{namespace} and {group}, e.g. {name}.{namespace}.lb.example.com"
)

_LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?")

CLUSTER_RE = re.compile(r"[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?")


class Role(StrEnum):
    """NetBox's IP address roles that fit a Service address."""

    ANYCAST = "anycast"
    VIP = "vip"
    NONE = "none"


class OnRelease(StrEnum):
    DELETE = "delete"
    DEPRECATE = "deprecate"


class Aggregation(StrEnum):
    DEFAULT = "default"
    """The NetBox prefix's length."""
    HOST = "host"
    """A host route per address (/32, /128)."""


@dataclass(frozen=True, kw_only=True)
class NetBoxSource:
    url: str
    token: SecretRef
    prefixes: tuple[IPNetwork, ...]
    vrf: str | None = None
    """The NetBox VRF (its name) the prefixes and addresses are in; None: the global table."""
    tenant: str | None = None
    """Tenant slug set on each address."""
    tags: tuple[str, ...] = (TAG,)
    """Tag slugs set on each address; always starts with :data:`TAG`."""
    role: Role | None = None
    """None: anycast for a routed group, vip for a local one."""
    dns_name: str | None = None
    on_release: OnRelease = OnRelease.DELETE
    cluster: str | None = None
    aggregation: Aggregation = Aggregation.DEFAULT

    @property
    def api_url(self) -> str:
        return self.url.rstrip("/")


def marker(cluster: str | None) -> str:
    """How a description of lbroute's starts: ``lbroute`` or ``lbroute/<cluster>``."""
    return f"{TAG}/{cluster}" if cluster else TAG


def description(cluster: str | None, namespace: str, name: str) -> str:
    """The description of the IP address object lbroute creates for a Service."""
    return f"{marker(cluster)}: {namespace}/{name}"


def owner_of(cluster: str | None, text: str) -> tuple[str, str] | None:
    """The Service (namespace, name) a description of this cluster's names; None when the
    object is not this cluster's."""
    prefix = f"{marker(cluster)}: "
    if not text.startswith(prefix):
        return None
    namespace, sep, name = text[len(prefix) :].partition("/")
    if not sep or not _LABEL_RE.fullmatch(namespace) or not name or " " in name:
        return None
    return namespace, name


def dns_name(template: str, *, name: str, namespace: str, group: str) -> str | None:
    """The DNS name for a Service from ``template``; None when the result is not a valid
    DNS name (a Service name is a DNS label, so only an over-long result is)."""
    text = template.replace("{name}", name).replace("{namespace}", namespace)
    text = text.replace("{group}", group).strip(".")
    labels = text.split(".")
    if len(text) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        return None
    return text


def parse_netbox(r: Reader) -> NetBoxSource | None:
    """``spec.ipam.netbox``; None (with the problems in ``r``) when it is invalid."""
    r.unknown(
        {
            "url",
            "tokenSecretRef",
            "prefixes",
            "vrf",
            "tenant",
            "tags",
            "role",
            "dnsName",
            "onRelease",
            "clusterName",
            "aggregation",
        }
    )
    before = len(r.problems)
    url = r.str_("url", pattern=URL_RE, valid=URL_VALID, required=True)
    token = secret_ref(r, "tokenSecretRef")
    if token is None and not r.has("tokenSecretRef"):
        r.error(
            "tokenSecretRef",
            "is required: {name, key} of a Secret in the ServiceGroup's namespace that holds "
            "a NetBox API token (key defaults to 'token')",
        )
    elif token is not None and r.child("tokenSecretRef").raw("key") is None:
        token = SecretRef(name=token.name, key="token")
    prefixes: list[IPNetwork] = []
    for i, item, _path in r.items("prefixes"):
        net = r.convert_item("prefixes", i, item, parse_network, "a prefix such as 192.0.2.0/24")
        if net is None:
            continue
        if net in prefixes:
            r.item_error("prefixes", i, f"{net} is listed twice")
            continue
        prefixes.append(net)
    if not r.raw("prefixes"):
        r.error(
            "prefixes",
            "is required: at least one NetBox prefix (a Prefix object in NetBox) such as "
            "192.0.2.0/24",
        )
    if len(prefixes) > MAX_PREFIXES:
        r.error("prefixes", f"has {len(prefixes)} prefixes; at most {MAX_PREFIXES}")
    vrf = r.str_(
        "vrf", pattern=re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}"), valid="a VRF name"
    )
    tenant = r.str_("tenant", pattern=SLUG_RE, valid=SLUG_VALID)
    tags = [TAG]
    for i, item, _path in r.items("tags"):
        if not isinstance(item, str) or not SLUG_RE.fullmatch(item):
            r.item_error("tags", i, f"{quote(item)} is not valid; expected {SLUG_VALID}")
        elif item not in tags:
            tags.append(item)
    role = r.choice("role", {v.value: v for v in Role})
    template = r.str_("dnsName", pattern=_DNS_TEMPLATE_RE, valid=DNS_VALID)
    if template is not None and dns_name(template, name="a", namespace="a", group="a") is None:
        r.error("dnsName", f"{quote(template)} is not valid; expected {DNS_VALID}")
    on_release = r.choice("onRelease", {v.value: v for v in OnRelease}, default=OnRelease.DELETE)
    cluster = r.str_(
        "clusterName",
        pattern=CLUSTER_RE,
        valid="a DNS label naming this cluster among those sharing the NetBox prefixes",
    )
    aggregation = r.choice(
        "aggregation", {v.value: v for v in Aggregation}, default=Aggregation.DEFAULT
    )
    if len(r.problems) > before or url is None or token is None:
        return None
    return NetBoxSource(
        url=url,
        token=token,
        prefixes=tuple(prefixes),
        vrf=vrf,
        tenant=tenant,
        tags=tuple(tags),
        role=role,
        dns_name=template,
        on_release=on_release or OnRelease.DELETE,
        cluster=cluster,
        aggregation=aggregation or Aggregation.DEFAULT,
    )
