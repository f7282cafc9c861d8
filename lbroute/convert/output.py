"""The objects a conversion writes: lbroute's ServiceGroups, Peers, NodeAgents and
Secrets, built as plain dicts in one namespace, and the Secrets of the input it may copy.

Every converted ServiceGroup carries the label :data:`GROUP_LABEL` (its own name), so
that a converted Peer that carries only some groups selects them by name.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lbroute.convert.report import Report
from lbroute.convert.values import meta_name, meta_namespace
from lbroute.model.vocabulary import API_VERSION, NODE_AGENT, PEER, SERVICE_GROUP

GROUP_LABEL = "lbroute.io/group"
"""On each converted ServiceGroup: its name, for the Peers' serviceGroupSelector."""
CONVERTED_FROM = "lbroute.io/converted-from"
"""On each converted object: ``Kind namespace/name`` of what it was converted from."""


@dataclass
class Output:
    namespace: str
    report: Report
    secrets_in: dict[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    """The input's Secrets by (namespace, name), for references to copy."""
    objects: list[dict[str, Any]] = field(default_factory=list)

    def _meta(
        self, name: str, source: str, labels: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace}
        if labels:
            meta["labels"] = dict(labels)
        meta["annotations"] = {CONVERTED_FROM: source}
        return meta

    def add(
        self,
        kind: str,
        name: str,
        spec: dict[str, Any],
        source: str,
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        taken = self.names(kind)
        if name in taken:
            unique = next(
                f"{name}-{i}" for i in range(2, len(taken) + 3) if f"{name}-{i}" not in taken
            )
            self.report.info(source, "", f"{kind} {name} is written already: named {unique}")
            name = unique
        obj = {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": self._meta(name, source, labels),
            "spec": spec,
        }
        self.objects.append(obj)
        self.report.converted.append(f"{source} -> {kind} {self.namespace}/{name}")
        return obj

    def group(self, name: str, spec: dict[str, Any], source: str) -> dict[str, Any]:
        return self.add(SERVICE_GROUP, name, spec, source, {GROUP_LABEL: name})

    def peer(self, name: str, spec: dict[str, Any], source: str) -> dict[str, Any]:
        return self.add(PEER, name, spec, source)

    def node_agent(self, name: str, spec: dict[str, Any], source: str) -> dict[str, Any]:
        return self.add(NODE_AGENT, name, spec, source)

    def names(self, kind: str) -> set[str]:
        return {meta_name(o) for o in self.objects if o["kind"] == kind}

    def secret(self, name: str, password: str, source: str) -> dict[str, str]:
        """A Secret holding an inline password; returns the Peer's reference to it."""
        if not self._has_secret(name):
            obj = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": self._meta(name, source),
                "stringData": {"password": password},
            }
            self.objects.append(obj)
            self.report.converted.append(f"{source} (password) -> Secret {self.namespace}/{name}")
        return {"name": name, "key": "password"}

    def _has_secret(self, name: str) -> bool:
        return any(o["kind"] == "Secret" and meta_name(o) == name for o in self.objects)

    def copy_secret(
        self, namespace: str, name: str, key: str, source: Any, path: str
    ) -> dict[str, str] | None:
        """A reference to the input's Secret ``namespace/name`` in lbroute's namespace:
        copied there when it is elsewhere; an error when the input does not hold it."""
        found = self.secrets_in.get((namespace, name))
        if found is None:
            self.report.error(
                source,
                path,
                f"Secret {namespace}/{name} is not among the files converted; add it (kubectl "
                f"get secret -n {namespace} {name} -o yaml) and convert again; the Peer is "
                "written without a password",
            )
            return None
        if namespace != self.namespace and not self._has_secret(name):
            obj = {k: copy.deepcopy(v) for k, v in found.items() if k in ("data", "stringData")}
            obj = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": self._meta(name, f"Secret {namespace}/{name}"),
                **obj,
            }
            self.objects.append(obj)
            self.report.converted.append(
                f"Secret {namespace}/{name} -> Secret {self.namespace}/{name} (copied)"
            )
        return {"name": name, "key": key}


def secrets_of(objects: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {
        (meta_namespace(o) or "default", meta_name(o)): o
        for o in objects
        if o.get("kind") == "Secret" and o.get("apiVersion") == "v1"
    }
