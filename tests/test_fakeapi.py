"""The fake API server (tests/fakeapi.py), exercised through the real ``kubernetes`` client.

Covers discovery and auth; create/get/list/update/patch/delete with the real Status errors
(AlreadyExists, NotFound, Conflict on a stale resourceVersion, UnsupportedMediaType); merge,
strategic merge and JSON patches; the status subresource and generation; finalizers; label and
field selectors; paging; watch with initial state, replay after a resourceVersion, selector
transitions and bookmarks; 410 on a too-old watch or continue token; the API going away and
coming back; and the request log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, cast

import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.fakeapi import APIError, FakeAPI, json_patch, parse_label_selector, strategic_merge_patch

NS = "lbroute"
GROUP, VERSION = "lbroute.io", "v1alpha1"


@pytest.fixture
def api() -> Iterator[FakeAPI]:
    with FakeAPI() as fake:
        yield fake


def _client(fake: FakeAPI, path: Path) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]  # the client's loader has no hints
        config_file=str(fake.kubeconfig(path)), client_configuration=cfg
    )
    return client.ApiClient(cfg)


@pytest.fixture
def kube(api: FakeAPI, tmp_path: Path) -> Iterator[client.ApiClient]:
    with _client(api, tmp_path / "kubeconfig") as c:
        yield c


def _status(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    assert exc.value.body is not None
    body: dict[str, Any] = json.loads(exc.value.body)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["code"] == exc.value.status
    return body


def _svc(name: str, labels: dict[str, str] | None = None, port: int = 80) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": port}]},
    }


def _sg(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ServiceGroup",
        "metadata": {"name": name},
        "spec": spec or {"pools": [{"cidr": "192.0.2.0/24"}]},
    }


# The tests write objects as JSON: where the client's annotation names a model, it takes the
# JSON too (``cast`` to that model). Its models make every field optional: what the server
# always sets is narrowed where it is read.


class _Object(Protocol):
    @property
    def metadata(self) -> client.V1ObjectMeta | None: ...


def _meta(obj: _Object) -> client.V1ObjectMeta:
    assert obj.metadata is not None
    return obj.metadata


def _json(answer: object) -> dict[str, Any]:
    """An answer the client annotates as ``object`` (custom objects, Status): its JSON."""
    assert isinstance(answer, dict)
    return answer


# -- discovery, auth ---------------------------------------------------------------------


def test_discovery_documents(kube: client.ApiClient) -> None:
    assert client.CoreApi(kube).get_api_versions().versions == ["v1"]
    groups = {g.name for g in client.ApisApi(kube).get_api_versions().groups}
    assert {"discovery.k8s.io", "coordination.k8s.io", GROUP} <= groups
    core = {r.name for r in client.CoreV1Api(kube).get_api_resources().resources}
    assert {"services", "services/status", "nodes", "secrets", "events"} <= core
    crds = client.CustomObjectsApi(kube).get_api_resources(GROUP, VERSION)
    assert {r.name for r in crds.resources} >= {"servicegroups", "nodestates/status"}
    assert client.VersionApi(kube).get_code().major == "1"


def test_token_auth(tmp_path: Path) -> None:
    with FakeAPI(token="s3cret") as fake:
        with _client(fake, tmp_path / "good") as good:
            assert client.CoreV1Api(good).list_namespace().items
        anonymous = client.ApiClient(client.Configuration(host=fake.url))
        with anonymous, pytest.raises(ApiException) as exc:
            client.CoreV1Api(anonymous).list_namespace()
        assert _status(exc)["reason"] == "Unauthorized"


# -- CRUD --------------------------------------------------------------------------------


def test_create_get_list_and_errors(api: FakeAPI, kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    body = _svc("web") | {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    svc = core.create_namespaced_service(NS, cast(client.V1Service, body))
    meta = _meta(svc)
    assert meta.uid and meta.creation_timestamp and meta.generation == 1
    assert meta.resource_version is not None
    assert int(meta.resource_version) == api.resource_version
    assert svc.status is not None and svc.status.load_balancer is not None
    assert svc.status.load_balancer.ingress is None  # status is not written on create
    assert _meta(core.read_namespaced_service("web", NS)).uid == meta.uid

    with pytest.raises(ApiException) as exc:
        core.create_namespaced_service(NS, cast(client.V1Service, _svc("web")))
    assert exc.value.status == 409 and _status(exc)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_service("nope", NS)
    status = _status(exc)
    assert (status["reason"], status["message"]) == ("NotFound", 'services "nope" not found')

    core.create_namespaced_service("other", cast(client.V1Service, _svc("db")))
    listed = core.list_namespaced_service(NS)
    assert [_meta(s).name for s in listed.items] == ["web"]
    assert listed.metadata is not None
    assert listed.metadata.resource_version == str(api.resource_version)
    everywhere = core.list_service_for_all_namespaces()
    assert [(_meta(s).namespace, _meta(s).name) for s in everywhere.items] == [
        (NS, "web"),
        ("other", "db"),
    ]


def test_update_conflict_and_noop(api: FakeAPI, kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    stale = core.create_namespaced_service(NS, cast(client.V1Service, _svc("web")))
    fresh = core.read_namespaced_service("web", NS)
    _meta(fresh).labels = {"tier": "front"}
    updated = core.replace_namespaced_service("web", NS, fresh)
    updated_rv, stale_rv = _meta(updated).resource_version, _meta(stale).resource_version
    assert updated_rv is not None and stale_rv is not None
    assert int(updated_rv) > int(stale_rv)
    assert _meta(updated).generation == 1  # metadata only

    assert stale.spec is not None and stale.spec.ports is not None
    stale.spec.ports[0].port = 8080
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_service("web", NS, stale)
    assert exc.value.status == 409 and _status(exc)["reason"] == "Conflict"

    rv = api.resource_version
    again = core.replace_namespaced_service("web", NS, updated)
    assert _meta(again).resource_version == str(rv) == _meta(updated).resource_version

    assert updated.spec is not None and updated.spec.ports is not None
    updated.spec.ports[0].port = 8080
    assert _meta(core.replace_namespaced_service("web", NS, updated)).generation == 2


def test_patches(api: FakeAPI, kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_service(NS, cast(client.V1Service, _svc("web", {"a": "1"})))
    # a dict body is sent as a strategic merge patch: ports merge by their key "port"
    svc = core.patch_namespaced_service(
        "web", NS, {"metadata": {"labels": {"b": "2"}}, "spec": {"ports": [{"port": 443}]}}
    )
    assert _meta(svc).labels == {"a": "1", "b": "2"}
    assert svc.spec is not None and svc.spec.ports is not None
    assert [(p.name, p.port) for p in svc.spec.ports] == [("http", 80), (None, 443)]
    svc = core.patch_namespaced_service(
        "web", NS, {"spec": {"ports": [{"port": 80, "$patch": "delete"}]}}
    )
    assert svc.spec is not None and svc.spec.ports is not None
    assert [p.port for p in svc.spec.ports] == [443]
    assert _meta(svc).generation == 3
    # a list body is sent as a JSON patch
    svc = core.patch_namespaced_service(
        "web", NS, [{"op": "replace", "path": "/metadata/labels/a", "value": "9"}]
    )
    assert _meta(svc).labels == {"a": "9", "b": "2"}
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_service(
            "web", NS, [{"op": "test", "path": "/spec/type", "value": "x"}]
        )
    assert exc.value.status == 422
    kinds = [r.content_type for r in api.requests if r.verb == "patch"]
    assert (
        kinds
        == ["application/strategic-merge-patch+json"] * 2 + ["application/json-patch+json"] * 2
    )

    custom = client.CustomObjectsApi(kube)
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, "servicegroups", _sg("web"))
    sg = _json(
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, "servicegroups", "web", {"spec": {"default": True}}
        )
    )
    assert sg["spec"] == {"pools": [{"cidr": "192.0.2.0/24"}], "default": True}
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NS,
            "servicegroups",
            "web",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert exc.value.status == 415
    stale = {"metadata": {"resourceVersion": "1"}, "spec": {"default": False}}
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, "servicegroups", "web", stale)
    assert _status(exc)["reason"] == "Conflict"


def test_status_subresource_and_generation(api: FakeAPI, kube: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(kube)
    args = (GROUP, VERSION, NS, "nodestates")
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "NodeState",
        "metadata": {"name": "n1"},
        "spec": {"node": "n1"},
        "status": {"announced": 9},
    }
    created = _json(custom.create_namespaced_custom_object(*args, body))
    assert "status" not in created and created["metadata"]["generation"] == 1

    after = _json(
        custom.patch_namespaced_custom_object_status(
            *args, "n1", {"spec": {"node": "ignored"}, "status": {"announced": 3}}
        )
    )
    assert after["status"] == {"announced": 3} and after["spec"] == {"node": "n1"}
    assert after["metadata"]["generation"] == 1

    after["status"] = {"announced": 4}
    after = _json(custom.replace_namespaced_custom_object_status(*args, "n1", after))
    read = _json(custom.get_namespaced_custom_object_status(*args, "n1"))
    assert read["status"] == {"announced": 4}

    after["spec"], after["status"] = {"node": "n2"}, {"announced": 0}
    main = _json(custom.replace_namespaced_custom_object(*args, "n1", after))
    assert main["status"] == {"announced": 4} and main["metadata"]["generation"] == 2

    core = client.CoreV1Api(kube)
    core.create_namespaced_service(NS, cast(client.V1Service, _svc("web")))
    ingress = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}}
    svc = core.patch_namespaced_service_status("web", NS, ingress)
    assert svc.status and svc.status.load_balancer and svc.status.load_balancer.ingress
    assert svc.status.load_balancer.ingress[0].ip == "192.0.2.7"
    svc = core.patch_namespaced_service("web", NS, {"status": {"loadBalancer": {}}})
    assert svc.status and svc.status.load_balancer and svc.status.load_balancer.ingress
    assert svc.status.load_balancer.ingress[0].ip == "192.0.2.7"

    node = {
        "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]},
    }
    created_node = core.create_node(cast(client.V1Node, node))
    assert created_node.status is not None and created_node.status.addresses is not None
    assert created_node.status.addresses[0].address == "10.0.0.1"  # nodes keep status on create


def test_delete_and_finalizers(api: FakeAPI, kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_service(NS, cast(client.V1Service, _svc("web")))
    assert _meta(core.delete_namespaced_service("web", NS)).name == "web"
    assert api.get("services", "web", NS) is None

    pw = {"metadata": {"name": "pw"}, "stringData": {"k": "v"}}
    core.create_namespaced_secret(NS, cast(client.V1Secret, pw))
    assert _json(core.delete_namespaced_secret("pw", NS))["status"] == "Success"

    custom = client.CustomObjectsApi(kube)
    args = (GROUP, VERSION, NS, "peers")
    peer = {"metadata": {"name": "tor", "finalizers": ["lbroute.io/cleanup"]}, "spec": {}}
    custom.create_namespaced_custom_object(*args, peer)
    deleting = _json(custom.delete_namespaced_custom_object(*args, "tor"))
    assert deleting["metadata"]["deletionTimestamp"]
    still = _json(custom.get_namespaced_custom_object(*args, "tor"))
    assert still["metadata"]["deletionTimestamp"]
    custom.patch_namespaced_custom_object(*args, "tor", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as exc:
        custom.get_namespaced_custom_object(*args, "tor")
    assert _status(exc)["message"] == 'peers.lbroute.io "tor" not found'


def test_other_kinds(api: FakeAPI, kube: client.ApiClient) -> None:
    slices = client.DiscoveryV1Api(kube)
    eps = {
        "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.0.5"], "nodeName": "n1"}],
    }
    slices.create_namespaced_endpoint_slice(NS, cast(client.V1EndpointSlice, eps))
    found = slices.list_namespaced_endpoint_slice(
        NS, label_selector="kubernetes.io/service-name=web"
    )
    assert found.items[0].endpoints is not None
    assert found.items[0].endpoints[0].node_name == "n1"

    leases = client.CoordinationV1Api(kube)
    alloc = {"metadata": {"name": "alloc"}, "spec": {"holderIdentity": "a"}}
    lease = leases.create_namespaced_lease(NS, cast(client.V1Lease, alloc))
    assert lease.spec is not None
    lease.spec.holder_identity = "b"
    leases.replace_namespaced_lease("alloc", NS, lease)
    lease.spec.holder_identity = "c"
    with pytest.raises(ApiException) as exc:
        leases.replace_namespaced_lease("alloc", NS, lease)
    assert exc.value.status == 409

    core = client.CoreV1Api(kube)
    event = {
        "metadata": {"generateName": "web."},
        "reason": "Announced",
        "type": "Normal",
        "involvedObject": {"kind": "Service", "name": "web", "namespace": NS},
    }
    made = core.create_namespaced_event(NS, cast(client.CoreV1Event, event))
    assert made.metadata.name is not None
    assert made.metadata.name.startswith("web.") and len(made.metadata.name) == 9
    hits = core.list_namespaced_event(NS, field_selector="involvedObject.name=web,reason=Announced")
    assert [e.metadata.name for e in hits.items] == [made.metadata.name]


# -- selectors, paging -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web,tier!=db", ["a"]),
        ("tier in (db, cache)", ["b", "c"]),
        ("tier notin (db)", ["a", "c", "d"]),
        ("tier", ["a", "b", "c"]),
        ("!tier", ["d"]),
        ("", ["a", "b", "c", "d"]),
    ],
)
def test_label_selectors(
    api: FakeAPI, kube: client.ApiClient, selector: str, expected: list[str]
) -> None:
    labels = {
        "a": {"app": "web", "tier": "front"},
        "b": {"app": "web", "tier": "db"},
        "c": {"tier": "cache"},
        "d": {},
    }
    for name, lbl in labels.items():
        api.put("services", _svc(name, lbl), NS)
    found = client.CoreV1Api(kube).list_namespaced_service(NS, label_selector=selector)
    assert [_meta(s).name for s in found.items] == expected


def test_field_selectors_and_bad_requests(api: FakeAPI, kube: client.ApiClient) -> None:
    for name in ("a", "b"):
        api.put("services", _svc(name), NS)
    core = client.CoreV1Api(kube)
    only = core.list_namespaced_service(NS, field_selector="metadata.name=b")
    assert [_meta(s).name for s in only.items] == ["b"]
    rest = core.list_service_for_all_namespaces(field_selector="metadata.name!=b")
    assert [_meta(s).name for s in rest.items] == ["a"]
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_service(NS, field_selector="spec.ports=1")
    assert _status(exc)["reason"] == "BadRequest"
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_service(NS, label_selector="a in b")
    assert exc.value.status == 400
    with pytest.raises(APIError, match="unable to parse"):
        parse_label_selector("x >> y")


def test_paging_and_expired_continue(api: FakeAPI, kube: client.ApiClient) -> None:
    for name in "abcde":
        api.put("peers", {"metadata": {"name": name}, "spec": {}}, NS)
    custom = client.CustomObjectsApi(kube)
    args = (GROUP, VERSION, NS, "peers")
    page = _json(custom.list_namespaced_custom_object(*args, limit=2))
    names = [p["metadata"]["name"] for p in page["items"]]
    assert page["metadata"]["remainingItemCount"] == 3
    while token := page["metadata"].get("continue"):
        page = _json(custom.list_namespaced_custom_object(*args, limit=2, _continue=token))
        names += [p["metadata"]["name"] for p in page["items"]]
    assert names == list("abcde")

    page = _json(custom.list_namespaced_custom_object(*args, limit=2))
    api.compact()
    with pytest.raises(ApiException) as exc:
        custom.list_namespaced_custom_object(*args, limit=2, _continue=page["metadata"]["continue"])
    assert exc.value.status == 410 and _status(exc)["reason"] == "Expired"


# -- watch -------------------------------------------------------------------------------


def test_watch_initial_state_then_live_changes(api: FakeAPI, kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_service(NS, cast(client.V1Service, _svc("web", {"app": "x"})))
    seen: list[tuple[str, str, str]] = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_service, NS, label_selector="app=x"):
        obj = event["object"]
        seen.append((event["type"], obj.metadata.name, obj.metadata.labels.get("app", "")))
        if len(seen) == 1:
            core.patch_namespaced_service("web", NS, {"metadata": {"labels": {"v": "2"}}})
        elif len(seen) == 2:
            core.patch_namespaced_service("web", NS, {"metadata": {"labels": {"app": "y"}}})
        elif len(seen) == 3:
            core.create_namespaced_service(NS, cast(client.V1Service, _svc("db", {"app": "y"})))
            core.patch_namespaced_service("db", NS, {"metadata": {"labels": {"app": "x"}}})
        else:
            w.stop()
    assert seen == [
        ("ADDED", "web", "x"),
        ("MODIFIED", "web", "x"),
        ("DELETED", "web", "x"),  # left the selector: the last state it matched in
        ("ADDED", "db", "x"),  # entered it
    ]


def test_watch_replays_after_resource_version_and_bookmarks(
    api: FakeAPI, kube: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(kube)
    args = (GROUP, VERSION, NS, "servicegroups")
    created = _json(custom.create_namespaced_custom_object(*args, _sg("a")))
    start = created["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(*args, _sg("b"))
    custom.patch_namespaced_custom_object(*args, "a", {"spec": {"default": True}})
    custom.delete_namespaced_custom_object(*args, "b")
    api.put("services", _svc("unrelated"), NS)
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    stream = w.stream(
        custom.list_namespaced_custom_object,
        *args,
        resource_version=start,
        allow_watch_bookmarks=True,
    )
    for event in stream:
        name = event["raw_object"]["metadata"].get("name", "")
        seen.append((event["type"], name))
        if len(seen) == 3:
            api.bookmark()
        elif event["type"] == "BOOKMARK":
            w.stop()
    assert seen == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b"), ("BOOKMARK", "")]
    assert w.resource_version == str(api.resource_version)
    (request,) = [r for r in api.requests if r.verb == "watch"]
    assert request.query["resourceVersion"] == start


def test_watch_from_compacted_version_gets_410(api: FakeAPI, kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    created = core.create_namespaced_service(NS, cast(client.V1Service, _svc("web")))
    old = _meta(created).resource_version
    core.patch_namespaced_service("web", NS, {"metadata": {"labels": {"x": "1"}}})
    api.compact()
    # raw: an HTTP 200 stream holding one ERROR event with a 410 Status (the client's
    # annotation names the list it returns when it reads the answer, not the answer itself)
    raw = cast(
        urllib3.BaseHTTPResponse,
        core.list_namespaced_service(NS, watch=True, resource_version=old, _preload_content=False),
    )
    (line,) = raw.data.splitlines()
    raw.release_conn()
    event = json.loads(line)
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    # the client's Watch retries once from the same version, then raises
    api.clear_requests()
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(core.list_namespaced_service, NS, resource_version=old))
    assert exc.value.status == 410
    assert [r.verb for r in api.requests] == ["watch", "watch"]
    # with a timeout it does not retry
    api.clear_requests()
    with pytest.raises(ApiException):
        list(
            watch.Watch().stream(
                core.list_namespaced_service, NS, resource_version=old, timeout_seconds=5
            )
        )
    assert len(api.requests) == 1
    # compacting also ends open watches with the 410 ERROR event
    w = watch.Watch()
    with pytest.raises(ApiException) as exc:
        for _ in w.stream(core.list_namespaced_service, NS):
            api.compact()
    assert exc.value.status == 410


def test_bounded_history_expires_old_watches(tmp_path: Path) -> None:
    with FakeAPI(history=3) as fake, _client(fake, tmp_path / "kc") as kube:
        core = client.CoreV1Api(kube)
        created = core.create_namespaced_service(NS, cast(client.V1Service, _svc("web")))
        first = _meta(created).resource_version
        assert first is not None
        for n in range(3):
            core.patch_namespaced_service("web", NS, {"metadata": {"labels": {"n": str(n)}}})
        # the history holds the three patches: a watch from the create still misses nothing
        events = watch.Watch().stream(
            core.list_namespaced_service, NS, resource_version=first, timeout_seconds=1
        )
        assert [e["object"].metadata.labels["n"] for e in events] == ["0", "1", "2"]
        with pytest.raises(ApiException) as exc:
            list(
                watch.Watch().stream(
                    core.list_namespaced_service,
                    NS,
                    resource_version=str(int(first) - 1),
                    timeout_seconds=5,
                )
            )
        assert exc.value.status == 410


def test_watch_timeout_ends_the_stream(api: FakeAPI, kube: client.ApiClient) -> None:
    api.put("nodes", {"metadata": {"name": "n1"}})
    events = watch.Watch().stream(client.CoreV1Api(kube).list_node, timeout_seconds=1)
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "n1")]


# -- the API going away ------------------------------------------------------------------


def test_stop_serving_and_resume(api: FakeAPI, kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_service(NS, cast(client.V1Service, _svc("web")))
    w = watch.Watch()
    with pytest.raises(urllib3.exceptions.HTTPError):
        for event in w.stream(core.list_namespaced_service, NS):
            assert event["type"] == "ADDED"
            api.stop_serving()
    assert not api.serving
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.list_namespaced_service(NS, _request_timeout=2)

    api.put("services", _svc("db"), NS)  # changes while the API is away
    api.resume()
    names = [_meta(s).name for s in core.list_namespaced_service(NS).items]
    assert names == ["db", "web"]


def test_wait_watches_and_request_log(api: FakeAPI, kube: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(kube)
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, "nodestates", _sg("n1"))
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, NS, "nodestates", "n1", {"status": {"x": 1}}
    )
    with pytest.raises(TimeoutError):
        api.wait_watches(1, timeout=0.01)
    log = [(r.verb, r.group, r.resource, r.subresource, r.namespace, r.code) for r in api.requests]
    assert log == [
        ("create", GROUP, "nodestates", None, NS, 201),
        ("patch", GROUP, "nodestates", "status", NS, 200),
    ]


# -- patch helpers, table-driven ---------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": None}}, {"a": {"c": 2}}),
        ({"a": {"b": 1}}, {"a": {"$patch": "replace", "x": 1}}, {"a": {"x": 1}}),
        ({"a": {"b": 1}, "k": 1}, {"a": {"$patch": "delete"}}, {"k": 1}),
        (
            {"metadata": {"finalizers": ["a"]}},
            {"metadata": {"finalizers": ["b", "a"]}},
            {"metadata": {"finalizers": ["a", "b"]}},
        ),
        (
            {"metadata": {"finalizers": ["a", "b"]}},
            {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
            {"metadata": {"finalizers": ["b"]}},
        ),
        (
            {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
            {"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Invalid"}]}},
            {"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Invalid"}]}},
        ),
        ({"spec": {"other": [1, 2]}}, {"spec": {"other": [3]}}, {"spec": {"other": [3]}}),
    ],
)
def test_strategic_merge_patch(target: Any, patch: Any, expected: Any) -> None:
    keys = {"metadata.finalizers": "", "status.conditions": "type"}
    assert strategic_merge_patch(target, patch, keys) == expected


def test_json_patch_operations() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    ops = [
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "move", "from": "/b/c", "path": "/d"},
        {"op": "copy", "from": "/a/0", "path": "/a/0"},
        {"op": "remove", "path": "/b"},
        {"op": "test", "path": "/d", "value": 1},
    ]
    assert json_patch(doc, ops) == {"a": [1, 1, 2, 3], "d": 1}
    assert doc == {"a": [1, 2], "b": {"c": 1}}
    with pytest.raises(KeyError):
        json_patch(doc, [{"op": "remove", "path": "/zz"}])
