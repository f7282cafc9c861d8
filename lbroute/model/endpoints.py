"""EndpointSlices as the agent reads them: which nodes have a ready endpoint of a Service.

A Service with ``externalTrafficPolicy: Local`` is announced only from the nodes that
have a ready endpoint of it, merged over all its EndpointSlices. :func:`split_objects`
picks the Services and EndpointSlices out of a batch, so that the rest goes to
:func:`lbroute.model.model.load`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lbroute.model.errors import ObjectRef
from lbroute.model.fields import list_at, mapping_at
from lbroute.model.vocabulary import SERVICE_NAME_LABEL


def ready_nodes(slices: Iterable[Mapping[str, Any]]) -> dict[ObjectRef, frozenset[str]]:
    """Service -> nodes that have at least one ready endpoint of it.

    An endpoint counts as ready when ``conditions.ready`` is true or unset (the
    EndpointSlice API says unset means ready).
    """
    found: dict[ObjectRef, set[str]] = {}
    for obj in slices:
        meta = mapping_at(obj, "metadata")
        labels = mapping_at(meta, "labels")
        service = labels.get(SERVICE_NAME_LABEL)
        if not service:
            continue
        ref = ObjectRef(
            kind="Service", namespace=str(meta.get("namespace") or "default"), name=str(service)
        )
        nodes = found.setdefault(ref, set())
        for ep in list_at(obj, "endpoints"):
            if not isinstance(ep, Mapping):
                continue
            conditions = mapping_at(ep, "conditions")
            if conditions.get("ready") is False:
                continue
            node = ep.get("nodeName")
            if isinstance(node, str) and node:
                nodes.add(node)
    return {ref: frozenset(nodes) for ref, nodes in found.items()}


def split_objects(
    objects: Iterable[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(Services, EndpointSlices, everything else) from a batch of objects."""
    services, slices, rest = [], [], []
    for obj in objects:
        kind = obj.get("kind")
        if kind == "Service" and obj.get("apiVersion") == "v1":
            services.append(obj)
        elif kind == "EndpointSlice" and str(obj.get("apiVersion", "")).startswith(
            "discovery.k8s.io/"
        ):
            slices.append(obj)
        else:
            rest.append(obj)
    return services, slices, rest
