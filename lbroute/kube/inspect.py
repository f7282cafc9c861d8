"""What ``kubectl lbroute`` reads: one snapshot of the cluster, with the user's kubeconfig.

:func:`connect` builds the client from the kubeconfig the user names (``--kubeconfig``,
else ``$KUBECONFIG``, else ``~/.kube/config``, else the in-cluster service account) and
context; :func:`read_cluster` lists, once each and never writing: the LoadBalancer
Services and their EndpointSlices, Nodes, and lbroute's kinds (ServiceGroups, Peers,
NodeAgents, NodeStates) in the install namespace; with ``events_in`` also the
events.k8s.io Events of those namespaces (``why`` reads what the allocator said about a
Service). Objects come back as the API sent them (plain JSON); what they mean is
lbroute.diagnose's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import config

from lbroute.kube.client import Api, ApiClient, api_client
from lbroute.kube.errors import loading_config, translated
from lbroute.kube.trim import JSON
from lbroute.model.errors import NotFound
from lbroute.model.vocabulary import (
    GROUP,
    NODE_AGENT,
    NODE_STATE,
    PEER,
    PLURALS,
    SERVICE_GROUP,
    VERSION,
)

PAGE = 500
"""Objects per list page."""


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """The objects one inspect command looks at, each kind listed once."""

    namespace: str
    """lbroute's install namespace (its ServiceGroups, Peers, NodeAgents, NodeStates)."""
    services: tuple[JSON, ...] = ()
    slices: tuple[JSON, ...] = ()
    nodes: tuple[JSON, ...] = ()
    groups: tuple[JSON, ...] = ()
    peers: tuple[JSON, ...] = ()
    agents: tuple[JSON, ...] = ()
    states: tuple[JSON, ...] = ()
    events: tuple[JSON, ...] = ()


def default_kubeconfig() -> str | None:
    """The kubeconfig kubectl would use: the first file of ``$KUBECONFIG``, else
    ``~/.kube/config`` when it exists; None (in-cluster) otherwise."""
    for path in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if path and Path(path).expanduser().is_file():
            return str(Path(path).expanduser())
    home = Path("~/.kube/config").expanduser()
    return str(home) if home.is_file() else None


def connect(kubeconfig: str | None = None, context: str | None = None) -> ApiClient:
    """The client for ``kubeconfig`` (default as kubectl's) and ``context``."""
    return api_client(kubeconfig or default_kubeconfig(), context=context)


def context_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace of the kubeconfig's context (``default`` when it names none or
    there is no kubeconfig), as kubectl picks it for an object named without one."""
    path = kubeconfig or default_kubeconfig()
    if path is None:
        return "default"
    with loading_config(path):
        contexts, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=path
        )
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def read_cluster(client: ApiClient, namespace: str, *, events_in: Iterable[str] = ()) -> Snapshot:
    """Everything the inspect commands read; raises
    :class:`~lbroute.model.errors.KubernetesError` when the API refuses or does not
    answer (a missing CRD reads as no objects of that kind)."""
    api = Api(client)

    def custom(kind: str) -> tuple[JSON, ...]:
        return _optional(
            api.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURALS[kind]
        )

    services = _list(api.core.list_service_for_all_namespaces)
    balanced = tuple(s for s in services if (s.get("spec") or {}).get("type") == "LoadBalancer")
    events: list[JSON] = []
    for ns in sorted(set(events_in)):
        events += _list(api.events.list_namespaced_event, ns)
    return Snapshot(
        namespace=namespace,
        services=balanced,
        slices=_list(api.discovery.list_endpoint_slice_for_all_namespaces),
        nodes=_list(api.core.list_node),
        groups=custom(SERVICE_GROUP),
        peers=custom(PEER),
        agents=custom(NODE_AGENT),
        states=custom(NODE_STATE),
        events=tuple(events),
    )


def _list(method: Callable[..., Any], *args: Any) -> tuple[JSON, ...]:
    """Every item of a list call, page by page."""
    items: list[JSON] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": PAGE}
        if token:
            kwargs["_continue"] = token
        with translated():
            response = method(*args, _preload_content=False, **kwargs)
            data = json.loads(response.data)
        items += [i for i in data.get("items") or () if isinstance(i, dict)]
        token = (data.get("metadata") or {}).get("continue")
        if not token:
            return tuple(items)


def _optional(method: Callable[..., Any], *args: Any) -> tuple[JSON, ...]:
    """A list of a CRD's objects; none when the CRD is not installed (404)."""
    try:
        return _list(method, *args)
    except NotFound:
        return ()
