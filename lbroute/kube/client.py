"""The connection to the API server, and the reads and writes lbroute makes through it.

:func:`api_client` builds the client from a kubeconfig (and context) or the in-cluster
service account. :class:`Api` is every call lbroute makes on a single object, by its
:class:`~lbroute.model.errors.ObjectRef`, on plain JSON: reads return the object as the
API sent it (no model classes), writes are JSON merge patches. Each call runs inside
:func:`~lbroute.kube.errors.translated`, so callers catch lbroute's errors only. Lists
and watches are the reflectors' (:mod:`lbroute.kube.reflector`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeAlias

from kubernetes import client, config

from lbroute.kube.errors import loading_config, translated
from lbroute.kube.trim import JSON
from lbroute.kube.writes import MERGE
from lbroute.model.errors import ObjectRef
from lbroute.model.vocabulary import GROUP, PLURALS, VERSION

ApiClient: TypeAlias = client.ApiClient


def api_client(kubeconfig: str | None = None, *, context: str | None = None) -> ApiClient:
    """A client from ``kubeconfig``, or the in-cluster service account when None.

    Raises :class:`~lbroute.model.errors.KubernetesError` naming the file (or the
    service account) when it cannot be loaded."""
    cfg = client.Configuration()
    with loading_config(kubeconfig or "the in-cluster service account"):
        if kubeconfig:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=cfg
            )
        else:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=cfg
            )
    cfg.connection_pool_maxsize = 32  # a watch per kind holds a connection each
    cfg.retries = 0  # the reflectors back off with jitter themselves
    return client.ApiClient(cfg)


class Api:
    """lbroute's calls on single objects: Services, lbroute's kinds, Events and Leases.

    The generated clients are attributes, looked up at each call (a test may wrap one
    of their methods to race a write against ours).
    """

    def __init__(self, api_client: ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.discovery = client.DiscoveryV1Api(api_client)
        self.events = client.EventsV1Api(api_client)
        self.leases = client.CoordinationV1Api(api_client)

    def read(self, ref: ObjectRef, *, status: bool = False) -> JSON:
        """The object (through its status subresource with ``status``)."""
        name, ns = ref.name, ref.namespace
        get: Callable[..., Any]
        if ref.kind in PLURALS:
            if status:
                get = self.custom.get_namespaced_custom_object_status
            else:
                get = self.custom.get_namespaced_custom_object
            return _call(get, GROUP, VERSION, ns, PLURALS[ref.kind], name)
        if ref.kind == "Service" and not status:
            return _call(self.core.read_namespaced_service, name, ns)
        if ref.kind == "Event" and not status:
            return _call(self.events.read_namespaced_event, name, ns)
        if ref.kind == "Lease" and not status:
            return _call(self.leases.read_namespaced_lease, name, ns)
        if ref.kind == "Secret" and not status:
            return _call(self.core.read_namespaced_secret, name, ns)
        raise _unsupported("read", ref, status)

    def patch(self, ref: ObjectRef, patch: JSON, *, status: bool = False) -> JSON:
        """Merge ``patch`` into the object (its status subresource with ``status``); a
        ``metadata.resourceVersion`` in it makes the write fail with 409 if the object
        changed since."""
        name, ns = ref.name, ref.namespace
        write: Callable[..., Any]
        if ref.kind in PLURALS:
            if status:
                write = self.custom.patch_namespaced_custom_object_status
            else:
                write = self.custom.patch_namespaced_custom_object
            plural = PLURALS[ref.kind]
            return _call(write, GROUP, VERSION, ns, plural, name, patch, _content_type=MERGE)
        if ref.kind == "Service":
            if status:
                write = self.core.patch_namespaced_service_status
            else:
                write = self.core.patch_namespaced_service
            return _call(write, name, ns, patch, _content_type=MERGE)
        if ref.kind == "Event" and not status:
            return _call(self.events.patch_namespaced_event, name, ns, patch, _content_type=MERGE)
        raise _unsupported("patch", ref, status)

    def create(self, ref: ObjectRef, body: JSON) -> JSON:
        """Create the object ``body`` (named ``ref``); 409 when it exists."""
        ns = ref.namespace
        if ref.kind in PLURALS:
            create = self.custom.create_namespaced_custom_object
            return _call(create, GROUP, VERSION, ns, PLURALS[ref.kind], body)
        if ref.kind == "Event":
            return _call(self.events.create_namespaced_event, ns, body)
        if ref.kind == "Lease":
            return _call(self.leases.create_namespaced_lease, ns, body)
        raise _unsupported("create", ref, False)

    def replace(self, ref: ObjectRef, body: JSON) -> JSON:
        """Replace the object with ``body``; 409 when its resourceVersion is not the
        current one."""
        if ref.kind == "Lease":
            return _call(self.leases.replace_namespaced_lease, ref.name, ref.namespace, body)
        raise _unsupported("replace", ref, False)

    def delete(self, ref: ObjectRef) -> None:
        """Delete the object; 404 when it is not there."""
        if ref.kind == "Lease":
            _call(self.leases.delete_namespaced_lease, ref.name, ref.namespace)
            return
        raise _unsupported("delete", ref, False)


def _call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> JSON:
    """One call, its answer read as JSON (a dict where the signature names a model
    class: the client sends either)."""
    with translated():
        response = method(*args, _preload_content=False, **kwargs)
        data = json.loads(response.data)
    return data if isinstance(data, dict) else {}


def _unsupported(verb: str, ref: ObjectRef, status: bool) -> ValueError:
    what = f"the status of {ref.kind}" if status else ref.kind
    return ValueError(f"lbroute does not {verb} {what} objects")
