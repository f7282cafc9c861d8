"""A ServiceGroup's external IPAM: ``spec.ipam.netbox``, addresses from NetBox.

The group names NetBox (``url``), the Secret key holding its API token
(``tokenSecretRef``) and the NetBox prefixes it takes addresses from, optionally in one
``vrf``: listed (``prefixes``, each a Prefix object in NetBox) or chosen by NetBox's own
tags, tenant and role (``prefixSelector``). A selector is resolved by the allocator, which
writes the prefixes it chose into the group's status (``status.ipam.netbox.prefixes``):
that is what every reader of the group (the allocator again, the node agents, the CLI)
takes as the group's NetBox prefixes, so that the agents never talk to NetBox. A prefix
that stops matching while Services still hold its addresses moves to
``status.ipam.netbox.retained``: announced as before, no new address from it (never
renumber). The allocator asks NetBox for the
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
class PrefixSelector:
    """``spec.ipam.netbox.prefixSelector``: the NetBox prefixes (status active, in the
    group's ``vrf`` or the global table) that carry all of ``tags`` and the ``tenant`` and
    ``role`` when given. At least one criterion is required."""

    tags: tuple[str, ...] = ()
    tenant: str | None = None
    role: str | None = None

    def describe(self) -> str:
        parts = [f"tag {t}" for t in self.tags]
        parts += [f"tenant {self.tenant}"] if self.tenant else []
        parts += [f"role {self.role}"] if self.role else []
        return ", ".join(parts)


@dataclass(frozen=True, kw_only=True)
class NetBoxSource:
    url: str
    token: SecretRef
    prefixes: tuple[IPNetwork, ...]
    """The prefixes new addresses come from: listed, or with a :attr:`selector` those the
    allocator chose (the group's ``status.ipam.netbox.prefixes``; empty until it has)."""
    selector: PrefixSelector | None = None
    retained: tuple[IPNetwork, ...] = ()
    """Prefixes a selector chose before that no longer match but still hold Services'
    addresses (``status.ipam.netbox.retained``): pools of the group, no new address."""
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
    def every_prefix(self) -> tuple[IPNetwork, ...]:
        """:attr:`prefixes`, then :attr:`retained`: what the group's NetBox pools are."""
        return self.prefixes + self.retained

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


def parse_netbox(r: Reader, selected: Reader) -> NetBoxSource | None:
    """``spec.ipam.netbox``; None (with the problems in ``r``) when it is invalid.
    ``selected`` reads ``status.ipam.netbox``: the prefixes the allocator chose for a
    ``prefixSelector`` (not read without one)."""
    r.unknown(
        {
            "url",
            "tokenSecretRef",
            "prefixes",
            "prefixSelector",
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
    selector = _prefix_selector(r.child("prefixSelector")) if r.has("prefixSelector") else None
    prefixes: list[IPNetwork] = []
    retained: list[IPNetwork] = []
    if r.has("prefixSelector") and r.has("prefixes"):
        r.error(
            "",
            "sets both prefixes and prefixSelector; it takes exactly one of them: list the "
            "prefixes, or let the allocator choose them by tag, tenant and role",
        )
    elif r.has("prefixSelector"):
        prefixes = _prefix_list(selected, "prefixes")
        retained = _prefix_list(selected, "retained")
    elif not r.raw("prefixes"):
        r.error(
            "prefixes",
            "is required: at least one NetBox prefix (a Prefix object in NetBox) such as "
            "192.0.2.0/24, or a prefixSelector such as {tags: [k8s-lb]}",
        )
    else:
        prefixes = _prefix_list(r, "prefixes")
    vrf = r.str_(
        "vrf", pattern=re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}"), valid="a VRF name"
    )
    tenant = r.str_("tenant", pattern=SLUG_RE, valid=SLUG_VALID)
    tags = _slugs(r, "tags", [TAG])
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
        selector=selector,
        retained=tuple(n for n in retained if n not in prefixes),
        vrf=vrf,
        tenant=tenant,
        tags=tuple(tags),
        role=role,
        dns_name=template,
        on_release=on_release or OnRelease.DELETE,
        cluster=cluster,
        aggregation=aggregation or Aggregation.DEFAULT,
    )


def _prefix_list(r: Reader, key: str) -> list[IPNetwork]:
    prefixes: list[IPNetwork] = []
    for i, item, _path in r.items(key):
        net = r.convert_item(key, i, item, parse_network, "a prefix such as 192.0.2.0/24")
        if net is None:
            continue
        if net in prefixes:
            r.item_error(key, i, f"{net} is listed twice")
            continue
        prefixes.append(net)
    if len(prefixes) > MAX_PREFIXES:
        r.error(key, f"has {len(prefixes)} prefixes; at most {MAX_PREFIXES}")
    return prefixes


def _prefix_selector(r: Reader) -> PrefixSelector | None:
    r.unknown({"tags", "tenant", "role"})
    before = len(r.problems)
    tags = _slugs(r, "tags", [])
    tenant = r.str_("tenant", pattern=SLUG_RE, valid=SLUG_VALID)
    role = r.str_("role", pattern=SLUG_RE, valid=f"a prefix role's slug: {SLUG_VALID}")
    if len(r.problems) > before:
        return None
    if not tags and tenant is None and role is None:
        r.error(
            "",
            "needs at least one of tags, tenant or role (the prefixes of NetBox that carry "
            "them): an empty selector would take every prefix NetBox has",
        )
        return None
    return PrefixSelector(tags=tuple(tags), tenant=tenant, role=role)


def _slugs(r: Reader, key: str, first: list[str]) -> list[str]:
    """The slugs listed at ``key`` after ``first``, each once."""
    out = list(first)
    for i, item, _path in r.items(key):
        if not isinstance(item, str) or not SLUG_RE.fullmatch(item):
            r.item_error(key, i, f"{quote(item)} is not valid; expected {SLUG_VALID}")
        elif item not in out:
            out.append(item)
    return out


def netbox_prefix_path(source: NetBoxSource, index: int) -> str:
    """The field that holds the group's ``index``-th NetBox prefix (of
    :attr:`NetBoxSource.every_prefix`): listed in the spec, or chosen by the allocator for
    a selector (in the status)."""
    if source.selector is None:
        return f"spec.ipam.netbox.prefixes[{index}]"
    if index < len(source.prefixes):
        return f"status.ipam.netbox.prefixes[{index}]"
    return f"status.ipam.netbox.retained[{index - len(source.prefixes)}]"
