"""The Kubernetes source: the same snapshots as a manifest directory, from the API.

One reflector per kind lists, then watches from the list's resourceVersion, keeping
the objects it was told about in memory (trimmed to the fields the agent reads):

- Services, EndpointSlices (all namespaces), this agent's Node (by name), the
  ServiceGroups, Peers and NodeAgents of the install namespace, and only the Secrets
  that Peers reference (one watch per referenced name, started and stopped as Peers
  change);
- watches ask for bookmarks and end every few minutes (a jittered ``timeoutSeconds``);
  the next one resumes from the last resourceVersion seen, a bookmark's included;
- 410 Gone (the resourceVersion was compacted away) means list again: the kind's
  objects are swapped for the new list in one step, so nothing is withdrawn between;
- any other failure (the API unreachable, a connection cut, a 5xx) is retried with
  exponential backoff and full jitter, resuming from the last resourceVersion.

No snapshot is yielded before every reflector has listed once (a Peer must not be
rendered before its Secret is known). A reflector that cannot reach the API keeps the
objects it has and reports no change: when the API goes away, the node keeps
announcing what it announced until the API says otherwise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from nodeagent.source import Snapshot
from nodeagent.trim import (
    JSON,
    keep_as,
    trim_endpoint_slice,
    trim_node,
    trim_service,
)

log = logging.getLogger(__name__)

LBROUTE_GROUP, LBROUTE_VERSION = "lbroute.io", "v1alpha1"


def api_client(kubeconfig: str | None = None, *, context: str | None = None) -> client.ApiClient:
    """A client from ``kubeconfig``, or the in-cluster service account when None."""
    cfg = client.Configuration()
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


# -- one kind -----------------------------------------------------------------------------


class Expired(Exception):
    """410 Gone: list again."""


@dataclass(frozen=True, kw_only=True)
class Kind:
    name: str
    """For logs: 'services', 'secret lbroute/bgp-password'."""
    call: Callable[..., Any]
    """A generated list function taking the usual list/watch keyword arguments."""
    trim: Callable[[Mapping[str, Any]], JSON]


@dataclass(frozen=True, kw_only=True)
class Timing:
    watch_seconds: tuple[int, int] = (240, 360)
    """timeoutSeconds of each watch, drawn uniformly (the API ends it then)."""
    backoff: tuple[float, float] = (0.5, 30.0)
    """First and longest wait after a failure; each wait is drawn in [0, limit]."""
    connect_timeout: float = 10.0
    page: int = 500


class Reflector:
    """Lists and watches one kind, keeping its objects by (namespace, name)."""

    def __init__(self, kind: Kind, on_change: Callable[[], None], timing: Timing) -> None:
        self.kind = kind
        self.on_change = on_change
        self.timing = timing
        self.items: dict[tuple[str, str], JSON] = {}
        """Changed in place under ``lock``; read with :meth:`objects`."""
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self.healthy = True
        self.resource_version: str | None = None
        self.lists = 0
        """How many times it listed (1 + relists after 410)."""
        self._stop = threading.Event()
        self._response: Any = None
        self._limit = timing.backoff[0]
        self._thread = threading.Thread(target=self._run, name=f"watch {kind.name}", daemon=True)

    def start(self) -> Reflector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # already closed
                response.shutdown()  # unblocks a read in the watch thread

    def objects(self) -> list[JSON]:
        with self.lock:
            return list(self.items.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._list()
                self._watch()
            except Expired:
                log.info("%s: resourceVersion too old (410 Gone); listing again", self.kind.name)
                self.resource_version = None
            except Exception as exc:
                if self._stop.is_set():
                    break
                if self.healthy:
                    log.warning(
                        "%s: %s; keeping what is known and retrying", self.kind.name, _say(exc)
                    )
                self.healthy = False
                self._stop.wait(random.uniform(0, self._limit))
                self._limit = min(self._limit * 2, self.timing.backoff[1])

    def _reached(self) -> None:
        """The API answered: the next failure starts the backoff from the beginning."""
        if not self.healthy:
            log.info("%s: API reachable again", self.kind.name)
        self.healthy = True
        self._limit = self.timing.backoff[0]

    def _request(self, **kwargs: Any) -> Any:
        return self.kind.call(_preload_content=False, **kwargs)

    def _list(self) -> None:
        items: dict[tuple[str, str], JSON] = {}
        token: str | None = None
        while True:
            kwargs: JSON = {"limit": self.timing.page}
            if token:
                kwargs["_continue"] = token
            response = self._request(_request_timeout=(self.timing.connect_timeout, 60), **kwargs)
            body = json.loads(response.data)
            self._reached()
            for obj in body.get("items") or ():
                trimmed = self.kind.trim(obj)
                items[_key(trimmed)] = trimmed
            meta = body.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                break
        with self.lock:
            changed = items != self.items
            self.items = items
        self.resource_version = str(meta.get("resourceVersion") or "0")
        self.lists += 1
        self.synced.set()
        if changed:
            self.on_change()

    def _watch(self) -> None:
        seconds = random.randint(*self.timing.watch_seconds)
        response = self._request(
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=seconds,
            _request_timeout=(self.timing.connect_timeout, seconds + 30),
        )
        self._response = response
        self._reached()
        try:
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                if self._stop.is_set():
                    return
                if line:
                    self._event(json.loads(line))
        finally:
            self._response = None
            response.release_conn()

    def _event(self, event: Mapping[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Expired()
            raise RuntimeError(f"watch error {obj.get('code')}: {obj.get('message')}")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED"):
            trimmed = self.kind.trim(obj)
            key = _key(trimmed)
            with self.lock:
                changed = self.items.get(key) != trimmed
                self.items[key] = trimmed
            if changed:
                self.on_change()
        elif kind == "DELETED":
            key = _key(obj)
            with self.lock:
                changed = self.items.pop(key, None) is not None
            if changed:
                self.on_change()
        if rv:
            self.resource_version = str(rv)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _say(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"API said {exc.status} {exc.reason}"
    return f"API unreachable ({type(exc).__name__}: {exc})"


def secret_names(peers: Iterator[Mapping[str, Any]] | list[JSON]) -> set[str]:
    """Secrets that Peers reference (BGP passwordSecretRef, OSPF/RIP authSecretRef)."""
    names = set()
    for peer in peers:
        for section in (peer.get("spec") or {}).values():
            if not isinstance(section, Mapping):
                continue
            for field in ("passwordSecretRef", "authSecretRef"):
                ref = section.get(field)
                if isinstance(ref, Mapping) and isinstance(ref.get("name"), str):
                    names.add(ref["name"])
    return names


class KubernetesSource:
    """Snapshots of the objects the agent needs, from the Kubernetes API.

    ``kinds`` replaces the agent's set of kinds (another controller's, such as the
    allocator's); Secrets are followed only when one of them is ``peers``.
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        node: str = "",
        namespace: str,
        timing: Timing | None = None,
        debounce: float = 0.05,
        kinds: list[Kind] | None = None,
    ) -> None:
        self.api = api
        self.kinds = kinds
        self.node = node
        self.namespace = namespace
        self.timing = timing or Timing()
        self.debounce = debounce
        self._changed = threading.Condition()
        self._dirty = False
        self.reflectors: dict[str, Reflector] = {}
        self._secrets: dict[str, Reflector] = {}

    def _kinds(self) -> list[Kind]:
        core, discovery = client.CoreV1Api(self.api), client.DiscoveryV1Api(self.api)
        custom = client.CustomObjectsApi(self.api)
        ns = self.namespace

        def crd(plural: str) -> Callable[..., Any]:
            def call(**kwargs: Any) -> Any:
                return custom.list_namespaced_custom_object(
                    LBROUTE_GROUP, LBROUTE_VERSION, ns, plural, **kwargs
                )

            return call

        def node(**kwargs: Any) -> Any:
            return core.list_node(field_selector=f"metadata.name={self.node}", **kwargs)

        return [
            Kind(name="services", call=core.list_service_for_all_namespaces, trim=trim_service),
            Kind(
                name="endpointslices",
                call=discovery.list_endpoint_slice_for_all_namespaces,
                trim=trim_endpoint_slice,
            ),
            Kind(name=f"node {self.node}", call=node, trim=trim_node),
            *(
                Kind(name=plural, call=crd(plural), trim=keep_as(kind, "lbroute.io/v1alpha1"))
                for plural, kind in (
                    ("servicegroups", "ServiceGroup"),
                    ("peers", "Peer"),
                    ("nodeagents", "NodeAgent"),
                )
            ),
        ]

    def _secret_kind(self, name: str) -> Kind:
        core = client.CoreV1Api(self.api)

        def call(**kwargs: Any) -> Any:
            return core.list_namespaced_secret(
                self.namespace, field_selector=f"metadata.name={name}", **kwargs
            )

        return Kind(name=f"secret {self.namespace}/{name}", call=call, trim=keep_as("Secret", "v1"))

    def _notify(self) -> None:
        with self._changed:
            self._dirty = True
            self._changed.notify_all()

    def _follow_secrets(self) -> None:
        """One watch per Secret that a Peer names; none for the others."""
        wanted = secret_names(self.reflectors["peers"].objects())
        for name in set(self._secrets) - wanted:
            self._secrets.pop(name).stop()
        for name in sorted(wanted - set(self._secrets)):
            self._secrets[name] = Reflector(
                self._secret_kind(name), self._notify, self.timing
            ).start()

    def _all(self) -> list[Reflector]:
        return [*self.reflectors.values(), *self._secrets.values()]

    def snapshot(self) -> Snapshot:
        objects: list[JSON] = []
        for reflector in self._all():
            objects += reflector.objects()
        return Snapshot(objects=tuple(objects))

    def snapshots(self, stop: threading.Event) -> Iterator[Snapshot]:
        kinds = self.kinds if self.kinds is not None else self._kinds()
        self.reflectors = {k.name: Reflector(k, self._notify, self.timing) for k in kinds}
        for reflector in self.reflectors.values():
            reflector.start()
        waker = threading.Thread(target=self._wake_on, args=(stop,), daemon=True)
        waker.start()
        try:
            yield from self._yield(stop)
        finally:
            for reflector in self._all():
                reflector.stop()

    def _wake_on(self, stop: threading.Event) -> None:
        stop.wait()
        self._notify()

    def _yield(self, stop: threading.Event) -> Iterator[Snapshot]:
        announced_wait = False
        while not stop.is_set():
            with self._changed:
                while not self._dirty and not stop.is_set():
                    self._changed.wait()
                self._dirty = False
            if stop.is_set():
                return
            stop.wait(self.debounce)  # let a burst of events land
            with self._changed:
                self._dirty = False
            peers = self.reflectors.get("peers")
            if peers is not None and peers.synced.is_set():
                self._follow_secrets()
            waiting = [r.kind.name for r in self._all() if not r.synced.is_set()]
            if waiting:
                if not announced_wait:
                    log.info("waiting for the first list of: %s", ", ".join(waiting))
                    announced_wait = True
                continue
            yield self.snapshot()

    @property
    def healthy(self) -> bool:
        return all(r.healthy for r in self._all())
