"""The Kubernetes source: the same snapshots as a manifest directory, from the API.

One :class:`Reflector` per :class:`Kind` lists, then watches from the list's
resourceVersion, keeping the objects it was told about in memory (trimmed to the fields
its user reads, :mod:`lbroute.kube.trim`):

- lists are read in pages; watches ask for bookmarks and end every few minutes (a
  jittered ``timeoutSeconds``); the next one resumes from the last resourceVersion
  seen, a bookmark's included;
- 410 Gone (the resourceVersion was compacted away) means list again: the kind's
  objects are swapped for the new list in one step, so nothing is withdrawn between;
- any other failure (the API unreachable, a connection cut, a 5xx) is retried with
  exponential backoff and full jitter, resuming from the last resourceVersion.

A :class:`KubernetesSource` runs one reflector per kind it is given, by default what a
node's agent reads (:func:`node_kinds`): Services, EndpointSlices (all namespaces),
this agent's Node (by name), the ServiceGroups, Peers and NodeAgents of the install
namespace, and only the Secrets that Peers reference (one watch per referenced name,
started and stopped as Peers change). The agent may read only the Secrets its Role
names (deploy/rbac.yaml): one it may not read (403) counts as listed and absent, so the
Peer naming it is reported and every other object still renders; the reflector keeps
asking, and the Secret arrives once the Role names it.

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
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lbroute.kube.client import Api, ApiClient
from lbroute.kube.directory import Snapshot
from lbroute.kube.errors import describe, from_status, translated
from lbroute.kube.trim import (
    JSON,
    Trim,
    keep_as,
    trim_endpoint_slice,
    trim_node,
    trim_service,
)
from lbroute.model.errors import Gone, KubernetesError
from lbroute.model.vocabulary import (
    API_VERSION,
    GROUP,
    LABELED_STATUS,
    NODE_AGENT,
    PEER,
    PLURALS,
    SERVICE_GROUP,
    SERVICE_GROUP_LABEL,
    VERSION,
)

log = logging.getLogger(__name__)

# -- what to follow -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Kind:
    """One kind to list and watch, and how to keep its objects."""

    name: str
    """For logs, and the reflector's key: 'services', 'secret lbroute/bgp-password'."""
    call: Callable[..., Any]
    """A generated list function taking the usual list/watch keyword arguments."""
    trim: Trim
    absent_when_forbidden: bool = False
    """A 403 means "none that this agent may read": listed, empty (Secrets)."""


def service_kind(api: Api, trim: Trim = trim_service, selector: str | None = None) -> Kind:
    """Services of every namespace (those the label ``selector`` selects, when given)."""
    return Kind(
        name="services",
        call=_selected(api.core.list_service_for_all_namespaces, selector),
        trim=trim,
    )


def _selected(call: Callable[..., Any], selector: str | None) -> Callable[..., Any]:
    """``call`` (a list function) asking only for the objects the label ``selector``
    selects: the API server filters lists and watches alike."""
    if selector is None:
        return call

    def selected(**kwargs: Any) -> Any:
        return call(label_selector=selector, **kwargs)

    return selected


class Watch(StrEnum):
    """Which Services and EndpointSlices an agent lists and watches."""

    AUTO = "auto"
    """Labeled ones once the allocator says every ServiceGroup's Services are labeled
    (:func:`labeled_everywhere`: asked when the agent starts, then watched), until then
    every one."""
    LABELED = "labeled"
    """Only those with the allocator's label (:data:`SERVICE_GROUP_LABEL`)."""
    ALL = "all"
    """Every Service and EndpointSlice of the cluster."""


def labeled_everywhere(groups: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the allocator has labeled the Services of every one of ``groups`` (each
    status says :data:`LABELED_STATUS`); False without any group."""
    found = list(groups)
    return bool(found) and all(
        isinstance(g.get("status"), Mapping) and g["status"].get(LABELED_STATUS) is True
        for g in found
    )


def lbroute_kind(api: Api, namespace: str, kind: str, trim: Trim | None = None) -> Kind:
    """One of lbroute's kinds (``ServiceGroup``...) in ``namespace``, whole by default."""
    plural = PLURALS[kind]
    custom = api.custom

    def call(**kwargs: Any) -> Any:
        return custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **kwargs)

    return Kind(name=plural, call=call, trim=trim or keep_as(kind, API_VERSION))


def secret_kind(api: Api, namespace: str, name: str) -> Kind:
    """One Secret, by name."""
    core = api.core

    def call(**kwargs: Any) -> Any:
        return core.list_namespaced_secret(
            namespace, field_selector=f"metadata.name={name}", **kwargs
        )

    return Kind(
        name=f"secret {namespace}/{name}",
        call=call,
        trim=keep_as("Secret", "v1"),
        absent_when_forbidden=True,
    )


def node_kinds(api: Api, *, node: str, namespace: str, selector: str | None = None) -> list[Kind]:
    """What the agent of ``node`` reads (the Secrets its Peers name come with Peers);
    with ``selector``, only the Services and EndpointSlices it selects."""

    def own_node(**kwargs: Any) -> Any:
        return api.core.list_node(field_selector=f"metadata.name={node}", **kwargs)

    return [
        service_kind(api, selector=selector),
        Kind(
            name="endpointslices",
            call=_selected(api.discovery.list_endpoint_slice_for_all_namespaces, selector),
            trim=trim_endpoint_slice,
        ),
        Kind(name=f"node {node}", call=own_node, trim=trim_node),
        *(lbroute_kind(api, namespace, kind) for kind in (SERVICE_GROUP, PEER, NODE_AGENT)),
    ]


def secret_names(peers: Iterable[Mapping[str, Any]]) -> set[str]:
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


# -- one kind -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Timing:
    """How a reflector paces its requests."""

    watch_seconds: tuple[int, int] = (240, 360)
    """timeoutSeconds of each watch, drawn uniformly (the API ends it then)."""
    backoff: tuple[float, float] = (0.5, 30.0)
    """First and longest wait after a failure; each wait is drawn in [0, limit]."""
    connect_timeout: float = 10.0
    page: int = 500
    cached_lists: bool = False
    """List from the API server's watch cache (``resourceVersion=0``: no etcd read, no
    pages, possibly a moment behind) rather than a consistent read. For readers that
    converge on the watch that follows (the agents); not for the allocator, which must
    see every address already given before it hands out one. A relist after 410 Gone is
    always a consistent read."""
    start_jitter: float = 0.0
    """Up to this many seconds (drawn uniformly) before the first list, so that many
    agents starting at once (a cluster restart) do not all list in the same second."""


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
        self._consistent = not timing.cached_lists
        """Whether the next list must be a consistent read (after a 410 Gone)."""
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
            # Unblocks a read in the watch thread; raises when the response is already
            # closed or its connection released.
            with contextlib.suppress(ValueError, RuntimeError, OSError):
                response.shutdown()

    def objects(self) -> list[JSON]:
        with self.lock:
            return list(self.items.values())

    def _run(self) -> None:
        if self.timing.start_jitter > 0:
            self._stop.wait(random.uniform(0, self.timing.start_jitter))
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._list()
                self._watch()
            except Gone:
                log.info("%s: resourceVersion too old (410 Gone); listing again", self.kind.name)
                self.resource_version = None
                self._consistent = True  # the cache may be as old: read from etcd once
            except KubernetesError as exc:
                if exc.status == 403 and self.kind.absent_when_forbidden:
                    self._forbidden()
                self._failed(exc)
            except Exception as exc:  # a bug (a trimmer choking on an odd object): the
                # thread must survive it, or this kind would never change again
                self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        """Keep what is known; try again after a backoff that grows with each failure."""
        if self._stop.is_set():
            return
        if self.healthy:
            log.warning(
                "%s: %s; keeping what is known and retrying",
                self.kind.name,
                describe(exc),
                exc_info=not isinstance(exc, KubernetesError),
            )
        self.healthy = False
        self._stop.wait(random.uniform(0, self._limit))
        self._limit = min(self._limit * 2, self.timing.backoff[1])

    def _forbidden(self) -> None:
        """Not allowed to read: as listed, with nothing in it (see the module docstring)."""
        with self.lock:
            changed, self.items = bool(self.items), {}
        self.resource_version = None
        first = not self.synced.is_set()
        self.synced.set()
        if changed or first:  # a first answer completes the snapshot, as a list does
            self.on_change()

    def _reached(self) -> None:
        """The API answered: the next failure starts the backoff from the beginning."""
        if not self.healthy:
            log.info("%s: API reachable again", self.kind.name)
        self.healthy = True
        self._limit = self.timing.backoff[0]

    def _request(self, **kwargs: Any) -> Any:
        with translated():
            return self.kind.call(_preload_content=False, **kwargs)

    def _list(self) -> None:
        items: dict[tuple[str, str], JSON] = {}
        token: str | None = None
        cached = not self._consistent
        while True:
            kwargs: JSON = {"resource_version": "0"} if cached else {"limit": self.timing.page}
            if token:
                kwargs["_continue"] = token
            response = self._request(_request_timeout=(self.timing.connect_timeout, 60), **kwargs)
            with translated():
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
        self._consistent = not self.timing.cached_lists
        self.lists += 1
        first = not self.synced.is_set()
        self.synced.set()
        if changed or first:  # a first list of nothing completes the snapshot too
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
            for event in watch_events(response):
                if self._stop.is_set():
                    return
                self._event(event)
        finally:
            self._response = None
            response.release_conn()

    def _event(self, event: Mapping[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 0)
            message = f"watch error {code}: {obj.get('message')}"
            raise from_status(code, str(obj.get("reason") or ""), message)
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED"):
            trimmed = self.kind.trim(obj)
            key = _key(trimmed)
            with self.lock:
                changed = self.items.get(key) != trimmed
                if changed:  # else the same dict stays: its readers reuse what they made
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


def watch_events(response: Any) -> Iterator[JSON]:
    """The events of a watch as they arrive: one JSON object per line of the streamed
    response, whatever the chunks the lines come in."""
    pending = bytearray()
    with translated():
        for chunk in response.stream(amt=None, decode_content=False):
            pending += chunk
            while (end := pending.find(b"\n")) >= 0:
                line = bytes(pending[:end])
                del pending[: end + 1]
                if line.strip():
                    yield json.loads(line)
        if pending.strip():
            yield json.loads(bytes(pending))


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


# -- every kind -----------------------------------------------------------------------------


class KubernetesSource:
    """Snapshots of the objects of ``kinds`` (by default what the agent of ``node``
    reads), from the Kubernetes API. The Secrets that Peers name are followed when the
    kinds include Peers.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        node: str = "",
        namespace: str,
        timing: Timing | None = None,
        debounce: float = 0.05,
        kinds: Iterable[Kind] | None = None,
        watch: Watch = Watch.ALL,
    ) -> None:
        self.api = Api(api)
        self.kinds = list(kinds) if kinds is not None else None
        self.watch = watch
        self.selector: str | None = None
        """The label selector of the Services and EndpointSlices the agent follows
        (None: every one), decided when :meth:`snapshots` starts."""
        self.node = node
        self.namespace = namespace
        self.timing = timing or Timing()
        self.debounce = debounce
        self._changed = threading.Condition()
        self._dirty = False
        self.reflectors: dict[str, Reflector] = {}
        self._secrets: dict[str, Reflector] = {}
        self._first_change: float | None = None
        """When the first change not yet in a snapshot arrived (monotonic)."""
        self._narrowing: dict[str, Reflector] = {}
        """``auto``: the label-selected Service and EndpointSlice reflectors listing, to
        replace the ones that follow every object once they have listed."""

    def _notify(self) -> None:
        with self._changed:
            if self._first_change is None:
                self._first_change = time.monotonic()
            self._dirty = True
            self._changed.notify_all()

    def _follow_secrets(self, peers: Reflector) -> None:
        """One watch per Secret that a Peer names; none for the others."""
        wanted = secret_names(peers.objects())
        for name in set(self._secrets) - wanted:
            self._secrets.pop(name).stop()
        for name in sorted(wanted - set(self._secrets)):
            kind = secret_kind(self.api, self.namespace, name)
            self._secrets[name] = Reflector(kind, self._notify, self.timing).start()

    def _followed(self) -> list[Reflector]:
        """The reflectors whose objects make the snapshots (not those still narrowing)."""
        return [*self.reflectors.values(), *self._secrets.values()]

    def _all(self) -> list[Reflector]:
        return [*self._followed(), *self._narrowing.values()]

    def _narrow(self) -> None:
        """``auto``, watching every Service and EndpointSlice: once every ServiceGroup's
        status says its Services are labeled (the allocator finished after this agent
        started), list and watch only the labeled ones; the new reflectors replace the
        old once they have listed, so no snapshot lacks what they hold. One way only: a
        Service this allocator gives addresses is labeled with them."""
        if self.watch is not Watch.AUTO or self.selector is not None or self.kinds is not None:
            return
        if not self._narrowing:
            groups = self.reflectors.get(PLURALS[SERVICE_GROUP])
            if groups is None or not labeled_everywhere(groups.objects()):
                return
            log.info(
                "every ServiceGroup's status says %s: watching only the Services and "
                "EndpointSlices labeled %s from now on",
                LABELED_STATUS,
                SERVICE_GROUP_LABEL,
            )
            wanted = ("services", "endpointslices")
            kinds = node_kinds(
                self.api, node=self.node, namespace=self.namespace, selector=SERVICE_GROUP_LABEL
            )
            self._narrowing = {
                k.name: Reflector(k, self._notify, self.timing).start()
                for k in kinds
                if k.name in wanted
            }
            return
        if all(r.synced.is_set() for r in self._narrowing.values()):
            for name, reflector in self._narrowing.items():
                self.reflectors.pop(name).stop()
                self.reflectors[name] = reflector
            self._narrowing = {}
            self.selector = SERVICE_GROUP_LABEL

    def snapshot(self, at: float = 0.0) -> Snapshot:
        objects: list[JSON] = []
        for reflector in self._followed():
            objects += reflector.objects()
        return Snapshot(objects=tuple(objects), at=at)

    def snapshots(self, stop: threading.Event) -> Iterator[Snapshot]:
        kinds = self.kinds
        if kinds is None:
            self.selector = self._selector()
            kinds = node_kinds(
                self.api, node=self.node, namespace=self.namespace, selector=self.selector
            )
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

    def _selector(self) -> str | None:
        """The label selector :attr:`watch` asks for; for ``auto``, one list of the
        ServiceGroups says whether the allocator has labeled every group's Services."""
        if self.watch is Watch.ALL:
            return None
        if self.watch is Watch.LABELED:
            log.info("watching only Services and EndpointSlices labeled %s", SERVICE_GROUP_LABEL)
            return SERVICE_GROUP_LABEL
        plural = PLURALS[SERVICE_GROUP]
        try:
            with translated():
                found = self.api.custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, plural
                )
        except KubernetesError as exc:
            log.warning("watching every Service and EndpointSlice: %s", describe(exc))
            return None
        items = found.get("items") if isinstance(found, Mapping) else None
        if labeled_everywhere(items or ()):
            log.info(
                "watching only Services and EndpointSlices labeled %s (every ServiceGroup's "
                "status says %s)",
                SERVICE_GROUP_LABEL,
                LABELED_STATUS,
            )
            return SERVICE_GROUP_LABEL
        log.info(
            "watching every Service and EndpointSlice: the allocator has not labeled the "
            "Services of every ServiceGroup yet (their status says %s: true once it has; "
            "the agent looks again when it starts)",
            LABELED_STATUS,
        )
        return None

    def _wake_on(self, stop: threading.Event) -> None:
        stop.wait()
        self._notify()

    def _yield(self, stop: threading.Event) -> Iterator[Snapshot]:
        """A snapshot at once for a change after a quiet moment, and at most one every
        ``debounce`` seconds while changes keep coming (a burst lands in the next one):
        a single change is not held back to wait for others that do not come."""
        announced_wait = False
        last = float("-inf")
        while not stop.is_set():
            with self._changed:
                while not self._dirty and not stop.is_set():
                    self._changed.wait()
                self._dirty = False
            if stop.is_set():
                return
            if (left := last + self.debounce - time.monotonic()) > 0:
                stop.wait(left)  # within a burst: let the rest of it land
            with self._changed:
                self._dirty = False
                at, self._first_change = self._first_change or 0.0, None
            peers = self.reflectors.get(PLURALS[PEER])
            if peers is not None and peers.synced.is_set():
                self._follow_secrets(peers)
            self._narrow()
            waiting = [r.kind.name for r in self._followed() if not r.synced.is_set()]
            if waiting:
                if not announced_wait:
                    log.info("waiting for the first list of: %s", ", ".join(waiting))
                    announced_wait = True
                continue
            yield self.snapshot(at)
            last = time.monotonic()

    @property
    def healthy(self) -> bool:
        return all(r.healthy for r in self._all())
