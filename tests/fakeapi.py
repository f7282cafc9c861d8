"""A protocol-level fake Kubernetes API server for tests.

The real ``kubernetes`` client talks to it over plain HTTP on 127.0.0.1::

    with FakeAPI() as api:
        api.kubeconfig(tmp_path / "kubeconfig")
        ...  # kubernetes.config.load_kube_config(config_file=...)

What it serves, as the real API server does:

- the kinds in ``RESOURCES`` (core v1, discovery.k8s.io, coordination.k8s.io, events.k8s.io and
  the lbroute.io CRDs) with discovery documents, ``/version`` and the health endpoints;
- list (label and field selectors, ``limit``/``continue``), watch (chunked JSON lines, replay
  after ``resourceVersion``, ``allowWatchBookmarks``, ``timeoutSeconds``), get, create, update,
  patch (JSON patch, merge patch, strategic merge patch for built-in kinds), delete and
  deletecollection, the ``status`` subresource;
- one global resourceVersion counter; uid, creationTimestamp and generation set by the server;
  a write that changes nothing bumps nothing and sends no event;
- finalizers: deleting an object that has some only sets ``deletionTimestamp``; removing the last
  one from a deleted object deletes it;
- ``Status`` errors with the real reasons and codes: NotFound 404, AlreadyExists 409, Conflict 409,
  Expired 410 (the reason the real server gives for a too-old watch or continue token; the code is
  the 410 Gone clients act on), BadRequest 400, Invalid 422, UnsupportedMediaType 415,
  Unauthorized 401, and Forbidden 403 for what ``authorize`` (method, path, query string)
  refuses, when given (tests/rbac.py decides as RBAC would).

Approximations, on purpose:

- strategic merge patch knows only the merge keys in ``Resource.merge_keys`` (plus
  ``metadata.ownerReferences`` by uid and ``metadata.finalizers`` as a set); other lists are
  replaced. Directives ``$patch: replace|delete``, ``$retainKeys`` and
  ``$deleteFromPrimitiveList/<field>`` are honoured, ``$setElementOrder/<field>`` is ignored.
  As on the real server, custom resources reject it (415);
- no server-side apply (415), no schema validation, no defaulting beyond the initial status,
  namespaces need not exist, deleting a namespace does not delete its contents;
- lists always read the latest state (``resourceVersion``/``resourceVersionMatch`` are ignored);
  the pages after a ``continue`` token come from the current state, not a snapshot;
- core v1 and events.k8s.io/v1 Events are stored separately;
- the EndpointSlice controller's label mirroring, alone: an EndpointSlice labeled
  ``kubernetes.io/service-name`` carries the labels of that Service (but the reserved
  ones), set when either is written;
- automatic bookmarks every ``bookmark_interval`` seconds (the real server: about a minute);
  ``bookmark()`` sends one now.

Test hooks: ``stop_serving()``/``resume()`` (refuse connections, cut every open connection and
watch, then listen again on the same port), ``compact()``, ``bookmark()``, ``requests`` (what the
client did), ``get``/``objects``/``put``/``remove`` (the store, without HTTP) and
``wait_watches()``.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import ctypes
import datetime
import json
import os
import queue
import random
import re
import select
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import yaml

JSON = dict[str, Any]
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
_POLL = 0.2  # how often an idle watch checks that its client is still there


@dataclass(frozen=True, kw_only=True)
class Resource:
    """One kind the fake serves."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = False
    """Has a ``status`` subresource: main-resource writes keep the stored status."""
    initial_status: JSON | None = None
    """Status set on create (the request's status is dropped) when ``status`` is set."""
    status_on_create: bool = False
    """Keep the status given on create (Nodes)."""
    generation: bool = False
    delete_returns_object: bool = False
    custom: bool = False
    fields: tuple[str, ...] = ()
    """Field selectors beyond metadata.name and metadata.namespace."""
    merge_keys: Mapping[str, str] = field(default_factory=dict)
    """Strategic merge: list path -> merge key ("" merges a list of scalars as a set)."""
    short_names: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def ref(self) -> str:
        """How the real server names the resource in messages: services, peers.lbroute.io."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


_META_KEYS = {"metadata.ownerReferences": "uid", "metadata.finalizers": ""}
_CONDITIONS = {"status.conditions": "type"}
_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)


def _crd(plural: str, kind: str) -> Resource:
    return Resource(
        group="lbroute.io",
        version="v1alpha1",
        plural=plural,
        kind=kind,
        status=True,
        generation=True,
        delete_returns_object=True,
        custom=True,
    )


RESOURCES: tuple[Resource, ...] = (
    Resource(
        group="",
        version="v1",
        plural="namespaces",
        kind="Namespace",
        namespaced=False,
        status=True,
        initial_status={"phase": "Active"},
        delete_returns_object=True,
        fields=("status.phase",),
        merge_keys={**_META_KEYS, **_CONDITIONS},
        short_names=("ns",),
    ),
    Resource(
        group="",
        version="v1",
        plural="nodes",
        kind="Node",
        namespaced=False,
        status=True,
        status_on_create=True,
        fields=("spec.unschedulable",),
        merge_keys={**_META_KEYS, **_CONDITIONS, "status.addresses": "type"},
        short_names=("no",),
    ),
    Resource(
        group="",
        version="v1",
        plural="services",
        kind="Service",
        status=True,
        initial_status={"loadBalancer": {}},
        generation=True,
        delete_returns_object=True,
        fields=("spec.clusterIP", "spec.type"),
        merge_keys={**_META_KEYS, **_CONDITIONS, "spec.ports": "port"},
        short_names=("svc",),
    ),
    Resource(group="", version="v1", plural="endpoints", kind="Endpoints", merge_keys=_META_KEYS),
    Resource(
        group="",
        version="v1",
        plural="secrets",
        kind="Secret",
        fields=("type",),
        merge_keys=_META_KEYS,
    ),
    Resource(group="", version="v1", plural="configmaps", kind="ConfigMap", merge_keys=_META_KEYS),
    Resource(
        group="",
        version="v1",
        plural="events",
        kind="Event",
        fields=_EVENT_FIELDS,
        merge_keys=_META_KEYS,
        short_names=("ev",),
    ),
    Resource(
        group="discovery.k8s.io",
        version="v1",
        plural="endpointslices",
        kind="EndpointSlice",
        fields=("addressType",),
        merge_keys=_META_KEYS,
    ),
    Resource(
        group="coordination.k8s.io",
        version="v1",
        plural="leases",
        kind="Lease",
        merge_keys=_META_KEYS,
    ),
    Resource(
        group="events.k8s.io",
        version="v1",
        plural="events",
        kind="Event",
        fields=("reason", "type", "regarding.kind", "regarding.name", "regarding.namespace"),
        merge_keys=_META_KEYS,
        short_names=("ev",),
    ),
    _crd("servicegroups", "ServiceGroup"),
    _crd("peers", "Peer"),
    _crd("nodeagents", "NodeAgent"),
    _crd("nodestates", "NodeState"),
)


class APIError(Exception):
    """A failure the server answers with a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> JSON:
        out: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            out["details"] = self.details
        return out


def _bad(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def _details(res: Resource, name: str) -> JSON:
    return {"name": name, "group": res.group, "kind": res.plural}


def _not_found(res: Resource, name: str) -> APIError:
    return APIError(404, "NotFound", f'{res.ref} "{name}" not found', _details(res, name))


def _conflict(res: Resource, name: str) -> APIError:
    return APIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.ref} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        _details(res, name),
    )


def _expired(message: str) -> APIError:
    return APIError(410, "Expired", message)


@dataclass(frozen=True, kw_only=True)
class LoggedRequest:
    """One request the fake answered, in RBAC terms where it hit a resource."""

    method: str
    path: str
    query: Mapping[str, str]
    verb: str
    """get, list, watch, create, update, patch, delete, deletecollection (or the HTTP method)."""
    group: str | None = None
    resource: str | None = None
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None
    content_type: str | None = None
    code: int = 0
    user_agent: str | None = None
    """The client's User-Agent header: tells apart clients sharing one server."""


@dataclass(frozen=True)
class _Change:
    rv: int
    res: Resource
    type: str
    obj: JSON
    old: JSON | None


@dataclass(frozen=True)
class _Bookmark:
    rv: int


_ABORT = None  # queued to a watch: cut the connection without ending the stream
_EXPIRE = "expire"  # queued to a watch: send a 410 ERROR event and end the stream
_Item = _Change | _Bookmark | str | None
_Key = tuple[str, str, str, str]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: JSON) -> JSON:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _key(res: Resource, namespace: str, name: str) -> _Key:
    return (res.group, res.plural, namespace if res.namespaced else "", name)


def _without(obj: JSON, *keys: str) -> JSON:
    return {k: v for k, v in obj.items() if k not in keys}


def _lookup(obj: Any, dotted: str) -> str:
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    if obj is None:
        return ""
    if isinstance(obj, bool):
        return "true" if obj else "false"
    return str(obj)


# -- selectors ---------------------------------------------------------------------------

_NAME = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_SET_RE = re.compile(rf"^({_NAME})\s+(in|notin)\s+\(([^)]*)\)$")
_EQ_RE = re.compile(rf"^({_NAME})\s*(==|=|!=)\s*({_VALUE})$")
_EXISTS_RE = re.compile(rf"^(!?)\s*({_NAME})$")

Requirement = tuple[str, str, frozenset[str]]


def parse_label_selector(text: str) -> list[Requirement]:
    """``a=b,c!=d,e in (f,g),h notin (i),j,!k`` into (key, op, values) requirements."""
    reqs: list[Requirement] = []
    for term in re.split(r",(?![^()]*\))", text):
        term = term.strip()
        if not term:
            continue
        if m := _SET_RE.match(term):
            values = frozenset(v.strip() for v in m[3].split(",") if v.strip())
            reqs.append((m[1], m[2], values))
        elif m := _EQ_RE.match(term):
            reqs.append((m[1], "!=" if m[2] == "!=" else "=", frozenset({m[3]})))
        elif m := _EXISTS_RE.match(term):
            reqs.append((m[2], "!" if m[1] else "exists", frozenset()))
        else:
            raise _bad(f"unable to parse requirement: {term!r}")
    return reqs


def labels_match(reqs: Iterable[Requirement], labels: Mapping[str, str]) -> bool:
    for key, op, values in reqs:
        present = key in labels
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
        if op in ("=", "in") and (not present or labels[key] not in values):
            return False
        if op in ("!=", "notin") and present and labels[key] in values:
            return False
    return True


def _parse_field_selector(res: Resource, text: str) -> list[tuple[str, bool, str]]:
    allowed = {"metadata.name", *res.fields}
    if res.namespaced:
        allowed.add("metadata.namespace")
    out = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        m = re.match(r"^([A-Za-z.]+)\s*(==|=|!=)\s*(.*)$", term)
        if not m:
            raise _bad(f"invalid selector: {term!r}; can't understand {term!r}")
        if m[1] not in allowed:
            raise _bad(f"field label not supported: {m[1]}")
        out.append((m[1], m[2] != "!=", m[3]))
    return out


@dataclass(frozen=True)
class _Filter:
    res: Resource
    namespace: str | None
    labels: list[Requirement]
    fields: list[tuple[str, bool, str]]

    def __call__(self, obj: JSON | None) -> bool:
        if obj is None:
            return False
        meta = _meta(obj)
        if self.namespace and meta.get("namespace") != self.namespace:
            return False
        if not labels_match(self.labels, meta.get("labels") or {}):
            return False
        return all((_lookup(obj, f) == v) == eq for f, eq, v in self.fields)


# -- patches -----------------------------------------------------------------------------

_DELETE = object()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if not k.startswith("$") and v is not None
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def strategic_merge_patch(
    target: Any, patch: Any, merge_keys: Mapping[str, str], path: str = ""
) -> Any:
    """Strategic merge patch, approximated (see the module docstring)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _strip_directives(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            result[name] = [x for x in result.get(name) or [] if x not in v]
            continue
        if k.startswith("$"):
            continue
        sub = f"{path}.{k}" if path else k
        if v is None:
            result.pop(k, None)
        elif isinstance(v, list):
            result[k] = _strategic_list(result.get(k), v, merge_keys, sub)
        else:
            merged = strategic_merge_patch(result.get(k), v, merge_keys, sub)
            if merged is _DELETE:
                result.pop(k, None)
            else:
                result[k] = merged
    if isinstance(retain := patch.get("$retainKeys"), list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _strategic_list(
    target: Any, patch: list[Any], merge_keys: Mapping[str, str], path: str
) -> list[Any]:
    current = list(target) if isinstance(target, list) else []
    key = merge_keys.get(path)
    if key is None or any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [_strip_directives(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if key == "":
        return current + [i for i in patch if i not in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise APIError(
                422, "Invalid", f"map: {item!r} does not contain declared merge key: {key}"
            )
        at = next((n for n, c in enumerate(current) if c.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if at is not None:
                del current[at]
        elif at is None:
            current.append(_strip_directives(item))
        else:
            current[at] = strategic_merge_patch(current[at], item, merge_keys, path)
    return current


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for p in parts:
        doc = doc[int(p)] if isinstance(doc, list) else doc[p]
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch; raises ValueError/KeyError/IndexError/TypeError on failure."""
    if not isinstance(ops, list):
        raise ValueError("a JSON patch is a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, parts = op["op"], _pointer(op["path"])
        if kind in ("move", "copy"):
            src = _pointer(op["from"])
            value = copy.deepcopy(_walk(doc, src))
            if kind == "move":
                doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
            doc = json_patch(doc, [{"op": "add", "path": op["path"], "value": value}])
            continue
        if kind == "test":
            if _walk(doc, parts) != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
            continue
        if not parts:
            if kind in ("add", "replace"):
                doc = copy.deepcopy(op["value"])
                continue
            raise ValueError("cannot remove the whole document")
        parent, last = _walk(doc, parts[:-1]), parts[-1]
        if kind == "remove" or kind == "replace":
            if isinstance(parent, list):
                idx = int(last)
                parent[idx]  # must exist
                if kind == "remove":
                    del parent[idx]
                else:
                    parent[idx] = copy.deepcopy(op["value"])
            else:
                parent[last]  # must exist
                if kind == "remove":
                    del parent[last]
                else:
                    parent[last] = copy.deepcopy(op["value"])
        elif kind == "add":
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                if not 0 <= idx <= len(parent):
                    raise IndexError(f"index {idx} out of range")
                parent.insert(idx, copy.deepcopy(op["value"]))
            elif isinstance(parent, dict):
                parent[last] = copy.deepcopy(op["value"])
            else:
                raise TypeError(f"cannot add to {type(parent).__name__}")
        else:
            raise ValueError(f"unknown op {kind!r}")
    return doc


# -- HTTP ------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, api: FakeAPI) -> None:
        self.api = api
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conns_lock:
            self.conns.add(request)
        # Headers and body go out in two writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (40 ms a response), as no real server does.
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self.conns_lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is not an error here."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged in FakeAPI.requests instead."""

    def _serve(self) -> None:
        self.server.api._serve(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def send_json(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True


CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")


def _in_netns(netns: str | None, make: Callable[[], _T]) -> _T:
    """``make()`` in a thread that entered network namespace ``netns`` first: a socket
    it creates stays in that namespace, whichever thread uses it later."""
    if netns is None:
        return make()
    made: list[_T] = []
    failed: list[BaseException] = []

    def enter_and_make() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
            finally:
                os.close(fd)
            made.append(make())
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=enter_and_make)  # it ends inside the namespace
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


# -- the fake ----------------------------------------------------------------------------


class FakeAPI:
    """The fake API server: a context manager; ``url`` once entered."""

    def __init__(
        self,
        *,
        token: str | None = None,
        history: int = 1000,
        bookmark_interval: float | None = 60.0,
        resources: Iterable[Resource] = RESOURCES,
        namespaces: Iterable[str] = ("default", "kube-system"),
        host: str = "127.0.0.1",
        netns: str | None = None,
        authorize: Callable[[str, str, str], bool] | None = None,
    ) -> None:
        self.token = token
        self.authorize = authorize
        """(method, path, query string) -> allowed; None: everything is."""
        self.host = host
        self.netns = netns
        """Listen inside this network namespace (root only): for clients running there."""
        self.bookmark_interval = bookmark_interval
        self.resources = tuple(resources)
        self._lock = threading.Condition()
        self._store: dict[_Key, JSON] = {}
        self._slices: dict[tuple[str, str], set[_Key]] = {}
        """(namespace, Service name) -> its EndpointSlices' keys (label mirroring)."""
        self._rv = 0
        self._floor = 0  # the oldest resourceVersion a watch can start from
        self._history: deque[_Change] = deque(maxlen=history)
        self._watches: dict[queue.Queue[_Item], Resource] = {}
        self._requests: list[LoggedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        for ns in namespaces:
            self.put("namespaces", {"metadata": {"name": ns}})

    # -- lifecycle

    def __enter__(self) -> FakeAPI:
        self.resume()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_serving()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def serving(self) -> bool:
        return self._server is not None

    def resume(self) -> None:
        """Listen (again, on the same port once one was chosen)."""
        if self._server is not None:
            return
        self._server = _in_netns(self.netns, lambda: _Server(self.host, self.port, self))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop_serving(self) -> None:
        """The API goes away: refuse connections and cut every open one, watches included."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.shutdown()
        thread.join()
        with self._lock:
            for q in self._watches:
                q.put(_ABORT)
        server.cut_connections()
        server.server_close()

    def kubeconfig(self, path: str | Path, *, namespace: str = "default") -> Path:
        """Write a kubeconfig for this server (plain HTTP, the bearer token if any)."""
        user: JSON = {"token": self.token} if self.token else {"username": "test"}
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": user}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path = Path(path)
        path.write_text(yaml.safe_dump(doc))
        return path

    # -- test hooks

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def compact(self, *, expire_watches: bool = True) -> None:
        """Every resourceVersion handed out so far becomes too old (410 for watches and
        continue tokens); open watches end with a 410 ERROR event unless told otherwise."""
        with self._lock:
            self._floor = self._rv + 1
            self._history.clear()
            if expire_watches:
                for q in self._watches:
                    q.put(_EXPIRE)

    def bookmark(self) -> None:
        """Send a BOOKMARK now to every watch that allows them."""
        with self._lock:
            for q in self._watches:
                q.put(_Bookmark(self._rv))

    def wait_watches(self, count: int, resource: str | None = None, timeout: float = 5.0) -> None:
        """Block until at least ``count`` watches (of ``resource``) are open."""
        res = self.resource(resource) if resource else None

        def enough() -> bool:
            return sum(1 for r in self._watches.values() if res in (None, r)) >= count

        with self._lock:
            if not self._lock.wait_for(enough, timeout):
                raise TimeoutError(f"fewer than {count} watches open after {timeout}s")

    def resource(self, name: str) -> Resource:
        """``services``, ``svc``, ``Service`` or ``events.events.k8s.io``; core wins ties."""
        for res in self.resources:
            if name in (res.plural, res.kind, res.ref, *res.short_names):
                return res
        raise KeyError(name)

    def get(self, resource: str, name: str, namespace: str = "default") -> JSON | None:
        res = self.resource(resource)
        with self._lock:
            obj = self._store.get(_key(res, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def objects(self, resource: str, namespace: str | None = None) -> list[JSON]:
        res = self.resource(resource)
        with self._lock:
            return copy.deepcopy(self._select(_Filter(res, namespace, [], [])))

    def put(self, resource: str, obj: JSON, namespace: str = "default") -> JSON:
        """Create or replace an object as is, status included (no HTTP, no status rules)."""
        res = self.resource(resource)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        ns = meta.setdefault("namespace", namespace) if res.namespaced else ""
        with self._lock:
            cur = self._store.get(_key(res, ns, meta["name"]))
            if cur is None:
                return self._create(res, ns, obj, keep_status=True)
            meta["resourceVersion"] = _meta(cur)["resourceVersion"]
            return self._update(res, cur, obj, subresource="all")

    def put_all(self, objects: Iterable[JSON]) -> None:
        """``put`` each object (of any kind the fake serves) in its own namespace."""
        for obj in objects:
            meta = obj.get("metadata") or {}
            self.put(obj["kind"], obj, meta.get("namespace") or "default")

    def remove(self, resource: str, name: str, namespace: str = "default") -> None:
        res = self.resource(resource)
        with self._lock:
            if (cur := self._store.get(_key(res, namespace, name))) is not None:
                self._commit(res, "DELETED", cur, cur)

    # -- the store (callers hold self._lock)

    def _select(self, flt: _Filter) -> list[JSON]:
        res = flt.res
        items = [
            obj
            for (g, p, _, _), obj in self._store.items()
            if (g, p) == (res.group, res.plural) and flt(obj)
        ]
        return sorted(items, key=lambda o: (_meta(o).get("namespace", ""), _meta(o)["name"]))

    def _commit(self, res: Resource, kind: str, obj: JSON, old: JSON | None) -> JSON:
        if kind != "DELETED" and res.plural == "endpointslices":
            obj = self._slice_labels(obj)
        written = self._commit_one(res, kind, obj, old)
        if kind != "DELETED" and res.plural == "services" and res.group == "":
            before = _meta(old).get("labels") if old is not None else None
            if _meta(written).get("labels") != before:
                self._mirror_labels(written)
        return written

    # The EndpointSlice controller: a Service's slices carry its labels (but the reserved
    # ones: the slice's own service-name, managed-by and headless labels).
    _RESERVED = (
        "kubernetes.io/service-name",
        "endpointslice.kubernetes.io/managed-by",
        "service.kubernetes.io/headless",
    )

    def _service_of(self, slice_: JSON) -> JSON | None:
        meta = _meta(slice_)
        name = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        services = self.resource("services")
        return self._store.get(_key(services, meta.get("namespace", ""), name)) if name else None

    def _slice_labels(self, slice_: JSON) -> JSON:
        svc = self._service_of(slice_)
        if svc is None:
            return slice_
        labels = {
            k: v for k, v in (_meta(slice_).get("labels") or {}).items() if k in self._RESERVED
        }
        labels.update(
            (k, v) for k, v in (_meta(svc).get("labels") or {}).items() if k not in self._RESERVED
        )
        out = copy.deepcopy(slice_)
        out["metadata"]["labels"] = labels
        return out

    def _mirror_labels(self, svc: JSON) -> None:
        slices = self.resource("endpointslices")
        ns, name = _meta(svc).get("namespace", ""), _meta(svc)["name"]
        for key in sorted(self._slices.get((ns, name), ())):
            cur = self._store[key]
            new = self._slice_labels(cur)
            if new != cur:
                self._commit_one(slices, "MODIFIED", new, cur)

    def _index_slice(self, key: _Key, obj: JSON | None, old: JSON | None) -> None:
        for o, add in ((old, False), (obj, True)):
            if o is None:
                continue
            service = (_meta(o).get("labels") or {}).get("kubernetes.io/service-name")
            if not service:
                continue
            keys = self._slices.setdefault((_meta(o).get("namespace", ""), service), set())
            if add:
                keys.add(key)
            else:
                keys.discard(key)

    def _commit_one(self, res: Resource, kind: str, obj: JSON, old: JSON | None) -> JSON:
        self._rv += 1
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        key = _key(res, meta.get("namespace", ""), meta["name"])
        if res.plural == "endpointslices":
            self._index_slice(key, None if kind == "DELETED" else obj, self._store.get(key))
        if kind == "DELETED":
            del self._store[key]
        else:
            self._store[key] = obj
        if len(self._history) == self._history.maxlen:
            self._floor = self._history[0].rv
        change = _Change(self._rv, res, kind, obj, old)
        self._history.append(change)
        for q, r in self._watches.items():
            if r is res:
                q.put(change)
        return copy.deepcopy(obj)

    def _create(self, res: Resource, ns: str, body: JSON, *, keep_status: bool = False) -> JSON:
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise _bad("metadata must be an object")
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise APIError(422, "Invalid", "name or generateName is required")
            alphabet = "bcdfghjklmnpqrstvwxz2456789"
            meta["name"] = meta["generateName"] + "".join(random.choices(alphabet, k=5))
        if res.namespaced:
            if meta.setdefault("namespace", ns) != ns:
                raise _bad(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
        else:
            meta.pop("namespace", None)
        if _key(res, ns, meta["name"]) in self._store:
            raise APIError(
                409,
                "AlreadyExists",
                f'{res.ref} "{meta["name"]}" already exists',
                _details(res, meta["name"]),
            )
        body["apiVersion"], body["kind"] = res.group_version, res.kind
        if res.status and not (keep_status or res.status_on_create):
            body.pop("status", None)
            if res.initial_status is not None:
                body["status"] = copy.deepcopy(res.initial_status)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
        for k in ("deletionTimestamp", "resourceVersion", "generation"):
            meta.pop(k, None)
        if res.generation:
            meta["generation"] = 1
        return self._commit(res, "ADDED", body, None)

    def _update(self, res: Resource, cur: JSON, body: JSON, *, subresource: str | None) -> JSON:
        """Write ``body`` over ``cur``: the rules of PUT, also used after a patch."""
        meta, cur_meta = _meta(body), _meta(cur)
        name = cur_meta["name"]
        if "metadata" not in body or meta.get("name", name) != name:
            raise _bad(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})"
            )
        if meta.get("resourceVersion") not in (None, "", cur_meta["resourceVersion"]):
            raise _conflict(res, name)
        if subresource == "status":
            new = copy.deepcopy(cur)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(body)
            new["apiVersion"], new["kind"] = res.group_version, res.kind
            if res.status and subresource != "all":
                new.pop("status", None)
                if "status" in cur:
                    new["status"] = copy.deepcopy(cur["status"])
            keep = ("uid", "creationTimestamp", "namespace", "deletionTimestamp", "generation")
            new_meta = new.setdefault("metadata", {})
            for k in keep:
                new_meta.pop(k, None)
                if k in cur_meta:
                    new_meta[k] = cur_meta[k]
            if res.generation and _without(new, "metadata", "status") != _without(
                cur, "metadata", "status"
            ):
                new_meta["generation"] = cur_meta.get("generation", 0) + 1
        new["metadata"]["resourceVersion"] = cur_meta["resourceVersion"]
        if new == cur:
            return copy.deepcopy(cur)  # a no-op write bumps nothing
        if "deletionTimestamp" in new["metadata"] and not new["metadata"].get("finalizers"):
            return self._commit(res, "DELETED", new, cur)
        return self._commit(res, "MODIFIED", new, cur)

    def _patch(
        self, res: Resource, cur: JSON, body: bytes, ctype: str, subresource: str | None
    ) -> JSON:
        try:
            patch = json.loads(body or b"null")
        except ValueError as exc:
            raise _bad(f"error decoding patch: {exc}") from exc
        if ctype == STRATEGIC and res.custom:
            raise APIError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                f"include: {JSON_PATCH}, {MERGE}, application/apply-patch+yaml",
            )
        try:
            if ctype == MERGE:
                new = merge_patch(cur, patch)
            elif ctype == STRATEGIC:
                new = strategic_merge_patch(cur, patch, res.merge_keys)
            elif ctype == JSON_PATCH:
                new = json_patch(cur, patch)
            else:
                raise APIError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {JSON_PATCH}, {MERGE}, {STRATEGIC}",
                )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise APIError(422, "Invalid", f"the server rejected our request: {exc}") from exc
        if not isinstance(new, dict):
            raise APIError(422, "Invalid", "a patch must leave an object")
        return self._update(res, cur, new, subresource=subresource)

    def _delete(self, res: Resource, cur: JSON, options: JSON) -> JSON:
        meta = _meta(cur)
        pre = options.get("preconditions") or {}
        if pre.get("uid") not in (None, meta["uid"]) or pre.get("resourceVersion") not in (
            None,
            meta["resourceVersion"],
        ):
            raise _conflict(res, meta["name"])
        if meta.get("finalizers"):
            if "deletionTimestamp" in meta:
                return copy.deepcopy(cur)
            new = copy.deepcopy(cur)
            new["metadata"]["deletionTimestamp"] = _now()
            return self._commit(res, "MODIFIED", new, cur)
        gone = self._commit(res, "DELETED", cur, cur)
        if res.delete_returns_object:
            return gone
        details = {**_details(res, meta["name"]), "uid": meta["uid"]}
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }

    def _list(self, res: Resource, flt: _Filter, query: Mapping[str, str]) -> JSON:
        rv = self._rv
        items = self._select(flt)
        if token := query.get("continue"):
            try:
                data = json.loads(base64.urlsafe_b64decode(token.encode()))
                rv, start = int(data["rv"]), str(data["start"])
            except (ValueError, KeyError, TypeError) as exc:
                raise _bad(f"continue key is not valid: {exc}") from exc
            if rv < self._floor:
                raise _expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                )
            items = [
                o for o in items if f"{_meta(o).get('namespace', '')}/{_meta(o)['name']}" > start
            ]
        meta: JSON = {"resourceVersion": str(rv)}
        limit = int(query.get("limit") or 0)
        if 0 < limit < len(items):
            last = _meta(items[limit - 1])
            start = f"{last.get('namespace', '')}/{last['name']}"
            token = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start})
            meta["continue"] = base64.urlsafe_b64encode(token.encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if not res.custom:
            items = [_without(o, "apiVersion", "kind") for o in items]
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.group_version,
            "metadata": meta,
            "items": copy.deepcopy(items),
        }

    # -- requests

    def _serve(self, h: _Handler) -> None:
        url = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip()
        agent = h.headers.get("User-Agent")
        record = LoggedRequest(
            method=h.command, path=url.path, query=query, verb=h.command, user_agent=agent
        )
        try:
            if self.token and h.headers.get("Authorization") != f"Bearer {self.token}":
                raise APIError(401, "Unauthorized", "Unauthorized")
            if (doc := self._discovery(url.path)) is not None:
                if h.command != "GET":
                    raise APIError(405, "MethodNotAllowed", f"{h.command} is not supported")
                code, out = 200, doc
            else:
                res, ns, name, sub = self._route(url.path)
                verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(h.command, "")
                if h.command == "GET":
                    verb = "get" if name else "list"
                    if query.get("watch") in ("true", "1"):
                        verb = "watch"
                elif h.command == "DELETE":
                    verb = "delete" if name else "deletecollection"
                record = LoggedRequest(
                    method=h.command,
                    path=url.path,
                    query=query,
                    verb=verb,
                    group=res.group,
                    resource=res.plural,
                    subresource=sub,
                    namespace=ns or None,
                    name=name,
                    content_type=ctype or None,
                    user_agent=agent,
                )
                if self.authorize is not None and not self.authorize(
                    h.command, url.path, url.query
                ):
                    raise APIError(403, "Forbidden", f"{verb} {url.path} is forbidden")
                if verb == "watch":
                    self._watch(h, res, self._filter(res, ns, query), query, record)
                    return
                code, out = self._call(res, ns, name, sub, verb, body, ctype, query)
        except APIError as err:
            code, out = err.code, err.status()
        self._log(record, code)
        h.send_json(code, out)

    def _log(self, record: LoggedRequest, code: int) -> None:
        with self._lock:
            self._requests.append(
                LoggedRequest(**{**record.__dict__, "code": code})  # frozen: rebuild
            )

    def _call(
        self,
        res: Resource,
        ns: str,
        name: str | None,
        sub: str | None,
        verb: str,
        body: bytes,
        ctype: str,
        query: Mapping[str, str],
    ) -> tuple[int, JSON]:
        with self._lock:
            if name is None:
                if sub is not None or verb not in ("list", "create", "deletecollection"):
                    raise APIError(405, "MethodNotAllowed", f"{verb} needs a name")
                if verb == "list":
                    return 200, self._list(res, self._filter(res, ns, query), query)
                if verb == "create":
                    obj = self._decode(body)
                    if query.get("dryRun"):
                        return 201, obj
                    return 201, self._create(res, ns, obj)
                for obj in self._select(self._filter(res, ns, query)):
                    self._delete(res, obj, {})
                return 200, {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                }
            cur = self._store.get(_key(res, ns, name))
            if cur is None:
                raise _not_found(res, name)
            if verb == "get":
                return 200, copy.deepcopy(cur)
            if verb == "update":
                return 200, self._update(res, cur, self._decode(body), subresource=sub)
            if verb == "patch":
                return 200, self._patch(res, cur, body, ctype, sub)
            if verb == "delete" and sub is None:
                return 200, self._delete(res, cur, self._decode(body) if body else {})
            raise APIError(405, "MethodNotAllowed", f"{verb} is not supported on {sub}")

    @staticmethod
    def _decode(body: bytes) -> JSON:
        try:
            obj = json.loads(body)
        except ValueError as exc:
            raise _bad(f"error decoding body: {exc}") from exc
        if not isinstance(obj, dict):
            raise _bad("the body must be a JSON object")
        return obj

    def _filter(self, res: Resource, ns: str, query: Mapping[str, str]) -> _Filter:
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = _parse_field_selector(res, query.get("fieldSelector", ""))
        return _Filter(res, ns or None, labels, fields)

    def _route(self, path: str) -> tuple[Resource, str, str | None, str | None]:
        """A resource path into (resource, namespace, name, subresource)."""
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        served = {r.plural: r for r in self.resources if (r.group, r.version) == (group, version)}
        ns = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] in served:
            ns, rest = rest[1], rest[2:]
        res = served.get(rest[0])
        if res is None or len(rest) > 3 or (ns and not res.namespaced):
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and not (sub == "status" and res.status):
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        return res, ns, name, sub

    def _discovery(self, path: str) -> JSON | None:
        path = path.rstrip("/")
        if path in ("/healthz", "/readyz", "/livez"):
            return {"status": "ok"}
        if path == "/version":
            return {
                "major": "1",
                "minor": "31",
                "gitVersion": "v1.31.0-fakeapi",
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2024-08-13T00:00:00Z",
                "goVersion": "go1.22.5",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                ],
            }
        groups: dict[str, list[str]] = {}
        for r in self.resources:
            if r.group and r.version not in groups.setdefault(r.group, []):
                groups[r.group].append(r.version)

        def group_doc(name: str) -> JSON:
            versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in groups[name]]
            return {"name": name, "versions": versions, "preferredVersion": versions[0]}

        if path == "/apis":
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [group_doc(g) for g in groups],
            }
        parts = path.split("/")[1:]
        if parts[0] == "apis" and len(parts) == 2 and parts[1] in groups:
            return {"kind": "APIGroup", "apiVersion": "v1", **group_doc(parts[1])}
        if parts == ["api", "v1"] or (parts[0] == "apis" and len(parts) == 3):
            gv = "/".join(parts[1:]) if parts[0] == "apis" else "v1"
            served = [r for r in self.resources if r.group_version == gv]
            if not served:
                return None
            verbs = [
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
            docs: list[JSON] = []
            for r in served:
                docs.append(
                    {
                        "name": r.plural,
                        "singularName": r.kind.lower(),
                        "namespaced": r.namespaced,
                        "kind": r.kind,
                        "verbs": verbs,
                        "shortNames": list(r.short_names),
                    }
                )
                if r.status:
                    docs.append(
                        {
                            "name": f"{r.plural}/status",
                            "singularName": "",
                            "namespaced": r.namespaced,
                            "kind": r.kind,
                            "verbs": ["get", "patch", "update"],
                        }
                    )
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": gv,
                "resources": docs,
            }
        return None

    # -- watch

    def _watch(
        self,
        h: _Handler,
        res: Resource,
        flt: _Filter,
        query: Mapping[str, str],
        record: LoggedRequest,
    ) -> None:
        rv_param = query.get("resourceVersion", "")
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        initial_end = query.get("sendInitialEvents") == "true"
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        q: queue.Queue[_Item] | None = queue.Queue()
        events: list[JSON] = []
        with self._lock:
            if rv_param in ("", "0") or initial_end:
                events = [{"type": "ADDED", "object": o} for o in copy.deepcopy(self._select(flt))]
                if initial_end and bookmarks:
                    mark = self._bookmark_event(res, self._rv)
                    mark["object"]["metadata"]["annotations"] = {
                        "k8s.io/initial-events-end": "true"
                    }
                    events.append(mark)
            elif not rv_param.isdigit():
                raise _bad(f"invalid resource version: {rv_param}")
            elif int(rv_param) < self._floor:
                gone = _expired(f"too old resource version: {rv_param} ({self._floor})")
                events = [{"type": "ERROR", "object": gone.status()}]
                q = None
            else:
                for change in self._history:
                    if change.rv > int(rv_param) and change.res is res:
                        events.extend(self._translate(change, flt))
            if q is not None:
                self._watches[q] = res
                self._lock.notify_all()
        self._log(record, 200)
        try:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for event in events:
                h.send_chunk(json.dumps(event).encode() + b"\n")
            if q is not None and not self._stream(h, res, flt, q, bookmarks, timeout):
                h.close_connection = True
                return
            h.send_chunk(b"")
        except OSError:
            h.close_connection = True
        finally:
            if q is not None:
                with self._lock:
                    self._watches.pop(q, None)

    def _stream(
        self,
        h: _Handler,
        res: Resource,
        flt: _Filter,
        q: queue.Queue[_Item],
        bookmarks: bool,
        timeout: float | None,
    ) -> bool:
        """Send events until the timeout (True) or until cut off (False)."""
        start = time.monotonic()
        deadline = start + timeout if timeout is not None else float("inf")
        interval = self.bookmark_interval if bookmarks else None
        next_mark = start + interval if interval else float("inf")
        while True:
            now = time.monotonic()
            if now >= deadline:
                return True
            if now >= next_mark:
                next_mark = now + (interval or 0)
                with self._lock:
                    if q.empty():
                        q.put(_Bookmark(self._rv))
            try:
                item = q.get(timeout=max(0.0, min(_POLL, deadline - now, next_mark - now)))
            except queue.Empty:
                if h.client_gone():
                    return False
                continue
            if item is _ABORT:
                return False
            if isinstance(item, _Change):
                out = self._translate(item, flt)
            elif isinstance(item, _Bookmark):
                out = [self._bookmark_event(res, item.rv)] if bookmarks else []
            else:
                gone = _expired("too old resource version: the history was compacted")
                h.send_chunk(
                    json.dumps({"type": "ERROR", "object": gone.status()}).encode() + b"\n"
                )
                return True
            for event in out:
                h.send_chunk(json.dumps(event).encode() + b"\n")

    @staticmethod
    def _bookmark_event(res: Resource, rv: int) -> JSON:
        obj = {
            "kind": res.kind,
            "apiVersion": res.group_version,
            "metadata": {"resourceVersion": str(rv)},
        }
        return {"type": "BOOKMARK", "object": obj}

    @staticmethod
    def _translate(change: _Change, flt: _Filter) -> list[JSON]:
        """A change as this watch sees it: objects entering or leaving its selectors."""
        now, before = flt(change.obj), flt(change.old)
        if change.type == "DELETED":
            kind = "DELETED" if before else None
        elif change.type == "ADDED":
            kind = "ADDED" if now else None
        else:
            kind = {(True, True): "MODIFIED", (True, False): "ADDED", (False, True): "DELETED"}.get(
                (now, before)
            )
        if kind is None:
            return []
        obj = change.obj
        if kind == "DELETED" and change.type == "MODIFIED" and change.old is not None:
            obj = copy.deepcopy(change.old)
            obj["metadata"]["resourceVersion"] = str(change.rv)
        return [{"type": kind, "object": obj}]


__all__ = [
    "JSON_PATCH",
    "MERGE",
    "RESOURCES",
    "STRATEGIC",
    "APIError",
    "FakeAPI",
    "LoggedRequest",
    "Resource",
    "json_patch",
    "labels_match",
    "merge_patch",
    "parse_label_selector",
    "strategic_merge_patch",
]
