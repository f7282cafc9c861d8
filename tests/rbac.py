"""Kubernetes RBAC for tests: what a ServiceAccount may do under given Roles and bindings.

Load the RBAC objects (Role, ClusterRole, RoleBinding, ClusterRoleBinding) from
manifests, pick a ServiceAccount, then ask::

    perms = Permissions.load(Path("deploy"), namespace="lbroute", name="lbroute-agent")
    perms.allows("patch", "", "services", namespace="default")            # True
    perms.allows("get", "", "secrets", namespace="default")               # False
    perms.allows_request(request_attributes("GET", "/api/v1/nodes", "watch=1"))

The decision follows the API server's RBAC authorizer
(``plugin/pkg/auth/authorizer/rbac`` and ``pkg/apis/rbac/v1/evaluation_helpers.go``):

- a ClusterRoleBinding grants its ClusterRole everywhere: in every namespace and for
  cluster-scoped and all-namespaces requests;
- a RoleBinding grants its Role, or a ClusterRole, only in the RoleBinding's namespace;
- a subject matches a ServiceAccount by kind ServiceAccount, name and namespace, or by
  the groups every ServiceAccount is in (``system:serviceaccounts``,
  ``system:serviceaccounts:NAMESPACE``, ``system:authenticated``) or its user name
  (``system:serviceaccount:NAMESPACE:NAME``);
- a rule matches when its verbs, apiGroups and resources match (``*`` matches
  anything; a subresource is asked as ``resource/subresource`` and matched exactly, or
  by ``*/subresource``; ``services`` does not cover ``services/status``) and, when it
  names resourceNames, the request names one of them (a list, watch or create names
  none, so such a rule never allows them);
- non-resource URLs (``/healthz``, ``/version``) match ``nonResourceURLs`` exactly or by
  a trailing ``*`` prefix, from ClusterRoles only.

:func:`request_attributes` maps an HTTP request to the attributes the authorizer sees,
as the API server's ``RequestInfoFactory`` does: GET on a collection is list (watch
with ``watch=1``/``true``), GET on an object get, POST create, PUT update, PATCH patch,
DELETE on an object delete and on a collection deletecollection.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
"""What Go's strconv.ParseBool reads as true (query parameters such as watch)."""


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One PolicyRule."""

    verbs: frozenset[str]
    api_groups: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    resource_names: frozenset[str] = frozenset()
    non_resource_urls: frozenset[str] = frozenset()

    @classmethod
    def from_dict(cls, rule: Mapping[str, Any]) -> Rule:
        def strings(key: str) -> frozenset[str]:
            return frozenset(str(v) for v in rule.get(key) or ())

        return cls(
            verbs=strings("verbs"),
            api_groups=strings("apiGroups"),
            resources=strings("resources"),
            resource_names=strings("resourceNames"),
            non_resource_urls=strings("nonResourceURLs"),
        )

    def matches(self, request: Request) -> bool:
        if "*" not in self.verbs and request.verb not in self.verbs:
            return False
        if request.path:
            return any(
                url == "*"
                or url == request.path
                or (url.endswith("*") and request.path.startswith(url[:-1]))
                for url in self.non_resource_urls
            )
        if "*" not in self.api_groups and request.group not in self.api_groups:
            return False
        if not self._resource_matches(request):
            return False
        return not self.resource_names or request.name in self.resource_names

    def _resource_matches(self, request: Request) -> bool:
        combined = request.resource
        if request.subresource:
            combined = f"{request.resource}/{request.subresource}"
        for resource in self.resources:
            if resource in ("*", combined):
                return True
            if request.subresource and resource == f"*/{request.subresource}":
                return True
        return False


@dataclass(frozen=True, kw_only=True)
class Request:
    """The attributes of one request, as the authorizer sees them.

    ``namespace`` is empty for cluster-scoped objects and for requests across all
    namespaces; ``path`` is set, instead of group and resource, for a non-resource URL.
    """

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    def __str__(self) -> str:
        if self.path:
            return f"{self.verb} {self.path}"
        what = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        group = f"{what}.{self.group}" if self.group else what
        where = f" in {self.namespace}" if self.namespace else " (cluster-wide)"
        name = f" {self.name!r}" if self.name else ""
        return f"{self.verb} {group}{name}{where}"


@dataclass(frozen=True, kw_only=True)
class _Grant:
    rules: tuple[Rule, ...]
    namespace: str | None
    """None: everywhere (ClusterRoleBinding); else only requests in this namespace."""


@dataclass(frozen=True, kw_only=True)
class Permissions:
    """What one ServiceAccount may do under a set of RBAC objects."""

    namespace: str
    name: str
    grants: tuple[_Grant, ...] = field(default=())

    @classmethod
    def load(cls, *paths: Path, namespace: str, name: str) -> Permissions:
        """From YAML files, or every ``*.yaml``/``*.yml`` under directories."""
        return cls.from_objects(load_objects(*paths), namespace=namespace, name=name)

    @classmethod
    def from_objects(
        cls, objects: Iterable[Mapping[str, Any]], *, namespace: str, name: str
    ) -> Permissions:
        rbac = [o for o in objects if _is_rbac(o)]
        roles: dict[tuple[str, str, str], tuple[Rule, ...]] = {}
        for obj in rbac:
            if obj["kind"] in ("Role", "ClusterRole"):
                meta = obj.get("metadata") or {}
                ns = meta.get("namespace", "") if obj["kind"] == "Role" else ""
                rules = tuple(Rule.from_dict(r) for r in obj.get("rules") or ())
                roles[(obj["kind"], ns, meta["name"])] = rules
        grants = []
        for obj in rbac:
            if obj["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            if not any(_subject_is(s, namespace, name) for s in obj.get("subjects") or ()):
                continue
            ref = obj["roleRef"]
            where = None
            if obj["kind"] == "RoleBinding":
                where = (obj.get("metadata") or {}).get("namespace", "")
            elif ref["kind"] != "ClusterRole":
                raise ValueError(f"ClusterRoleBinding {obj['metadata']['name']} refers to a Role")
            role_ns = (where or "") if ref["kind"] == "Role" else ""
            rules = roles.get((ref["kind"], role_ns, ref["name"]), ())
            grants.append(_Grant(rules=rules, namespace=where))
        return cls(namespace=namespace, name=name, grants=tuple(grants))

    def allows(
        self,
        verb: str,
        group: str,
        resource: str,
        subresource: str = "",
        namespace: str = "",
        name: str = "",
    ) -> bool:
        """May the ServiceAccount do this? ``namespace=""``: a cluster-scoped object, or
        a request across all namespaces."""
        request = Request(
            verb=verb,
            group=group,
            resource=resource,
            subresource=subresource,
            namespace=namespace,
            name=name,
        )
        return self.allows_request(request)

    def allows_url(self, verb: str, path: str) -> bool:
        """A non-resource URL such as ``/healthz`` (verbs: get, post, ...)."""
        return self.allows_request(Request(verb=verb, path=path))

    def allows_request(self, request: Request) -> bool:
        for grant in self.grants:
            if grant.namespace is not None and (
                request.path or request.namespace != grant.namespace
            ):
                continue
            if any(rule.matches(request) for rule in grant.rules):
                return True
        return False


def _is_rbac(obj: Mapping[str, Any]) -> bool:
    api_version = str(obj.get("apiVersion", ""))
    return obj.get("kind") in RBAC_KINDS and api_version.split("/")[0] == RBAC_GROUP


def _subject_is(subject: Mapping[str, Any], namespace: str, name: str) -> bool:
    kind, subject_name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        return bool(subject_name == name and subject.get("namespace") == namespace)
    if kind == "Group":
        return subject_name in (
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        )
    if kind == "User":
        return bool(subject_name == f"system:serviceaccount:{namespace}:{name}")
    return False


def load_objects(*paths: Path) -> list[dict[str, Any]]:
    """Every object in the YAML files given, or under the directories given."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        else:
            files.append(path)
    objects = []
    for file in files:
        with file.open(encoding="utf-8") as f:
            objects += [doc for doc in yaml.safe_load_all(f) if isinstance(doc, dict)]
    return objects


def request_attributes(method: str, path: str, query: str = "") -> Request:
    """The authorizer's view of ``METHOD path?query`` (``query`` without the ``?``).

    Follows the API server's RequestInfoFactory: ``/api/v1/...`` is the core group,
    ``/apis/GROUP/VERSION/...`` a named one; ``namespaces/NS/`` scopes what follows; the
    parts after the resource are the name and the subresource. A list or watch with
    ``fieldSelector=metadata.name=X`` names X. Other paths are non-resource URLs.
    """
    method = method.upper()
    parts = [p for p in path.split("/") if p]
    params = urllib.parse.parse_qs(query)
    verbs = {
        "GET": "get",
        "HEAD": "get",
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete",
    }
    if method not in verbs:
        raise ValueError(f"no RBAC verb for HTTP method {method}")
    verb = verbs[method]
    if len(parts) >= 2 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return Request(verb=method.lower(), path="/" + "/".join(parts))
    if not rest:
        return Request(verb=method.lower(), path="/" + "/".join(parts))
    if rest[0] == "watch":  # the deprecated /api/v1/watch/... form
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if params.get("watch", [""])[-1] in _TRUE else "list"
    if not name and verb in ("list", "watch"):
        name = _selected_name(params.get("fieldSelector", [""])[-1])
    if not name and verb == "delete":
        verb = "deletecollection"
    return Request(
        verb=verb,
        group=group,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )


def _selected_name(selector: str) -> str:
    """X when the field selector requires metadata.name to be X, else ''."""
    for term in selector.split(","):
        key, op, value = term.partition("==") if "==" in term else term.partition("=")
        if op and key.strip() == "metadata.name":
            return value.strip()
    return ""
