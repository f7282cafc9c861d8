"""Membership Leases in the API: our own written each renew, everyone's followed by a watch.

:class:`KubeLeaseStore` is the Kubernetes side of nodeagent.local.membership's
``LeaseStore``, and knows nothing of what a Lease publishes (that is the agent's): it
keeps the Leases of one namespace that carry one label (a :class:`Reflector`: list,
then watch), and writes one of them, ours.

- Writing costs one request in the steady state: our Lease is replaced with the
  resourceVersion of our own last write. When that fails (409: someone else wrote it;
  404: it was deleted) the Lease is read again, or created, and our fields written onto
  what was read, so labels and annotations others put there stay (read, change, write;
  a few times, :data:`~lbroute.kube.writes.CONFLICT_RETRIES`);
- reading costs no request: the watch's copy of the Leases, None until the first list;
- on a graceful stop our Lease is deleted (a 404 is fine: it is gone either way).

What it costs the API server with N agents renewing every r seconds: N/r writes per
second, each of which the server sends to the N watches, N^2/r watch events per second
(100 agents at 0.5 s: 200 writes and 20,000 events per second; at 2 s, 50 and 5,000).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from lbroute.kube.client import Api
from lbroute.kube.reflector import Kind, Reflector, Timing
from lbroute.kube.trim import JSON
from lbroute.kube.writes import CONFLICT_RETRIES
from lbroute.model.errors import Conflict, NotFound, ObjectRef, Problem
from lbroute.model.fields import mapping_at
from lbroute.model.vocabulary import (
    ANNOTATION_PREFIX,
    LEASE,
    LEASE_API_VERSION,
    MEMBER_LABEL,
    MEMBER_LABEL_VALUE,
)

MEMBER_SELECTOR = f"{MEMBER_LABEL}={MEMBER_LABEL_VALUE}"
"""The label selector of the membership Leases."""
_SPEC = ("holderIdentity", "leaseDurationSeconds", "renewTime")


def trim_lease(obj: Mapping[str, Any]) -> JSON:
    """A Lease as the membership reads it: name, version, lbroute's annotations and who
    holds it for how long since when."""
    meta = mapping_at(obj, "metadata")
    spec = mapping_at(obj, "spec")
    out_meta: JSON = {k: meta[k] for k in ("name", "namespace", "resourceVersion") if k in meta}
    annotations = {
        k: v
        for k, v in mapping_at(meta, "annotations").items()
        if isinstance(k, str) and k.startswith(ANNOTATION_PREFIX)
    }
    if annotations:
        out_meta["annotations"] = annotations
    return {
        "apiVersion": LEASE_API_VERSION,
        "kind": LEASE,
        "metadata": out_meta,
        "spec": {k: spec[k] for k in _SPEC if k in spec},
    }


def lease_kind(api: Api, namespace: str, selector: str) -> Kind:
    """The Leases of ``namespace`` that match the label ``selector``."""
    leases = api.leases

    def call(**kwargs: Any) -> Any:
        return leases.list_namespaced_lease(namespace, label_selector=selector, **kwargs)

    return Kind(name=f"leases {selector}", call=call, trim=trim_lease)


def _onto(current: Mapping[str, Any], lease: Mapping[str, Any]) -> JSON:
    """``lease``'s labels, annotations and spec written onto ``current`` (the Lease as
    read, its resourceVersion kept), everything else of ``current`` as it was."""
    out = copy.deepcopy(dict(current))
    meta = out.setdefault("metadata", {})
    meta.pop("managedFields", None)
    want = mapping_at(lease, "metadata")
    for key in ("labels", "annotations"):
        meta[key] = {**(meta.get(key) or {}), **mapping_at(want, key)}
    out["spec"] = {**(out.get("spec") or {}), **mapping_at(lease, "spec")}
    out["apiVersion"], out["kind"] = LEASE_API_VERSION, LEASE
    return out


class KubeLeaseStore:
    """The Leases of ``namespace`` labelled as membership Leases (``selector``), through
    ``api``; :meth:`start` begins following them, :meth:`close` ends it."""

    def __init__(
        self,
        api: Api,
        *,
        namespace: str,
        selector: str = MEMBER_SELECTOR,
        timing: Timing | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.reflector = Reflector(
            lease_kind(api, namespace, selector), lambda: None, timing or Timing()
        )
        self._last: JSON | None = None
        """Our Lease as the API answered our last write of it."""

    def start(self) -> KubeLeaseStore:
        self.reflector.start()
        return self

    def close(self) -> None:
        self.reflector.stop()

    def _ref(self, name: str) -> ObjectRef:
        return ObjectRef(kind=LEASE, namespace=self.namespace, name=name)

    def write(self, lease: JSON) -> None:
        """Create or replace our Lease (see the module docstring); raises
        :class:`~lbroute.model.errors.KubernetesError` when it could not."""
        ref = self._ref(str(mapping_at(lease, "metadata").get("name")))
        last = self._last
        if last is not None and mapping_at(last, "metadata").get("name") == ref.name:
            try:
                self._last = self.api.replace(ref, _onto(last, lease))
                return
            except (Conflict, NotFound):
                self._last = None
        for _ in range(CONFLICT_RETRIES):
            try:
                current = self.api.read(ref)
            except NotFound:
                try:
                    self._last = self.api.create(ref, lease)
                    return
                except Conflict:  # created in between: read it
                    continue
            try:
                self._last = self.api.replace(ref, _onto(current, lease))
                return
            except (Conflict, NotFound):
                continue
        raise Conflict(f"{ref}: kept changing under us", status=409)

    def read_all(self) -> tuple[list[JSON], list[Problem]] | None:
        """The Leases as the watch last saw them; None before the first list."""
        if not self.reflector.synced.is_set():
            return None
        return self.reflector.objects(), []

    def delete(self, name: str) -> None:
        """Delete our Lease ``name``; nothing when it is not there."""
        self._last = None
        try:
            self.api.delete(self._ref(name))
        except NotFound:
            return
