"""The install with the choices people make, rendered by ``kubectl kustomize`` and checked
like deploy/ itself (tests/test_deploy.py).

Each variant is an overlay a user writes next to ``deploy/``: the base, another install
namespace, the components of ``deploy/components/`` (``default-class``,
``bird-everywhere``, ``frr-everywhere``, ``monitoring``) and images of their own, alone
and together.
For each, the rendered objects are checked against the kubernetes client's models, every
namespaced object and every binding's subject is in the chosen namespace, the agents'
and the allocator's arguments parse with the real CLI and say what the choice means,
and the agent's RBAC grants exactly what the base grants, in that namespace.

Needs ``kubectl`` (Debian's package; its built-in kustomize, no standalone one).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from lbroute.cli import main as cli_main
from tests.rbac import Permissions
from tests.test_deploy import (
    CLUSTER_SCOPED,
    EXPECTED_GRANTS,
    METRICS_PORT,
    NAMESPACE,
    PLACEHOLDERS,
    ROUTER_LABEL,
    SERVICE_ACCOUNT,
    VERSION,
    container_env,
    expand,
    model_errors,
    object_id,
)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPONENTS = DEPLOY / "components"
JSON = dict[str, Any]

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is needed")


@dataclass(frozen=True)
class Variant:
    name: str
    namespace: str = NAMESPACE
    components: tuple[str, ...] = ()
    registry: str | None = None
    routers: tuple[str, ...] = ("bird", "frr")
    extra: JSON = field(default_factory=dict)

    @property
    def default_class(self) -> bool:
        return "default-class" in self.components


VARIANTS = [
    Variant("base"),
    Variant("namespace", namespace="netops-lb"),
    Variant("default-class", components=("default-class",)),
    Variant("bird-everywhere", components=("bird-everywhere",), routers=("bird",)),
    Variant("frr-everywhere", components=("frr-everywhere",), routers=("frr",)),
    Variant("images", registry="registry.example.net/lb"),
    Variant("monitoring", components=("monitoring",)),
    Variant(
        "all-together",
        namespace="netops-lb",
        components=("default-class", "frr-everywhere", "monitoring"),
        registry="registry.example.net/lb",
        routers=("frr",),
    ),
]


def overlay(variant: Variant, where: Path) -> Path:
    """The user's overlay for ``variant``: a kustomization.yaml next to nothing else,
    naming deploy/ and the components by relative paths (kustomize takes no other)."""
    where.mkdir(parents=True)
    up = Path(os.path.relpath(DEPLOY, where))
    doc: JSON = {"resources": [str(up)]}
    if variant.namespace != NAMESPACE:
        doc["namespace"] = variant.namespace
    if variant.components:
        doc["components"] = [str(up / "components" / c) for c in variant.components]
    if variant.registry:
        doc["images"] = [
            {"name": image, "newName": f"{variant.registry}/{image}", "newTag": VERSION}
            for image in ("lbroute-bird", "lbroute-frr")
        ]
    (where / "kustomization.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return where


_rendered: dict[str, list[JSON]] = {}


def rendered(variant: Variant, tmp_path_factory: pytest.TempPathFactory) -> list[JSON]:
    """``kubectl kustomize`` of the variant's overlay (once per variant)."""
    if variant.name not in _rendered:
        where = overlay(variant, tmp_path_factory.mktemp("overlay") / variant.name)
        out = subprocess.run(
            ["kubectl", "kustomize", str(where)], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stderr
        _rendered[variant.name] = [d for d in yaml.safe_load_all(out.stdout) if d]
    return _rendered[variant.name]


@pytest.fixture(params=VARIANTS, ids=lambda v: v.name)
def variant(request: pytest.FixtureRequest) -> Variant:
    assert isinstance(request.param, Variant)
    return request.param


@pytest.fixture
def objects(variant: Variant, tmp_path_factory: pytest.TempPathFactory) -> list[JSON]:
    return rendered(variant, tmp_path_factory)


def of_kind(objects: list[JSON], kind: str) -> list[JSON]:
    return [o for o in objects if o.get("kind") == kind]


def test_every_object_is_valid_against_the_client_models(objects: list[JSON]) -> None:
    """The Prometheus Operator's kinds have no client model: tests/test_monitoring.py
    checks them."""
    errors = [
        f"{object_id(o)}: {e}"
        for o in objects
        if not str(o.get("apiVersion", "")).startswith("monitoring.coreos.com/")
        for e in model_errors(o)
    ]
    assert errors == []


def test_everything_namespaced_is_in_the_chosen_namespace(
    variant: Variant, objects: list[JSON]
) -> None:
    assert [o["metadata"]["name"] for o in of_kind(objects, "Namespace")] == [variant.namespace]
    for obj in objects:
        ns = obj["metadata"].get("namespace")
        if obj["kind"] in CLUSTER_SCOPED:
            assert ns is None, object_id(obj)
        else:
            assert ns == variant.namespace, f"{object_id(obj)} is in {ns!r}"
    for binding in of_kind(objects, "RoleBinding") + of_kind(objects, "ClusterRoleBinding"):
        for subject in binding["subjects"]:
            assert subject.get("namespace") == variant.namespace, object_id(binding)


def test_the_routers_chosen_run_where_chosen(variant: Variant, objects: list[JSON]) -> None:
    daemonsets = {d["metadata"]["name"]: d for d in of_kind(objects, "DaemonSet")}
    assert sorted(daemonsets) == [f"lbroute-agent-{r}" for r in variant.routers]
    for name, ds in daemonsets.items():
        selector = ds["spec"]["template"]["spec"].get("nodeSelector")
        if len(variant.routers) == 2:
            assert selector == {ROUTER_LABEL: name.rpartition("-")[2]}, "by the node's label"
        else:
            assert selector is None, "one router on every node: no label needed"


def test_every_container_uses_the_chosen_images(variant: Variant, objects: list[JSON]) -> None:
    workloads = of_kind(objects, "DaemonSet") + of_kind(objects, "Deployment")
    images = {c["image"] for w in workloads for c in w["spec"]["template"]["spec"]["containers"]}
    prefix = f"{variant.registry}/" if variant.registry else ""
    assert images and all(re.fullmatch(rf"{re.escape(prefix)}lbroute-(bird|frr):{VERSION}", i)
                          for i in images), images  # fmt: skip


def _parse(container: JSON, command: str, monkeypatch: pytest.MonkeyPatch) -> JSON:
    """The container's arguments as the real CLI parses them, $(VAR) expanded from the
    downward API as the kubelet does (the pod's namespace: the one it runs in)."""
    env = container_env(container)
    for name in list(os.environ):
        if name.startswith("LBROUTE_") or name in ("NODE_NAME", "POD_NAMESPACE"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = [expand(a, env) for a in container["args"]]
    assert args[0] == command
    assert isinstance(cli_main, click.Group)
    sub = cli_main.commands[command]
    try:
        with cli_main.make_context("lbroute", [command]) as group_ctx:
            params = sub.make_context(command, args[1:], parent=group_ctx).params
    except click.ClickException as exc:
        pytest.fail(f"lbroute {' '.join(args)}: {exc.format_message()}")
    return dict(params)


def test_arguments_parse_with_the_real_cli_and_say_the_choice(
    variant: Variant, objects: list[JSON], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PLACEHOLDERS, "metadata.namespace", variant.namespace)
    for ds in of_kind(objects, "DaemonSet"):
        (agent,) = [c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "agent"]
        params = _parse(agent, "agent", monkeypatch)
        assert params["namespace"] == variant.namespace
        assert params["metrics_port"] == METRICS_PORT
        assert params["router"] == ds["metadata"]["name"].rpartition("-")[2]
        assert params["default_class"] is variant.default_class, object_id(ds)
    (allocator,) = of_kind(objects, "Deployment")
    params = _parse(allocator["spec"]["template"]["spec"]["containers"][0], "allocator",
                    monkeypatch)  # fmt: skip
    assert params["default_class"] is variant.default_class, "with every agent, or not at all"


def _grants(objects: list[JSON], namespace: str) -> set[tuple[str, str, str, str]]:
    perms = Permissions.from_objects(objects, namespace=namespace, name=SERVICE_ACCOUNT)
    out = set()
    for _scope, group, resource in EXPECTED_GRANTS:
        name, _, sub = resource.partition("/")
        for ns in ("", namespace, "default"):
            for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
                if perms.allows(verb, group, name, sub, ns):
                    where = "install" if ns == namespace else ns
                    out.add((where, group, resource, verb))
    return out


def test_the_agent_is_granted_what_the_base_grants_in_the_chosen_namespace(
    variant: Variant, objects: list[JSON], tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = _grants(rendered(VARIANTS[0], tmp_path_factory), NAMESPACE)
    assert base, "the base grants the agent something"
    assert _grants(objects, variant.namespace) == base


def test_every_component_is_tested() -> None:
    tested = {c for v in VARIANTS for c in v.components}
    assert tested == {p.name for p in COMPONENTS.iterdir() if p.is_dir()}
