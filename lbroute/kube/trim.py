"""Objects trimmed to the fields lbroute reads, as they enter.

Both sources keep objects this way: the Kubernetes source as they arrive from the API,
the directory source as each document is parsed. Most of what the API holds is never
read (an EndpointSlice's addresses, ports and targetRefs; managedFields), and at 10,000
Services with 100,000 endpoints keeping it would cost hundreds of megabytes. An
EndpointSlice keeps one entry per (node, ready), whatever its number of endpoints, with
how many endpoints it stands for (weighted ECMP counts them).

One Service trimmer serves both users: the agent keeps what it announces from, and
the allocator (``allocation=True``) also what it allocates from (creation time, the
addresses and family policy asked for, the ports and selector sharing is decided on).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lbroute.model.fields import list_at, mapping_at
from lbroute.model.vocabulary import (
    ANNOTATION_PREFIX,
    API_VERSION,
    ENDPOINT_COUNT,
    FOREIGN_KEYS,
    SERVICE_GROUP,
    SERVICE_GROUP_LABEL,
    SERVICE_NAME_LABEL,
)

JSON = dict[str, Any]
"""An object, or part of one, as the API sends it."""

Trim = Callable[[Mapping[str, Any]], JSON]


_META = ("name", "namespace", "uid", "resourceVersion")
_CREATED_META = (*_META, "creationTimestamp")


def _meta(obj: Mapping[str, Any], *, labels: bool = False, created: bool = False) -> JSON:
    meta = mapping_at(obj, "metadata")
    keep = _CREATED_META if created else _META
    out: JSON = {k: meta[k] for k in keep if k in meta}
    if labels and mapping_at(meta, "labels"):
        out["labels"] = meta["labels"]
    elif created and SERVICE_GROUP_LABEL in mapping_at(meta, "labels"):  # the allocator's
        out["labels"] = {SERVICE_GROUP_LABEL: meta["labels"][SERVICE_GROUP_LABEL]}
    annotations = {
        k: v
        for k, v in mapping_at(meta, "annotations").items()
        if isinstance(k, str) and (k.startswith(ANNOTATION_PREFIX) or k in FOREIGN_KEYS)
    }
    if annotations:
        out["annotations"] = annotations
    return out


_SERVICE_SPEC = ("type", "loadBalancerClass", "externalTrafficPolicy", "ipFamilies")
_ALLOCATION_SPEC = ("ipFamilyPolicy", "loadBalancerIP")


def trim_service(obj: Mapping[str, Any], *, allocation: bool = False) -> JSON:
    """A Service as the agent reads it; with ``allocation``, as the allocator does
    (allocator.service.parse_service)."""
    spec = mapping_at(obj, "spec")
    keep = (*_SERVICE_SPEC, *_ALLOCATION_SPEC) if allocation else _SERVICE_SPEC
    out_spec = {k: spec[k] for k in keep if k in spec}
    if allocation and spec.get("type") == "LoadBalancer":
        out_spec["ports"] = [
            {"protocol": p.get("protocol") or "TCP", "port": p.get("port")}
            for p in list_at(spec, "ports")
            if isinstance(p, Mapping)
        ]
        if spec.get("externalTrafficPolicy") == "Local" and spec.get("selector"):
            out_spec["selector"] = spec["selector"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(obj, created=allocation),
        "spec": _shared_spec(out_spec),
        "status": {"loadBalancer": mapping_at(mapping_at(obj, "status"), "loadBalancer")},
    }


_ENTRIES: dict[tuple[str, bool, int], JSON] = {}
_SPECS: dict[tuple[tuple[str, Any], ...], JSON] = {}


def _entry(node: str, ready: bool, count: int) -> JSON:
    """An EndpointSlice entry: one shared dict per (node, ready, count), since the same
    few repeat in every slice. Shared, like every trimmed object: read, never changed."""
    key = (node, ready, count)
    found = _ENTRIES.get(key)
    if found is None:
        found = _ENTRIES[key] = {"nodeName": node, "conditions": {"ready": ready}}
        if count != 1:
            found[ENDPOINT_COUNT] = count
    return found


def _shared_spec(spec: JSON) -> JSON:
    """A Service's trimmed spec, one dict per distinct content (most Services of a
    cluster have one of a handful)."""
    try:
        key = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in spec.items())
        return _SPECS.setdefault(key, spec)
    except TypeError:  # a value that cannot be a key (ports, a selector, a mapping)
        return spec


def trim_endpoint_slice(obj: Mapping[str, Any]) -> JSON:
    """Only which nodes hold an endpoint, whether it is ready and how many: one entry per
    (node, ready), whatever the number of endpoints (see endpoints.ready_counts), each
    counting the distinct endpoints it stands for."""
    meta = mapping_at(obj, "metadata")
    labels = mapping_at(meta, "labels")
    seen: dict[tuple[str, bool], set[str]] = {}
    for i, ep in enumerate(list_at(obj, "endpoints")):
        node = ep.get("nodeName") if isinstance(ep, Mapping) else None
        if not isinstance(node, str):
            continue
        ready = mapping_at(ep, "conditions").get("ready") is not False
        addresses = [a for a in list_at(ep, "addresses") if isinstance(a, str)]
        seen.setdefault((node, ready), set()).add(addresses[0] if addresses else f"#{i}")
    out_meta: JSON = {"name": meta.get("name"), "namespace": meta.get("namespace")}
    if SERVICE_NAME_LABEL in labels:
        out_meta["labels"] = {SERVICE_NAME_LABEL: labels[SERVICE_NAME_LABEL]}
    out: JSON = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": out_meta,
        "endpoints": [_entry(n, r, len(keys)) for (n, r), keys in seen.items()],
    }
    if isinstance(obj.get("addressType"), str):
        out["addressType"] = obj["addressType"]
    return out


def trim_node(obj: Mapping[str, Any]) -> JSON:
    """Name, labels, addresses, the cordon and the Ready condition's status, reason and
    message (what tells a graceful shutdown, nodeagent.drain): not its heartbeat and
    transition times, which change without a change that matters to lbroute."""
    status = mapping_at(obj, "status")
    out: JSON = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _meta(obj, labels=True),
        "status": {"addresses": list_at(status, "addresses")},
    }
    if mapping_at(obj, "spec").get("unschedulable") is True:
        out["spec"] = {"unschedulable": True}
    ready = [
        {k: c[k] for k in ("type", "status", "reason", "message") if isinstance(c.get(k), str)}
        for c in list_at(status, "conditions")
        if isinstance(c, Mapping) and c.get("type") == "Ready"
    ]
    if ready:
        out["status"]["conditions"] = ready[:1]
    return out


def keep_as(kind: str, api_version: str) -> Trim:
    """Whole objects (lbroute's kinds, Secrets), with the kind that list items lack."""

    def trim(obj: Mapping[str, Any]) -> JSON:
        out = {k: v for k, v in obj.items() if k != "metadata"}
        meta = {k: v for k, v in mapping_at(obj, "metadata").items() if k != "managedFields"}
        return {**out, "apiVersion": api_version, "kind": kind, "metadata": meta}

    return trim


def trim_service_group(obj: Mapping[str, Any]) -> JSON:
    """A ServiceGroup as the allocator keeps it: the whole object but its status,
    resourceVersion and generation, so that writing the status (the allocator's or the
    agents') is not a change that needs a pass; but for ``status.ipam``, the NetBox
    prefixes a ``prefixSelector`` chose, which are the group's pools."""
    meta = {
        k: v
        for k, v in mapping_at(obj, "metadata").items()
        if k not in ("managedFields", "resourceVersion", "generation")
    }
    out = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    status = obj.get("status")
    if isinstance(status, Mapping) and status.get("ipam") is not None:
        out["status"] = {"ipam": status["ipam"]}
    return {**out, "apiVersion": API_VERSION, "kind": SERVICE_GROUP, "metadata": meta}


def trim_object(obj: dict[str, Any]) -> dict[str, Any]:
    """Any object from a manifest: the core kinds the agent reads trimmed as the API
    source trims them, every other object (lbroute's kinds, Secrets, what the agent
    does not know) as it is."""
    kind, version = obj.get("kind"), obj.get("apiVersion")
    if kind == "Service" and version == "v1":
        return trim_service(obj)
    if kind == "EndpointSlice" and str(version).startswith("discovery.k8s.io/"):
        return trim_endpoint_slice(obj)
    if kind == "Node" and version == "v1":
        return trim_node(obj)
    return obj
