"""The install manifests in deploy/ and the images in docker/, checked without a cluster
and without docker.

What is checked:

(a) Every YAML file under deploy/ parses; every object has a known apiVersion and kind
    and is valid against the kubernetes client's model of that kind: the dict is walked
    against each model class's ``openapi_types`` and ``attribute_map`` (an unknown
    field, a scalar of the wrong type or a missing required field is reported with its
    path), then the client's own pydantic validation runs too where it has one.
(b) Names and labels agree: each DaemonSet's selector matches its pod labels, the
    ServiceAccount exists, every volume mount has its volume and every volume is
    mounted, the probes use the agent's named metrics port, which is the CLI's
    --metrics-port and the scrape annotation; NODE_NAME, POD_NAMESPACE and the address
    metrics listen on (the node's, status.hostIP; the allocator's pod's, status.podIP)
    come from the downward API; everything namespaced is in the install namespace.
(c) The DaemonSets as a node agent needs them: host network, the node label that
    NodeAgents select by, one node at a time, requests and memory limits, capabilities
    dropped but for the listed ones, each of which a comment in the manifest explains,
    never privileged, the router's config and socket directories shared between the
    agent and the router sidecar at the paths the agent is told, the sidecar command
    present in the image, the FRR group ids those of the image.
(d) The agent's arguments are accepted by the real CLI (click parses them against
    ``lbroute.cli:main``), and every option the manifests use is in an explicit
    expected set that must exist in the CLI.
(e) kustomization.yaml lists every manifest in deploy/ and nothing else, with the
    images the DaemonSets use, tagged with the project's version.
(f) The Dockerfiles, statically: debian:12-slim, every COPY source exists and is in the
    build context (.dockerignore semantics), every package of pyproject.toml is copied
    to where pip installs it from, non-editable, the Debian packages named exist, the
    entrypoint is the console script in the venv; the sidecar scripts pass ``bash -n``
    and the minimal router configurations pass ``bird -p`` and ``vtysh --dryrun``.
(g) RBAC: the checker in tests/rbac.py against table cases, and deploy/rbac.yaml grants
    the agent exactly the permissions listed in EXPECTED_GRANTS and nothing broader;
    Secrets only by name, only the named ones (those examples/ refers to).

What this cannot show: that the images build and run (no docker here), and how a real
API server, kubelet and container runtime treat the manifests.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import click
import pytest
import yaml
from kubernetes.client import models as k8s_models

from lbroute.cli import main as cli_main
from lbroute.model.api import Router
from nodeagent.settings import DEFAULT_PATHS
from tests.rbac import Permissions, Request, Rule, load_objects, request_attributes

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKER = ROOT / "docker"
NAMESPACE = "lbroute"
SERVICE_ACCOUNT = "lbroute-agent"
METRICS_PORT = 9473
ROUTER_LABEL = "lbroute.io/router"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]
DEBIAN_LISTS = Path("/work/.library/env/packages")
"""Lists of Debian packages of this workplace, when present (installed-*.txt)."""

JSON = dict[str, Any]


# -- loading ---------------------------------------------------------------------------


def yaml_files() -> list[Path]:
    """The base's files (deploy/components/ holds optional kustomize Components, checked
    rendered by tests/test_deploy_variants.py)."""
    return sorted(
        p
        for p in DEPLOY.rglob("*")
        if p.suffix in (".yaml", ".yml") and "components" not in p.relative_to(DEPLOY).parts
    )


def manifest_files() -> list[Path]:
    return [p for p in yaml_files() if p.name != "kustomization.yaml"]


def rel(path: Path) -> str:
    return path.relative_to(DEPLOY).as_posix()


def documents(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def all_objects() -> list[JSON]:
    return [doc for path in manifest_files() for doc in documents(path)]


def objects_of(kind: str) -> list[JSON]:
    return [o for o in all_objects() if o.get("kind") == kind]


def object_id(obj: JSON) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')}/{meta.get('name')}"


@dataclass(frozen=True, kw_only=True)
class RouterPod:
    """What one DaemonSet must look like for its router."""

    router: Router
    manifest: str
    dockerfile: str
    image: str
    sidecar: str
    sidecar_caps: frozenset[str]
    packages: frozenset[str]

    @property
    def config(self) -> str:
        return str(DEFAULT_PATHS[self.router][0])

    @property
    def socket(self) -> str:
        return str(DEFAULT_PATHS[self.router][1])

    @property
    def shared_dirs(self) -> tuple[str, str]:
        """The config file's directory and the socket's (FRR: the socket directory)."""
        socket_dir = self.socket if self.router is Router.FRR else str(Path(self.socket).parent)
        return str(Path(self.config).parent), socket_dir

    def daemonset(self) -> JSON:
        (ds,) = [o for o in documents(DEPLOY / self.manifest) if o.get("kind") == "DaemonSet"]
        return typing.cast(JSON, ds)


ROUTER_PODS = (
    RouterPod(
        router=Router.BIRD,
        manifest="agent-bird.yaml",
        dockerfile="Dockerfile.bird",
        image="lbroute-bird",
        sidecar="bird",
        sidecar_caps=frozenset({"NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"}),
        packages=frozenset({"bird2", "iproute2", "python3"}),
    ),
    RouterPod(
        router=Router.FRR,
        manifest="agent-frr.yaml",
        dockerfile="Dockerfile.frr",
        image="lbroute-frr",
        sidecar="frr",
        # Why each one, as measured: the comment above it in deploy/agent-frr.yaml.
        sidecar_caps=frozenset(
            {
                "NET_ADMIN",
                "NET_RAW",
                "NET_BIND_SERVICE",
                "SYS_ADMIN",
                "SETUID",
                "SETGID",
                "CHOWN",
                "KILL",
            }
        ),
        packages=frozenset({"frr", "frr-pythontools", "iproute2", "python3"}),
    ),
)
AGENT_CAPS = frozenset({"NET_ADMIN"})


def pod_id(pod: RouterPod) -> str:
    return pod.router.value


def containers(ds: JSON) -> dict[str, JSON]:
    return {c["name"]: c for c in ds["spec"]["template"]["spec"]["containers"]}


def agent_container(ds: JSON) -> JSON:
    return containers(ds)["agent"]


# -- (a) parsing and the kubernetes models ---------------------------------------------

KIND_MODELS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): "V1CustomResourceDefinition",
}
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding"}) | {
    "CustomResourceDefinition"
}

_LIST = re.compile(r"^(?:List\[|list\[)(.*)\]$")
_DICT = re.compile(r"^(?:Dict\[str, ?|dict\(str, ?)(.*)[\])]$")
_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
    "bytes": (str,),
}


def _model(name: str) -> type[Any] | None:
    found = getattr(k8s_models, name, None)
    return found if isinstance(found, type) and hasattr(found, "openapi_types") else None


def _required(cls: type[Any]) -> set[str]:
    """The attributes the model requires (pydantic models; older clients: setters)."""
    fields = getattr(cls, "model_fields", None)
    if fields is not None:
        return {name for name, info in fields.items() if info.is_required()}
    from kubernetes.client import Configuration

    required = set()
    for attr in cls.openapi_types:
        inst = object.__new__(cls)
        inst.local_vars_configuration = Configuration()
        try:
            getattr(cls, attr).fset(inst, None)
        except ValueError:
            required.add(attr)
    return required


def walk(value: Any, type_name: str, path: str) -> Iterator[str]:
    """Problems of ``value`` as an instance of the client's type ``type_name``."""
    if value is None:
        return
    if m := _LIST.match(type_name):
        if not isinstance(value, list):
            yield f"{path}: expected a list ({type_name}), got {type(value).__name__}"
            return
        for i, item in enumerate(value):
            yield from walk(item, m.group(1), f"{path}[{i}]")
        return
    if m := _DICT.match(type_name):
        if not isinstance(value, dict):
            yield f"{path}: expected a mapping ({type_name}), got {type(value).__name__}"
            return
        for key, item in value.items():
            if not isinstance(key, str):
                yield f"{path}: key {key!r} is not a string"
            yield from walk(item, m.group(1), f"{path}[{key}]")
        return
    if type_name == "object":  # int-or-string, free-form JSON
        return
    if type_name in _SCALARS:
        if isinstance(value, bool) and type_name != "bool":
            yield f"{path}: expected {type_name}, got bool"
        elif not isinstance(value, _SCALARS[type_name]):
            yield f"{path}: expected {type_name}, got {type(value).__name__} {value!r}"
        return
    cls = _model(type_name)
    if cls is None:
        yield f"{path}: the client has no model {type_name}"
        return
    if not isinstance(value, dict):
        yield f"{path}: expected a mapping ({type_name}), got {type(value).__name__}"
        return
    by_key = {key: attr for attr, key in cls.attribute_map.items()}
    for key, item in value.items():
        if key not in by_key:
            yield f"{path}.{key}: unknown field of {type_name}"
            continue
        yield from walk(item, cls.openapi_types[by_key[key]], f"{path}.{key}")
    for attr in sorted(_required(cls)):
        if value.get(cls.attribute_map[attr]) is None:
            yield f"{path}.{cls.attribute_map[attr]}: required by {type_name}, missing"


def model_errors(obj: JSON) -> list[str]:
    """Everything wrong with ``obj`` as the kubernetes client's model of its kind."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key not in KIND_MODELS:
        return [f"unknown kind {key[1]!r} of apiVersion {key[0]!r}"]
    name = KIND_MODELS[key]
    errors = list(walk(obj, name, "$"))
    cls = _model(name)
    if not errors and hasattr(cls, "model_validate"):
        try:
            cls.model_validate(obj)  # type: ignore[union-attr]
        except ValueError as exc:  # pydantic's ValidationError
            errors.append(f"$: {name}: {exc}")
    return errors


@pytest.mark.parametrize("path", yaml_files(), ids=rel)
def test_every_yaml_parses(path: Path) -> None:
    docs = documents(path)
    assert docs, f"{rel(path)} holds no object"
    for doc in docs:
        assert isinstance(doc, dict), f"{rel(path)}: a document is not a mapping"
        assert doc.get("apiVersion") and doc.get("kind"), f"{rel(path)}: no apiVersion/kind"
        if path.name != "kustomization.yaml":
            assert (doc.get("metadata") or {}).get("name"), f"{rel(path)}: unnamed object"


@pytest.mark.parametrize("obj", all_objects(), ids=object_id)
def test_objects_are_valid_against_the_client_models(obj: JSON) -> None:
    assert model_errors(obj) == []


def _bird_ds() -> JSON:
    return ROUTER_PODS[0].daemonset()


def _pod(ds: JSON) -> JSON:
    return typing.cast(JSON, ds["spec"]["template"]["spec"])


def _agent(ds: JSON) -> JSON:
    return typing.cast(JSON, _pod(ds)["containers"][0])


BREAKAGES: list[tuple[str, Callable[[JSON], None], str]] = [
    (
        "unknown field",
        lambda ds: _agent(ds).update(imagePullPolicyy="Always"),
        "$.spec.template.spec.containers[0].imagePullPolicyy: unknown field of V1Container",
    ),
    (
        "port as a string",
        lambda ds: _agent(ds)["ports"][0].update(containerPort="9473"),
        "containers[0].ports[0].containerPort: expected int, got str '9473'",
    ),
    (
        "argument as a number",
        lambda ds: _agent(ds)["args"].append(9473),
        "containers[0].args[",
    ),
    (
        "annotation as a number",
        lambda ds: ds["spec"]["template"]["metadata"]["annotations"].update(x=1),
        "$.spec.template.metadata.annotations[x]: expected str, got int 1",
    ),
    (
        "boolean as a string",
        lambda ds: _pod(ds).update(hostNetwork="true"),
        "$.spec.template.spec.hostNetwork: expected bool, got str 'true'",
    ),
    (
        "mapping instead of a list",
        lambda ds: _pod(ds).update(tolerations={}),
        "$.spec.template.spec.tolerations: expected a list",
    ),
    (
        "missing selector",
        lambda ds: ds["spec"].pop("selector"),
        "$.spec.selector: required by V1DaemonSetSpec, missing",
    ),
    (
        "container without a name",
        lambda ds: _agent(ds).pop("name"),
        "$.spec.template.spec.containers[0].name: required by V1Container, missing",
    ),
    (
        "unknown kind",
        lambda ds: ds.update(apiVersion="apps/v1beta2"),
        "unknown kind 'DaemonSet' of apiVersion 'apps/v1beta2'",
    ),
]


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [(b, e) for _, b, e in BREAKAGES],
    ids=[n for n, _, _ in BREAKAGES],
)
def test_the_model_check_catches(breakage: Callable[[JSON], None], expected: str) -> None:
    ds = copy.deepcopy(_bird_ds())
    assert model_errors(ds) == []
    breakage(ds)
    errors = model_errors(ds)
    assert any(expected in e for e in errors), errors


# -- (b) names, labels, references -----------------------------------------------------


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_daemonset_selector_matches_its_pods(pod: RouterPod) -> None:
    ds = pod.daemonset()
    selector = ds["spec"]["selector"]
    assert set(selector) == {"matchLabels"}, "only matchLabels: simple and immutable"
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert selector["matchLabels"].items() <= labels.items()
    assert labels[ROUTER_LABEL] == pod.router.value
    assert ds["metadata"]["labels"] == labels


def test_the_two_daemonsets_never_select_each_others_pods() -> None:
    bird, frr = (p.daemonset() for p in ROUTER_PODS)
    for a, b in ((bird, frr), (frr, bird)):
        assert not a["spec"]["selector"]["matchLabels"].items() <= (
            b["spec"]["template"]["metadata"]["labels"].items()
        )


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_service_account_exists(pod: RouterPod) -> None:
    ds = pod.daemonset()
    assert _pod(ds)["serviceAccountName"] == SERVICE_ACCOUNT
    accounts = {
        (o["metadata"].get("namespace"), o["metadata"]["name"])
        for o in objects_of("ServiceAccount")
    }
    assert (ds["metadata"]["namespace"], SERVICE_ACCOUNT) in accounts


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_volumes_and_mounts_match(pod: RouterPod) -> None:
    spec = _pod(pod.daemonset())
    volumes = [v["name"] for v in spec["volumes"]]
    assert len(volumes) == len(set(volumes)), "duplicate volume names"
    mounted = set()
    for c in spec["containers"]:
        paths = [m["mountPath"] for m in c.get("volumeMounts", [])]
        assert len(paths) == len(set(paths)), f"{c['name']}: a path mounted twice"
        for m in c.get("volumeMounts", []):
            assert m["name"] in volumes, f"{c['name']} mounts {m['name']}, which is no volume"
            mounted.add(m["name"])
    assert mounted == set(volumes), f"volumes nobody mounts: {set(volumes) - mounted}"


def _arg(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_probes_and_scraping_use_the_metrics_port(pod: RouterPod) -> None:
    ds = pod.daemonset()
    agent = agent_container(ds)
    (port,) = [p for p in agent["ports"] if p["name"] == "metrics"]
    assert port["containerPort"] == METRICS_PORT
    assert int(_arg(agent["args"], "--metrics-port")) == METRICS_PORT
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert agent[probe]["httpGet"] == {"path": path, "port": "metrics"}, probe
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    for name, c in containers(ds).items():
        if name != "agent":
            assert "ports" not in c, f"{name}: the sidecar serves no port of its own"


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_environment_from_the_downward_api(pod: RouterPod) -> None:
    agent = agent_container(pod.daemonset())
    env = {e["name"]: e for e in agent["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["HOST_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert _arg(agent["args"], "--metrics-address") == "$(HOST_IP)"
    for arg in agent["args"]:
        for var in re.findall(r"\$\((\w+)\)", arg):
            assert var in env, f"{arg} refers to {var}, which the container does not define"


def test_everything_namespaced_is_in_the_install_namespace() -> None:
    namespaces = [o["metadata"]["name"] for o in objects_of("Namespace")]
    assert namespaces == [NAMESPACE]
    for obj in all_objects():
        ns = obj["metadata"].get("namespace")
        if obj["kind"] in CLUSTER_SCOPED:
            assert ns is None, f"{object_id(obj)} is cluster-scoped"
        else:
            assert ns == NAMESPACE, f"{object_id(obj)} is in {ns!r}"
    for binding in objects_of("RoleBinding") + objects_of("ClusterRoleBinding"):
        for subject in binding["subjects"]:
            assert subject.get("namespace") == NAMESPACE, object_id(binding)


# -- (c) the DaemonSets as a node agent needs them ---------------------------------------

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$")
_UNITS = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity(text: str) -> float:
    m = _QUANTITY.match(str(text))
    assert m, f"{text!r} is not a quantity lbroute's manifests use"
    return float(m.group(1)) * _UNITS[m.group(2)]


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_daemonset_runs_on_the_nodes_network(pod: RouterPod) -> None:
    ds = pod.daemonset()
    spec = _pod(ds)
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["nodeSelector"] == {ROUTER_LABEL: pod.router.value}
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1},
    }
    assert spec["terminationGracePeriodSeconds"] >= 30
    for key in ("hostPID", "hostIPC"):
        assert not spec.get(key), key
    for toleration in spec.get("tolerations", []):
        assert toleration["key"].startswith("node-role.kubernetes.io/"), toleration


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_resources(pod: RouterPod) -> None:
    for name, c in containers(pod.daemonset()).items():
        res = c["resources"]
        assert {"cpu", "memory"} <= set(res["requests"]), name
        assert "memory" in res["limits"], name
        for kind in res["limits"]:
            assert quantity(res["limits"][kind]) >= quantity(res["requests"][kind]), name
    agent = agent_container(pod.daemonset())
    assert quantity(agent["resources"]["limits"]["memory"]) >= quantity("200Mi")


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_capabilities_are_the_listed_ones(pod: RouterPod) -> None:
    ds = pod.daemonset()
    expected = {"agent": AGENT_CAPS, pod.sidecar: pod.sidecar_caps}
    assert set(containers(ds)) == set(expected)
    for name, c in containers(ds).items():
        sc = c["securityContext"]
        assert not sc.get("privileged"), name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert set(sc["capabilities"]["add"]) == expected[name], name
        # The API server refuses allowPrivilegeEscalation: false with CAP_SYS_ADMIN,
        # and with SYS_ADMIN it would promise nothing.
        if "SYS_ADMIN" in expected[name]:
            assert "allowPrivilegeEscalation" not in sc, name
        else:
            assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["readOnlyRootFilesystem"] is True, name


def test_every_added_capability_is_explained_in_its_manifest() -> None:
    """Only what is needed, and why: each capability a container adds is named in a
    comment of its manifest."""
    for path in sorted(DEPLOY.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        added: set[str] = set()
        for obj in documents(path):
            if obj and obj.get("kind") in ("DaemonSet", "Deployment"):
                for c in obj["spec"]["template"]["spec"]["containers"]:
                    added |= set(
                        c.get("securityContext", {}).get("capabilities", {}).get("add", [])
                    )
        comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
        for cap in sorted(added):
            assert re.search(rf"\b{cap}\b", comments), f"{path.name}: {cap} is not explained"


def test_the_allocator_serves_metrics_on_its_pods_address() -> None:
    (deployment,) = [
        o for o in documents(DEPLOY / "allocator.yaml") if o and o["kind"] == "Deployment"
    ]
    (allocator,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in allocator["env"]}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    args = [expand(a, container_env(allocator)) for a in allocator["args"]]
    command = cli_main.commands["allocator"] if isinstance(cli_main, click.Group) else None
    assert command is not None
    with cli_main.make_context("lbroute", ["allocator"]) as group_ctx:
        ctx = command.make_context("allocator", args[1:], parent=group_ctx)
    assert ctx.params["metrics_address"] == PLACEHOLDERS["status.podIP"]


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_router_directories_are_shared_with_the_agent(pod: RouterPod) -> None:
    ds = pod.daemonset()
    spec = _pod(ds)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {
        name: {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        for name, c in containers(ds).items()
    }
    for directory in pod.shared_dirs:
        volume = mounts["agent"].get(directory)
        assert volume is not None, f"the agent does not mount {directory}"
        assert mounts[pod.sidecar].get(directory) == volume, f"{directory} is not shared"
    socket_dir = pod.shared_dirs[1]
    assert "emptyDir" in volumes[mounts["agent"][socket_dir]]
    args = agent_container(ds)["args"]
    assert _arg(args, "--router") == pod.router.value
    assert _arg(args, "--mode") == "managed"
    assert _arg(args, "--router-config") == pod.config
    assert _arg(args, "--router-socket") == pod.socket
    status = _arg(args, "--status-file")
    assert str(PurePosixPath(status).parent) in mounts["agent"]


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_what_must_outlive_a_replaced_pod_is_kept_on_the_node(pod: RouterPod) -> None:
    """A DaemonSet roll replaces the pod: the router's configuration (so that a router
    with gracefulRestart starts in recovery from the last applied configuration) and the
    status directory (the drain's start) are on the node, one directory per DaemonSet."""
    ds = pod.daemonset()
    volumes = {v["name"]: v for v in _pod(ds)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in agent_container(ds)["volumeMounts"]}
    status_dir = str(PurePosixPath(_arg(agent_container(ds)["args"], "--status-file")).parent)
    paths = []
    for directory in (pod.shared_dirs[0], status_dir):
        volume = volumes[mounts[directory]]
        assert "hostPath" in volume, f"{directory} is not kept on the node"
        assert volume["hostPath"]["type"] == "DirectoryOrCreate"
        assert volume["hostPath"]["path"].startswith("/var/lib/lbroute/")
        paths.append(volume["hostPath"]["path"])
    assert len(set(paths)) == 2
    other = next(p for p in ROUTER_PODS if p is not pod)
    other_paths = {
        v["hostPath"]["path"] for v in _pod(other.daemonset())["volumes"] if "hostPath" in v
    }
    assert not set(paths) & other_paths, "the two DaemonSets share a directory on the node"


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_both_containers_use_the_routers_image(pod: RouterPod) -> None:
    images = {c["image"] for c in containers(pod.daemonset()).values()}
    assert images == {f"{pod.image}:{VERSION}"}


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_sidecar_command_is_in_the_image(pod: RouterPod) -> None:
    sidecar = containers(pod.daemonset())[pod.sidecar]
    (command,) = sidecar["command"]
    script = image_file(pod.dockerfile, command)
    assert os.access(script, os.X_OK), f"{script} is not executable"
    assert "args" not in sidecar


def test_frr_daemons_wrapper_is_in_the_image() -> None:
    text = (DOCKER / "frr" / "daemons").read_text(encoding="utf-8")
    (wrap,) = re.findall(r'^all_wrap="([^"]+)"', text, re.M)
    assert os.access(image_file("Dockerfile.frr", wrap), os.X_OK)


def test_frr_group_ids_are_the_images() -> None:
    args = dockerfile_args(parse_dockerfile(DOCKER / "Dockerfile.frr"))
    ds = ROUTER_PODS[1].daemonset()
    assert _pod(ds)["securityContext"]["supplementalGroups"] == [int(args["FRRVTY_GID"])]
    frr = containers(ds)["frr"]["securityContext"]
    assert frr["runAsGroup"] == int(args["FRR_GID"])
    assert frr["runAsUser"] == 0


# -- (d) the agent's command line -------------------------------------------------------

EXPECTED_AGENT_OPTIONS = frozenset(
    {
        "--kubernetes",
        "--node",
        "--namespace",
        "--router",
        "--mode",
        "--router-config",
        "--router-socket",
        "--allow-path",
        "--metrics-port",
        "--metrics-address",
        "--status-file",
    }
)
"""Every option the manifests give ``lbroute agent``. A new one goes here, and the next
test then insists that the CLI has it."""
CLI_OPTIONS_NEEDED = EXPECTED_AGENT_OPTIONS | {"--kubeconfig"}
"""Also --kubeconfig, which the agent's Kubernetes mode offers outside a cluster."""
PLACEHOLDERS = {
    "spec.nodeName": "node-a",
    "metadata.namespace": NAMESPACE,
    "status.hostIP": "10.0.0.11",
    "status.podIP": "10.244.0.7",
    "metadata.name": "lbroute-allocator-5d9f8-x2x7k",
}
"""Values the downward API would give, to expand $(VAR) as the kubelet does."""


def agent_command() -> click.Command:
    command = cli_main.commands.get("agent") if isinstance(cli_main, click.Group) else None
    assert command is not None, "lbroute.cli:main has no agent command"
    return command


def test_manifests_use_only_the_expected_agent_options() -> None:
    for pod in ROUTER_PODS:
        used = {a for a in agent_container(pod.daemonset())["args"] if a.startswith("-")}
        assert used <= EXPECTED_AGENT_OPTIONS, f"{pod.manifest}: {used - EXPECTED_AGENT_OPTIONS}"


def test_the_cli_has_every_expected_option() -> None:
    declared = {o for p in agent_command().params for o in (*p.opts, *p.secondary_opts)}
    missing = CLI_OPTIONS_NEEDED - declared
    assert not missing, f"lbroute agent lacks {sorted(missing)}, which deploy/ relies on"


def container_env(container: JSON) -> dict[str, str]:
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            env[e["name"]] = PLACEHOLDERS[e["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def expand(arg: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion: defined variables are replaced, $$ is a $."""
    return re.sub(
        r"\$\$|\$\((\w+)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        arg,
    )


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_agent_arguments_parse_with_the_real_cli(
    pod: RouterPod, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = agent_container(pod.daemonset())
    env = container_env(agent)
    for name in list(os.environ):
        if name.startswith("LBROUTE_") or name in ("NODE_NAME", "POD_NAMESPACE"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = [expand(a, env) for a in agent["args"]]
    assert args[0] == "agent", "group options go in the environment (LBROUTE_...)"
    command = agent_command()
    try:
        with cli_main.make_context("lbroute", ["agent"]) as group_ctx:
            ctx = command.make_context("agent", args[1:], parent=group_ctx)
            group_params = group_ctx.params
    except click.ClickException as exc:
        pytest.fail(f"{pod.manifest}: lbroute {' '.join(args)}: {exc.format_message()}")
    params = ctx.params
    assert params["kubernetes"] is True
    assert params["node"] == PLACEHOLDERS["spec.nodeName"]
    assert params["namespace"] == NAMESPACE
    assert params["metrics_port"] == METRICS_PORT
    assert params["metrics_address"] == PLACEHOLDERS["status.hostIP"], "the node's own"
    assert params["router"] == pod.router.value
    assert str(params["status_file"]) == "/run/lbroute/status.json"
    assert group_params["verbose"] == 1, "the agent's INFO lines: one per outside action"
    for name in env:
        if name.startswith("LBROUTE_"):
            param = name.removeprefix("LBROUTE_").lower()
            assert param in group_params, f"{name} names no option of lbroute"


# -- (e) kustomization.yaml -------------------------------------------------------------

KUSTOMIZATION_KEYS = frozenset({"apiVersion", "kind", "resources", "images", "labels"})


def kustomization() -> JSON:
    (doc,) = documents(DEPLOY / "kustomization.yaml")
    return typing.cast(JSON, doc)


def test_kustomization_lists_every_manifest() -> None:
    k = kustomization()
    assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert k["kind"] == "Kustomization"
    assert set(k) <= KUSTOMIZATION_KEYS, set(k) - KUSTOMIZATION_KEYS
    listed = k["resources"]
    assert len(listed) == len(set(listed)), "listed twice"
    assert set(listed) == {rel(p) for p in manifest_files()}
    order = [p.split("/")[0] for p in listed]
    assert order.index("namespace.yaml") < order.index("rbac.yaml"), "namespace first"


def test_kustomization_sets_the_images_the_daemonsets_use() -> None:
    images = {i["name"]: i for i in kustomization()["images"]}
    used = {
        c["image"].partition(":")[0]
        for pod in ROUTER_PODS
        for c in containers(pod.daemonset()).values()
    }
    assert set(images) == used
    for image in images.values():
        assert set(image) == {"name", "newName", "newTag"}
        assert image["newTag"] == VERSION


# -- (f) the Dockerfiles ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Instruction:
    stage: int
    keyword: str
    args: str


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with their stage (0 = the first FROM), continuations joined."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, args = text.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        out.append(Instruction(stage=stage, keyword=keyword.upper(), args=args.strip()))
    assert not pending, f"{path}: a continuation runs off the end"
    return out


def dockerfile_args(instructions: list[Instruction]) -> dict[str, str]:
    found = {}
    for i in instructions:
        if i.keyword == "ARG":
            name, _, default = i.args.partition("=")
            found[name] = default
    return found


def copies(instructions: list[Instruction]) -> Iterator[tuple[Instruction, list[str], str]]:
    """COPY and ADD from the build context: (instruction, sources, destination)."""
    for i in instructions:
        if i.keyword not in ("COPY", "ADD"):
            continue
        words = json.loads(i.args) if i.args.startswith("[") else shlex.split(i.args)
        flags = [w for w in words if w.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        paths = [w for w in words if not w.startswith("--")]
        yield i, paths[:-1], paths[-1]


def image_file(dockerfile: str, image_path: str) -> Path:
    """The file of the build context that ends up at ``image_path`` in the final stage."""
    instructions = parse_dockerfile(DOCKER / dockerfile)
    final = max(i.stage for i in instructions)
    for i, sources, dest in copies(instructions):
        if i.stage != final or not dest.endswith("/") or not image_path.startswith(dest):
            continue
        for source in sources:
            candidate = ROOT / source / image_path.removeprefix(dest)
            if candidate.is_file():
                assert docker_includes(candidate.relative_to(ROOT).as_posix())
                return candidate
    pytest.fail(f"{dockerfile}: nothing is copied to {image_path}")


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus **) as a regex on a clean path."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + "$")


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception, pattern) in order; as the builder cleans them."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((exception, _ignore_regex(pattern)))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for exception, regex in rules:
        if any(regex.match(c) for c in candidates):
            excluded = not exception
    return excluded


def docker_includes(path: str) -> bool:
    text = (ROOT / ".dockerignore").read_text(encoding="utf-8")
    return not ignored(path, dockerignore_rules(text))


IGNORE_CASES = [
    ("*\n!lbroute/\n", "lbroute/cli.py", False),
    ("*\n!lbroute/\n", "tests/test_cli.py", True),
    ("*\n!lbroute/\n", ".git/HEAD", True),
    ("*\n!lbroute/\n**/__pycache__\n", "lbroute/__pycache__/cli.cpython-311.pyc", True),
    ("**/*.pyc\n", "a/b/c.pyc", True),
    ("**/*.pyc\n", "c.pyc", True),
    ("*.md\n", "docs/x.md", False),
    ("*/*.md\n", "docs/x.md", True),
    ("docs\n!docs/keep.md\n", "docs/keep.md", False),
    ("docs\n!docs/keep.md\n", "docs/other.md", True),
    ("/build\n", "build/x", True),
    ("./build\n", "build/x", True),
    ("te?t*\n", "test_x", True),
    ("[a-c]*\n", "beta", True),
    ("[a-c]*\n", "delta", False),
    ("", "anything", False),
]


@pytest.mark.parametrize(("patterns", "path", "expected"), IGNORE_CASES)
def test_dockerignore_matching(patterns: str, path: str, expected: bool) -> None:
    assert ignored(path, dockerignore_rules(patterns)) is expected


DOCKERFILES = [pod.dockerfile for pod in ROUTER_PODS]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_bases_are_debian_12_slim(dockerfile: str) -> None:
    instructions = parse_dockerfile(DOCKER / dockerfile)
    bases = [i.args.split()[0] for i in instructions if i.keyword == "FROM"]
    assert bases and all(b == "debian:12-slim" for b in bases), bases


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_copy_source_is_in_the_build_context(dockerfile: str) -> None:
    for _, sources, _ in copies(parse_dockerfile(DOCKER / dockerfile)):
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"{dockerfile}: COPY {source}: no such file"
            name = path.relative_to(ROOT).as_posix()
            assert docker_includes(name), f"{dockerfile}: {source} is in .dockerignore"
            if path.is_dir():
                files = [p for p in path.rglob("*") if p.is_file()]
                kept = [p for p in files if docker_includes(p.relative_to(ROOT).as_posix())]
                assert kept, f"{dockerfile}: .dockerignore leaves nothing of {source}"


def _run_lines(instructions: list[Instruction], stage: int | None = None) -> list[str]:
    """Each command of each RUN (split at && and ;)."""
    commands = []
    for i in instructions:
        if i.keyword == "RUN" and (stage is None or i.stage == stage):
            commands += [c.strip() for c in re.split(r"&&|;", i.args) if c.strip()]
    return commands


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_whole_package_is_copied_and_installed(dockerfile: str) -> None:
    instructions = parse_dockerfile(DOCKER / dockerfile)
    pip = [c for c in _run_lines(instructions) if re.search(r"\bpip install\b", c)]
    assert len(pip) == 1, pip
    words = shlex.split(pip[0])
    assert not {"-e", "--editable"} & set(words), "the image installs non-editable"
    target = words[-1]
    (stage,) = {i.stage for i in instructions if i.keyword == "RUN" and pip[0] in i.args}
    workdirs = [i.args for i in instructions if i.keyword == "WORKDIR" and i.stage == stage]
    assert workdirs and target == workdirs[-1], f"pip installs {target}, not the WORKDIR"
    copied = set()
    for i, sources, dest in copies(instructions):
        if i.stage != stage:
            continue
        for source in sources:
            at = dest if dest not in ("./", ".") else source
            assert at.rstrip("/") == source.rstrip("/"), f"COPY {source} {dest}: moved"
            copied.add(source.rstrip("/"))

    def is_copied(path: str) -> bool:
        parts = path.split("/")
        return any("/".join(parts[: n + 1]) in copied for n in range(len(parts)))

    needed = ["pyproject.toml", PYPROJECT["project"]["readme"]]
    needed += [p.replace(".", "/") for p in PYPROJECT["tool"]["setuptools"]["packages"]]
    for path in needed:
        assert is_copied(path), f"{dockerfile}: {path} is not copied to the build stage"
        for file in [ROOT / path] if (ROOT / path).is_file() else (ROOT / path).rglob("*"):
            name = file.relative_to(ROOT).as_posix()
            if file.is_file() and "__pycache__" not in name:
                assert docker_includes(name), f"{name} is excluded from the build context"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_entrypoint_is_the_console_script_in_the_venv(dockerfile: str) -> None:
    instructions = parse_dockerfile(DOCKER / dockerfile)
    final = max(i.stage for i in instructions)
    (entrypoint,) = [i.args for i in instructions if i.keyword == "ENTRYPOINT"]
    words = json.loads(entrypoint)
    assert len(words) == 1
    script = PurePosixPath(words[0])
    assert script.name in PYPROJECT["project"]["scripts"]
    venvs = [c.split()[-1] for c in _run_lines(instructions) if re.search(r"python3 -m venv\b", c)]
    assert venvs == [str(script.parent.parent)], "the entrypoint is the venv's script"
    copied_venv = [
        i for i in instructions if i.keyword == "COPY" and i.stage == final and venvs[0] in i.args
    ]
    assert copied_venv, "the final stage copies the venv"


def apt_packages(dockerfile: str, stage: int | None = None) -> set[str]:
    found: set[str] = set()
    for command in _run_lines(parse_dockerfile(DOCKER / dockerfile), stage):
        words = command.split()
        if words[:2] == ["apt-get", "install"]:
            found |= {w for w in words[2:] if not w.startswith("-")}
    return found


@pytest.mark.parametrize("pod", ROUTER_PODS, ids=pod_id)
def test_the_router_packages_are_installed(pod: RouterPod) -> None:
    final = max(i.stage for i in parse_dockerfile(DOCKER / pod.dockerfile))
    assert pod.packages <= apt_packages(pod.dockerfile, final)


def _listed_debian_packages() -> set[str]:
    names = set()
    for listing in DEBIAN_LISTS.glob("installed-*.txt") if DEBIAN_LISTS.is_dir() else ():
        if "debian13" in listing.name:
            continue
        for line in listing.read_text(encoding="utf-8").splitlines()[1:]:
            fields = line.split("\t")
            if len(fields) >= 2 and fields[0] == "apt":
                names.add(fields[1])
    return names


def _apt_knows(name: str) -> bool | None:
    """True/False from this machine's apt lists; None when it has none."""
    if shutil.which("apt-cache") is None:
        return None
    stats = subprocess.run(["apt-cache", "stats"], capture_output=True, text=True, check=False)
    m = re.search(r"Total package names: (\d+)", stats.stdout)
    if not m or int(m.group(1)) < 1000:
        return None
    show = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", name],
        capture_output=True,
        text=True,
        check=False,
    )
    return show.returncode == 0 and f"Package: {name}" in show.stdout


def _installed(name: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Status}", name], capture_output=True, text=True, check=False
    )
    return out.stdout.endswith("installed")


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_debian_packages_exist(dockerfile: str) -> None:
    version = Path("/etc/debian_version")
    if not version.is_file() or not version.read_text().startswith("12"):
        pytest.skip("not Debian 12: this machine cannot say what debian:12-slim offers")
    listed = _listed_debian_packages()
    unknown = []
    for name in sorted(apt_packages(dockerfile)):
        if _installed(name) or name in listed:
            continue
        known = _apt_knows(name)
        if known is None:
            pytest.skip(f"no package list here says whether {name} exists")
        if not known:
            unknown.append(name)
    assert not unknown, f"{dockerfile}: no Debian 12 package {unknown}"


SCRIPTS = sorted(p for p in DOCKER.rglob("*") if p.is_file() and p.read_bytes()[:2] == b"#!")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_sidecar_scripts_parse(script: Path) -> None:
    shell = script.read_text(encoding="utf-8").splitlines()[0].split("/")[-1]
    assert shell in ("sh", "bash"), f"{script}: {shell}"
    assert os.access(script, os.X_OK), f"{script} is not executable"
    out = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(shutil.which("bird") is None, reason="BIRD 2 is not installed")
def test_birds_minimal_configuration_parses() -> None:
    out = subprocess.run(
        ["bird", "-p", "-c", str(DOCKER / "bird" / "bird.conf")],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(shutil.which("vtysh") is None, reason="FRR is not installed")
def test_frrs_minimal_configuration_parses() -> None:
    out = subprocess.run(
        ["vtysh", "--dryrun", "-f", str(DOCKER / "frr" / "frr.conf")],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert out.returncode == 0 and "% " not in out.stdout + out.stderr, out.stdout + out.stderr


def test_frrs_minimal_configuration_is_the_renderers_version() -> None:
    text = (DOCKER / "frr" / "frr.conf").read_text(encoding="utf-8")
    template = (ROOT / "templates" / "frr" / "frr.conf.j2").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("!")]
    lines = [line for line in lines if line != "end"]
    assert lines and all(line in template.splitlines() for line in lines), lines


def test_frr_daemons_are_the_rendered_protocols() -> None:
    text = (DOCKER / "frr" / "daemons").read_text(encoding="utf-8")
    enabled = set(re.findall(r"^(\w+)=yes$", text, re.M)) - {"vtysh_enable"}
    assert enabled == {"bgpd", "ospfd", "ospf6d", "ripd", "ripngd", "isisd", "bfdd"}
    options = dict(re.findall(r'^(\w+)_options="([^"]*)"$', text, re.M))
    options.pop("frr_global")
    assert set(options) == enabled | {"zebra", "staticd"}
    for daemon, value in options.items():
        assert "-P 0" in value, f"{daemon} would open a TCP vty port on the node"


# -- (g) RBAC ------------------------------------------------------------------------------


def _perms(*objects: JSON, namespace: str = "ns", name: str = "sa") -> Permissions:
    return Permissions.from_objects(objects, namespace=namespace, name=name)


def _role(kind: str, rules: list[JSON], namespace: str | None = None) -> JSON:
    meta: JSON = {"name": "r"}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "rules": rules,
    }


def _binding(kind: str, role_kind: str, subject: JSON, namespace: str | None = None) -> JSON:
    meta: JSON = {"name": "b"}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": "r"},
        "subjects": [subject],
    }


SA = {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}


def _cluster(rules: list[JSON], subject: JSON = SA) -> Permissions:
    return _perms(
        _role("ClusterRole", rules), _binding("ClusterRoleBinding", "ClusterRole", subject)
    )


def _namespaced(rules: list[JSON], subject: JSON = SA) -> Permissions:
    return _perms(_role("Role", rules, "ns"), _binding("RoleBinding", "Role", subject, "ns"))


PODS_GET = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
RBAC_CASES: list[tuple[str, Permissions, Request, bool]] = [
    (
        "cluster role, any namespace",
        _cluster(PODS_GET),
        Request(verb="get", resource="pods", namespace="x"),
        True,
    ),
    ("cluster role, cluster-wide", _cluster(PODS_GET), Request(verb="get", resource="pods"), True),
    ("other verb", _cluster(PODS_GET), Request(verb="list", resource="pods", namespace="x"), False),
    ("other group", _cluster(PODS_GET), Request(verb="get", group="apps", resource="pods"), False),
    (
        "subresource not covered",
        _cluster(PODS_GET),
        Request(verb="get", resource="pods", subresource="log"),
        False,
    ),
    (
        "role, its namespace",
        _namespaced(PODS_GET),
        Request(verb="get", resource="pods", namespace="ns"),
        True,
    ),
    (
        "role, other namespace",
        _namespaced(PODS_GET),
        Request(verb="get", resource="pods", namespace="x"),
        False,
    ),
    ("role, cluster-wide", _namespaced(PODS_GET), Request(verb="get", resource="pods"), False),
    (
        "cluster role bound in a namespace",
        _perms(_role("ClusterRole", PODS_GET), _binding("RoleBinding", "ClusterRole", SA, "ns")),
        Request(verb="get", resource="pods", namespace="ns"),
        True,
    ),
    (
        "cluster role bound in a namespace, elsewhere",
        _perms(_role("ClusterRole", PODS_GET), _binding("RoleBinding", "ClusterRole", SA, "ns")),
        Request(verb="get", resource="pods", namespace="x"),
        False,
    ),
    (
        "role of another namespace is not found",
        _perms(_role("Role", PODS_GET, "other"), _binding("RoleBinding", "Role", SA, "ns")),
        Request(verb="get", resource="pods", namespace="ns"),
        False,
    ),
    (
        "other service account",
        _cluster(PODS_GET, {"kind": "ServiceAccount", "name": "other", "namespace": "ns"}),
        Request(verb="get", resource="pods"),
        False,
    ),
    (
        "same name, other namespace",
        _cluster(PODS_GET, {"kind": "ServiceAccount", "name": "sa", "namespace": "x"}),
        Request(verb="get", resource="pods"),
        False,
    ),
    (
        "group of all service accounts",
        _cluster(PODS_GET, {"kind": "Group", "name": "system:serviceaccounts"}),
        Request(verb="get", resource="pods"),
        True,
    ),
    (
        "group of the namespace's service accounts",
        _cluster(PODS_GET, {"kind": "Group", "name": "system:serviceaccounts:ns"}),
        Request(verb="get", resource="pods"),
        True,
    ),
    (
        "user name of the service account",
        _cluster(PODS_GET, {"kind": "User", "name": "system:serviceaccount:ns:sa"}),
        Request(verb="get", resource="pods"),
        True,
    ),
    (
        "wildcard verb",
        _cluster([{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]),
        Request(verb="deletecollection", resource="pods", namespace="x"),
        True,
    ),
    (
        "wildcard group",
        _cluster([{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}]),
        Request(verb="get", group="metrics.k8s.io", resource="pods"),
        True,
    ),
    (
        "wildcard resource covers subresources",
        _cluster([{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]),
        Request(verb="get", resource="pods", subresource="log"),
        True,
    ),
    (
        "resource/subresource",
        _cluster([{"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch"]}]),
        Request(verb="patch", resource="services", subresource="status", namespace="x"),
        True,
    ),
    (
        "resource/subresource does not cover the resource",
        _cluster([{"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch"]}]),
        Request(verb="patch", resource="services", namespace="x"),
        False,
    ),
    (
        "*/subresource",
        _cluster([{"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]}]),
        Request(verb="get", resource="nodes", subresource="status"),
        True,
    ),
    (
        "*/subresource does not cover the resource",
        _cluster([{"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]}]),
        Request(verb="get", resource="nodes"),
        False,
    ),
    (
        "resourceNames: named",
        _cluster(
            [{"apiGroups": [""], "resources": ["nodes"], "resourceNames": ["n1"], "verbs": ["get"]}]
        ),
        Request(verb="get", resource="nodes", name="n1"),
        True,
    ),
    (
        "resourceNames: other name",
        _cluster(
            [{"apiGroups": [""], "resources": ["nodes"], "resourceNames": ["n1"], "verbs": ["get"]}]
        ),
        Request(verb="get", resource="nodes", name="n2"),
        False,
    ),
    (
        "resourceNames: a list names nothing",
        _cluster(
            [
                {
                    "apiGroups": [""],
                    "resources": ["nodes"],
                    "resourceNames": ["n1"],
                    "verbs": ["list"],
                }
            ]
        ),
        Request(verb="list", resource="nodes"),
        False,
    ),
    (
        "non-resource URL",
        _cluster([{"nonResourceURLs": ["/healthz/*"], "verbs": ["get"]}]),
        Request(verb="get", path="/healthz/etcd"),
        True,
    ),
    (
        "non-resource URL, no rule",
        _cluster(PODS_GET),
        Request(verb="get", path="/version"),
        False,
    ),
    (
        "no bindings",
        _perms(_role("ClusterRole", PODS_GET)),
        Request(verb="get", resource="pods"),
        False,
    ),
]


@pytest.mark.parametrize(
    ("perms", "request_", "expected"),
    [(p, r, e) for _, p, r, e in RBAC_CASES],
    ids=[c[0] for c in RBAC_CASES],
)
def test_rbac_checker(perms: Permissions, request_: Request, expected: bool) -> None:
    assert perms.allows_request(request_) is expected


REQUEST_CASES: list[tuple[str, str, str, Request]] = [
    ("GET", "/api/v1/nodes", "", Request(verb="list", resource="nodes")),
    ("GET", "/api/v1/nodes", "watch=true", Request(verb="watch", resource="nodes")),
    ("GET", "/api/v1/nodes", "watch=1&resourceVersion=5", Request(verb="watch", resource="nodes")),
    ("GET", "/api/v1/nodes", "watch=false", Request(verb="list", resource="nodes")),
    (
        "GET",
        "/api/v1/nodes",
        "fieldSelector=metadata.name%3Dnode-a&watch=true",
        Request(verb="watch", resource="nodes", name="node-a"),
    ),
    ("GET", "/api/v1/nodes/node-a", "", Request(verb="get", resource="nodes", name="node-a")),
    ("GET", "/api/v1/services", "", Request(verb="list", resource="services")),
    (
        "PATCH",
        "/api/v1/namespaces/default/services/web",
        "",
        Request(verb="patch", resource="services", namespace="default", name="web"),
    ),
    (
        "PUT",
        "/api/v1/namespaces/default/services/web/status",
        "",
        Request(
            verb="update",
            resource="services",
            subresource="status",
            namespace="default",
            name="web",
        ),
    ),
    (
        "GET",
        "/apis/discovery.k8s.io/v1/endpointslices",
        "watch=1",
        Request(verb="watch", group="discovery.k8s.io", resource="endpointslices"),
    ),
    (
        "POST",
        "/apis/events.k8s.io/v1/namespaces/default/events",
        "",
        Request(verb="create", group="events.k8s.io", resource="events", namespace="default"),
    ),
    (
        "PATCH",
        "/apis/lbroute.io/v1alpha1/namespaces/lbroute/nodestates/node-a/status",
        "",
        Request(
            verb="patch",
            group="lbroute.io",
            resource="nodestates",
            subresource="status",
            namespace="lbroute",
            name="node-a",
        ),
    ),
    (
        "DELETE",
        "/apis/lbroute.io/v1alpha1/namespaces/lbroute/nodestates/node-a",
        "",
        Request(
            verb="delete",
            group="lbroute.io",
            resource="nodestates",
            namespace="lbroute",
            name="node-a",
        ),
    ),
    (
        "DELETE",
        "/apis/lbroute.io/v1alpha1/namespaces/lbroute/nodestates",
        "",
        Request(
            verb="deletecollection", group="lbroute.io", resource="nodestates", namespace="lbroute"
        ),
    ),
    ("GET", "/api/v1/namespaces", "", Request(verb="list", resource="namespaces")),
    (
        "GET",
        "/api/v1/namespaces/lbroute",
        "",
        Request(verb="get", resource="namespaces", namespace="lbroute", name="lbroute"),
    ),
    (
        "PUT",
        "/api/v1/namespaces/lbroute/finalize",
        "",
        Request(
            verb="update",
            resource="namespaces",
            subresource="finalize",
            namespace="lbroute",
            name="lbroute",
        ),
    ),
    ("GET", "/api/v1/watch/nodes", "", Request(verb="watch", resource="nodes")),
    ("GET", "/version", "", Request(verb="get", path="/version")),
    ("GET", "/apis/lbroute.io/v1alpha1", "", Request(verb="get", path="/apis/lbroute.io/v1alpha1")),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    REQUEST_CASES,
    ids=[f"{m} {p}?{q}" for m, p, q, _ in REQUEST_CASES],
)
def test_request_attributes(method: str, path: str, query: str, expected: Request) -> None:
    assert request_attributes(method, path, query) == expected


EXPECTED_GRANTS: dict[tuple[str, str, str], frozenset[str]] = {
    # (scope, group, resource[/subresource]) -> verbs; scope "cluster": every namespace
    # and cluster-wide, else only that namespace.
    ("cluster", "", "services"): frozenset({"get", "list", "watch", "patch"}),
    ("cluster", "", "nodes"): frozenset({"get", "list", "watch"}),
    ("cluster", "discovery.k8s.io", "endpointslices"): frozenset({"list", "watch"}),
    ("cluster", "events.k8s.io", "events"): frozenset({"create", "get", "patch"}),
    (NAMESPACE, "lbroute.io", "servicegroups"): frozenset({"get", "list", "watch"}),
    (NAMESPACE, "lbroute.io", "peers"): frozenset({"get", "list", "watch"}),
    (NAMESPACE, "lbroute.io", "nodeagents"): frozenset({"get", "list", "watch"}),
    (NAMESPACE, "lbroute.io", "servicegroups/status"): frozenset({"get", "patch"}),
    (NAMESPACE, "lbroute.io", "peers/status"): frozenset({"get", "patch"}),
    (NAMESPACE, "lbroute.io", "nodeagents/status"): frozenset({"get", "patch"}),
    (NAMESPACE, "lbroute.io", "nodestates"): frozenset(
        {"get", "list", "watch", "create", "update", "patch"}
    ),
    (NAMESPACE, "lbroute.io", "nodestates/status"): frozenset({"get", "update", "patch"}),
    (NAMESPACE, "coordination.k8s.io", "leases"): frozenset(
        {"get", "list", "watch", "create", "update", "delete"}
    ),
}
VERBS = (
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "escalate",
    "bind",
    "impersonate",
    "use",
    "approve",
)
OTHER_RESOURCES = (
    ("", "secrets"),
    ("", "configmaps"),
    ("", "pods"),
    ("", "pods/exec"),
    ("", "services/status"),
    ("", "nodes/status"),
    ("", "nodes/proxy"),
    ("", "endpoints"),
    ("", "events"),
    ("", "serviceaccounts/token"),
    ("", "namespaces"),
    ("apps", "daemonsets"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("coordination.k8s.io", "leases"),
    ("lbroute.io", "nodestates/finalize"),
)


NAMED_SECRETS = frozenset({"bgp-upstream", "ospf-auth", "rip-auth"})
"""The Secrets the agent may read: those examples/ refers to (a user lists theirs)."""


def deploy_permissions() -> Permissions:
    return Permissions.load(DEPLOY, namespace=NAMESPACE, name=SERVICE_ACCOUNT)


def _split(resource: str) -> tuple[str, str]:
    name, _, sub = resource.partition("/")
    return name, sub


def test_deploy_rbac_grants_each_listed_permission() -> None:
    perms = deploy_permissions()
    for (scope, group, resource), verbs in EXPECTED_GRANTS.items():
        name, sub = _split(resource)
        places = ["", NAMESPACE, "default"] if scope == "cluster" else [scope]
        for verb in verbs:
            for ns in places:
                assert perms.allows(verb, group, name, sub, ns), (verb, group, resource, ns)


def test_deploy_rbac_grants_nothing_more() -> None:
    perms = deploy_permissions()
    resources = {(g, r) for _, g, r in EXPECTED_GRANTS} | set(OTHER_RESOURCES)
    granted = set()
    for group, resource in sorted(resources):
        name, sub = _split(resource)
        for ns in ("", NAMESPACE, "default", "kube-system"):
            for verb in VERBS:
                if perms.allows(verb, group, name, sub, ns):
                    granted.add((ns, group, resource, verb))
    expected = set()
    for (scope, group, resource), verbs in EXPECTED_GRANTS.items():
        places = ["", NAMESPACE, "default", "kube-system"] if scope == "cluster" else [scope]
        expected |= {(ns, group, resource, verb) for ns in places for verb in verbs}
    assert granted - expected == set(), "granted beyond the list"
    assert expected - granted == set()


def test_deploy_rbac_reads_only_the_named_secrets_and_only_one_at_a_time() -> None:
    """The Secrets of the install namespace: list and watch, each by its name (the
    agent's field selector), of exactly the named ones; no other verb, no other Secret,
    no list of them all, and none anywhere else."""
    perms = deploy_permissions()
    granted = {
        (ns, name, verb)
        for ns in ("", NAMESPACE, "default", "kube-system")
        for name in (*NAMED_SECRETS, "", "lbroute-agent-token", "sh.helm.release.v1.lbroute.v1")
        for verb in VERBS
        if perms.allows(verb, "", "secrets", namespace=ns, name=name)
    }
    assert granted == {(NAMESPACE, n, v) for n in NAMED_SECRETS for v in ("list", "watch")}
    request = request_attributes(
        "GET", f"/api/v1/namespaces/{NAMESPACE}/secrets", "fieldSelector=metadata.name%3Dospf-auth"
    )
    assert perms.allows_request(request)
    assert not perms.allows_request(
        request_attributes("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets", "")
    )


def test_every_secret_the_examples_refer_to_is_named_for_the_agent() -> None:
    """Installing the examples as they are works: each Secret a Peer in examples/ names
    is one the agent may read (and the list names no other)."""
    referred = set()
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            for section in ((obj or {}).get("spec") or {}).values() if obj else ():
                for key in ("passwordSecretRef", "authSecretRef"):
                    if isinstance(section, dict) and key in section:
                        referred.add(section[key]["name"])
    assert referred == NAMED_SECRETS


def test_deploy_rbac_rules_name_no_wildcard() -> None:
    for obj in load_objects(DEPLOY):
        for rule in obj.get("rules", []) if obj.get("kind") in ("Role", "ClusterRole") else []:
            parsed = Rule.from_dict(rule)
            words = parsed.verbs | parsed.api_groups | parsed.resources
            assert not any("*" in w for w in words), f"{object_id(obj)}: {rule}"
            assert not parsed.non_resource_urls, object_id(obj)


def test_deploy_rbac_checks_can_fail() -> None:
    """A rule one step broader than the list is caught by the checks above."""
    objects = load_objects(DEPLOY)
    (cluster_role,) = [
        o
        for o in objects
        if o["kind"] == "ClusterRole" and o["metadata"]["name"] == SERVICE_ACCOUNT
    ]
    cluster_role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    perms = Permissions.from_objects(objects, namespace=NAMESPACE, name=SERVICE_ACCOUNT)
    assert perms.allows("get", "", "secrets", namespace="default")
    assert not deploy_permissions().allows("get", "", "secrets", namespace="default")


def _sidecar_says_graceful(script: Path, config: Path) -> bool:
    """Whether the sidecar ``script`` stops its router the graceful-restart way for
    ``config``: its own ``graceful`` test (the grep in the script) run on the file."""
    m = re.search(
        r"^graceful\(\) \{\n\s+(grep -E?q '[^']+') \"\$conf\"\n\}", script.read_text(), re.M
    )
    assert m, f"{script.relative_to(ROOT)}: no graceful() test found"
    return subprocess.run([*shlex.split(m.group(1)), str(config)], check=False).returncode == 0


@pytest.mark.parametrize("router", ["bird", "frr"])
def test_sidecar_stops_gracefully_exactly_where_a_peer_sets_graceful_restart(
    router: str,
) -> None:
    """The sidecars choose how to stop from the rendered configuration; a template change
    that the scripts no longer recognise would silently end graceful restart."""
    script = DOCKER / router / f"run-{router}"
    goldens = sorted((ROOT / "tests" / "golden").glob(f"*.{router}.conf"))
    found = []
    for golden in goldens:
        case = ROOT / "tests" / "cases" / f"{golden.name.split('.')[0]}.yaml"
        wanted = case.exists() and "gracefulRestart: true" in case.read_text(encoding="utf-8")
        assert _sidecar_says_graceful(script, golden) == wanted, golden.name
        found += [golden.name] if wanted else []
    assert found, "no golden case sets gracefulRestart"
