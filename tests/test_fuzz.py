"""A fuzzer over everything lbroute reads, run in CI (issue 24: "A fuzzer that keeps it so").

Hypothesis mutates valid input, the way a typo, a tenant or an attacker would:

- manifest sets (``examples/lab`` with passwords from a Secret, one file per object):
  a field set to a wrong type, a huge or deeply nested value, a shared structure that
  YAML writes with aliases ("billion laughs"), unicode and control characters, a field
  left out or unknown; an object duplicated, or a second one that conflicts with it
  (an overlapping pool, a second NodeAgent for the node); a file made of a list, of a
  key written twice, cut short or turned to junk;
- user templates: the built-in ones with a line of hostile Jinja put in (the secret
  printed elsewhere, ``{% filter %}``, ``.format``, recursion, loops without end,
  huge strings, includes out of the directory, Python internals);
- Service annotations and fields (``lbroute.io/addresses``, ``service-group``,
  ``allow-shared-ip``, ``ipFamilies``, the ingress), next to Services that hold
  addresses already.

What must hold, whatever the input:

- no traceback: only lbroute's own errors, and none from loading a model; no hang: each
  case within a time budget (a hard alarm, beside Hypothesis' deadline);
- bounded output: at most ``MAX_PROBLEMS`` + 1 problems per object, each one line of
  at most ``PROBLEM_LIMIT`` characters, printable (control characters escaped);
- every problem names its object; an input string shows only quoted (each hostile
  string starts with a marker, which a message may show only right after a quote
  character, or in a path as a plain field name);
- the real parsers accept every configuration the built-in templates produce: the
  cases' configurations are collected and a sample is checked with ``bird -p`` and
  ``vtysh --dryrun`` at the end of each test, as tests/test_golden.py does;
- no secret appears outside its one place: only right after a password or key keyword
  in a configuration (so redaction hides it), never in a problem, an error or a repr;
- objects still valid render exactly as they would alone: an object refused (or a file
  that cannot be read) leaves the configuration of both routers as if it were not
  there; a duplicate (of any kind, Secrets and Nodes too) is an error on its object
  and, like a conflicting newcomer, leaves it as it was; the Services that
  hold addresses keep them, and are announced as before.

Profiles: ``LBROUTE_FUZZ=ci`` (the default: fixed examples, derandomized, so CI runs the
same cases every time, about half a minute) and ``LBROUTE_FUZZ=deep`` (twenty times the
examples, random, Hypothesis' database on) for a local hunt. The tools, the hostile
values and the checks are in tests/fuzzing.py.
"""

from __future__ import annotations

import copy
import ipaddress
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from allocator.ipam import allocate, invalid_groups
from allocator.service import parse_service as allocator_service
from lbroute.model import api
from lbroute.model.errors import (
    InvalidObject,
    LbrouteError,
    ManifestError,
    Problem,
    Severity,
    escape,
)
from lbroute.model.manifests import parse_manifest_text
from lbroute.model.service import parse_service
from nodeagent.desired import desired_state
from renderer.render import render_view
from renderer.templating import builtin_template_set, load_template_set
from renderer.view import build_view
from tests.fuzzing import (
    ANNOTATION_KEYS,
    ANNOTATION_VALUES,
    BGP_PASSWORD,
    HOSTILE,
    HOSTILE_STRINGS,
    INGRESS,
    MARKER,
    OSPF_KEY,
    PROBLEM_LIMIT,
    PROFILE,
    RIP_KEY,
    SECRET_EXPR,
    SNIPPETS,
    SPEC_FIELDS,
    UNICODE,
    Collected,
    check_config_text,
    check_no_secret,
    check_problems,
    check_quoted,
    delete_at,
    dump,
    fuzz_settings,
    paths,
    set_at,
    time_budget,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "lab"
TEMPLATES = ROOT / "templates"
NS = "lbroute"

ROUTERS = {api.Router.BIRD: "node-a", api.Router.FRR: "node-b"}

# A failing case holds values of 100 KB on purpose; its report may be long.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
)


# -- manifest sets ------------------------------------------------------------------------


def base_objects() -> list[dict[str, Any]]:
    """examples/lab's cluster (no Services), with passwords from a Secret."""
    objects = [
        o for o in yaml.safe_load_all((EXAMPLE / "cluster.yaml").read_text(encoding="utf-8")) if o
    ]
    for obj in objects:
        spec = obj.get("spec") or {}
        if obj["kind"] == "Peer" and "bgp" in spec and obj["metadata"]["name"] == "upstream-v4":
            spec["bgp"]["passwordSecretRef"] = {"name": "router-secrets", "key": "bgp"}
        if obj["kind"] == "Peer" and "ospf" in spec:
            spec["ospf"]["authSecretRef"] = {"name": "router-secrets", "key": "ospf"}
        if obj["kind"] == "Peer" and "rip" in spec:
            spec["rip"]["authSecretRef"] = {"name": "router-secrets", "key": "rip"}
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "router-secrets", "namespace": NS},
            "stringData": {"bgp": BGP_PASSWORD, "ospf": OSPF_KEY, "rip": RIP_KEY},
        }
    )
    return objects


BASE = base_objects()
ALL = tuple(range(len(BASE)))
BUILT_IN = {router: builtin_template_set(router) for router in ROUTERS}


@dataclass
class ManifestCase:
    """A manifest set as files, and what it must render like."""

    what: str
    files: list[str]
    expected: tuple[int, ...] | None
    """The objects of :data:`BASE` (by index) that must render exactly as the files do;
    None: no such promise."""
    refused_alone: int | None = None
    """The file whose object, once mutated, must render as if it were not there when
    that object is refused (or the file cannot be read)."""
    path: tuple[Any, ...] = ()
    value: Any = None
    """The field set, and the value it was set to."""
    reported: tuple[str, int] | None = None
    """The object (as a problem names it) that must have an error, unless the file (by
    index) that holds its duplicate cannot be read."""


@st.composite
def manifest_cases(draw: st.DrawFn) -> ManifestCase:
    objects = copy.deepcopy(BASE)
    files = [dump(o) for o in objects]
    kind = draw(
        st.sampled_from(
            [
                "field",
                "field",
                "field",
                "delete",
                "unknown",
                "duplicate",
                "conflict",
                "text",
                "text",
            ]
        )
    )
    i = draw(st.integers(min_value=0, max_value=len(objects) - 1))
    target = objects[i]
    if kind in ("field", "delete"):
        places = paths(target)
        path = draw(st.sampled_from(places))
        value = None
        if kind == "delete":
            delete_at(target, path)
        else:
            value = draw(HOSTILE)
            set_at(target, path, value)
        files[i] = dump(target)
        return ManifestCase(f"{kind} {path} of object {i}", files, None, i, path, value)
    if kind == "unknown":
        dicts = [p for p in [(), *paths(target)] if isinstance(_get(target, p), dict)]
        path = draw(st.sampled_from(dicts))
        key = draw(st.one_of(HOSTILE_STRINGS, st.just("unknownField")))
        set_at(target, (*path, key), draw(HOSTILE))
        files[i] = dump(target)
        return ManifestCase(f"unknown field in {path} of object {i}", files, None, refused_alone=i)
    if kind == "duplicate":
        # A copy, changed or not (a Node's status, a Secret's data, a spec): an error on
        # the object, and its first copy is used, whatever its kind. Half of them copy
        # the Secret (the last object), which holds every password.
        i = draw(st.sampled_from([i, len(objects) - 1]))
        target = objects[i]
        copy_ = copy.deepcopy(target)
        places = [p for p in paths(copy_) if p[0] not in ("apiVersion", "kind", "metadata")]
        if places:
            set_at(copy_, draw(st.sampled_from(places)), draw(HOSTILE))
        files.insert(i + 1, dump(copy_))
        what = f"duplicate of object {i}"
        return ManifestCase(what, files, ALL, reported=(ref_text(target), i + 1))
    if kind == "conflict":
        extra: dict[str, Any] = draw(
            st.sampled_from(
                [
                    {
                        "apiVersion": "lbroute.io/v1alpha1",
                        "kind": "ServiceGroup",
                        "metadata": {"name": "zz-overlap", "namespace": NS},
                        "spec": {"protocols": ["bgp"], "pools": [{"cidr": "192.0.2.128/25"}]},
                    },
                    {
                        "apiVersion": "lbroute.io/v1alpha1",
                        "kind": "NodeAgent",
                        "metadata": {"name": "zz-agent", "namespace": NS},
                        "spec": {"router": "frr", "localASN": 65111},
                    },
                ]
            )
        )
        files.append(dump(extra))
        return ManifestCase(f"conflicting {extra['metadata']['name']}", files, ALL)
    text = files[i]
    how = draw(st.sampled_from(["list", "twice", "cut", "junk", "tab", "bom"]))
    if how == "list":
        files[i] = dump([target])
    elif how == "twice":
        first = text.splitlines(keepends=True)[0]
        files[i] = first + text
    elif how == "cut":
        files[i] = text[: draw(st.integers(min_value=0, max_value=max(0, len(text) - 1)))]
    elif how == "junk":
        files[i] = text + draw(st.sampled_from(["\x00\x01", ": : :", "\t- x", "{", "%YAML 9"]))
    elif how == "tab":
        files[i] = text.replace("  ", "\t", 1)
    else:
        files[i] = "\ufeff\ufeff" + text
    return ManifestCase(f"{how} file of object {i}", files, None, refused_alone=i)


def ref_text(obj: dict[str, Any]) -> str:
    """How a problem names the object: ``Node n1``, ``Secret lbroute/router-secrets``."""
    meta = obj["metadata"]
    if obj["kind"] == "Node":
        return f"Node {meta['name']}"
    return f"{obj['kind']} {meta.get('namespace', 'default')}/{meta['name']}"


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def read_files(files: list[str]) -> tuple[list[dict[str, Any]], list[str], list[int]]:
    """Objects of the files that can be read; errors; which files could not be."""
    objects: list[dict[str, Any]] = []
    errors: list[str] = []
    unreadable: list[int] = []
    for n, text in enumerate(files):
        try:
            objects += parse_manifest_text(text, f"file-{n}.yaml")
        except ManifestError as exc:
            errors.append(str(exc))
            unreadable.append(n)
    return objects, errors, unreadable


def render_all(objects: list[dict[str, Any]]) -> tuple[api.Model, dict[api.Router, str]]:
    model = api.load(objects)
    rendered: dict[api.Router, str] = {}
    for router, node in ROUTERS.items():
        try:
            view = build_view(model, router, node)
            check_problems(view.problems)
            rendered[router] = render_view(view, BUILT_IN[router])
        except LbrouteError as exc:
            message = str(exc)
            assert len(message) <= 4 * PROBLEM_LIMIT, message[:300]
            check_no_secret(message)
            rendered[router] = f"<error> {message}"
    return model, rendered


def refused(obj: Any) -> bool:
    """The object, parsed alone, is refused."""
    try:
        api.parse_object(obj)
    except InvalidObject:
        return True
    return False


def test_manifest_sets() -> None:
    collected = Collected()
    alone_cache: dict[tuple[int, ...], dict[api.Router, str]] = {}
    _, base = render_all(copy.deepcopy(BASE))
    for router, text in base.items():
        assert not text.startswith("<error>"), text
        check_config_text(text)
        collected.add(router, text)

    @fuzz_settings(150)
    @given(manifest_cases())
    def case(c: ManifestCase) -> None:
        with time_budget():
            objects, errors, unreadable = read_files(c.files)
            for error in errors:
                assert len(error) <= 4 * PROBLEM_LIMIT and error.isprintable(), error[:300]
                check_quoted(error)
                check_no_secret(error)
            model, rendered = render_all(objects)
            check_problems(model.problems)
            check_no_secret(repr(model))
            if c.reported is not None and c.reported[1] not in unreadable:
                assert any(
                    str(p.ref) == c.reported[0] and p.severity is Severity.ERROR
                    for p in model.problems
                ), f"{c.what}: no error on {c.reported[0]}: {[str(p) for p in model.problems]}"
            for router, text in rendered.items():
                check_config_text(text)
                collected.add(router, text)
            expected = c.expected
            if expected is None and c.refused_alone is not None:
                n = c.refused_alone
                if n in unreadable or _file_refused(c.files[n]):
                    expected = tuple(k for k in ALL if k != n)
                if n not in unreadable and isinstance(c.value, str):
                    _names_the_field(c.files[n], c.path)
            if expected is not None:
                if expected not in alone_cache:
                    alone_cache[expected] = render_all([copy.deepcopy(BASE[k]) for k in expected])[
                        1
                    ]
                alone = alone_cache[expected]
                assert rendered == alone, f"{c.what}: the valid objects render differently"

    case()
    collected.check_sample()


def _names_the_field(text: str, path: tuple[Any, ...]) -> None:
    """When the object with a hostile string at ``path`` is refused, a problem names that
    field (its path) or shows the value (quoted: see check_quoted)."""
    (obj,) = parse_manifest_text(text, "file.yaml")
    try:
        api.parse_object(obj)
    except InvalidObject as exc:
        where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")
        assert any(p.path == where or MARKER in str(p) for p in exc.problems), (
            f"no problem names {where}: {[str(p) for p in exc.problems]}"
        )


def _file_refused(text: str) -> bool:
    try:
        objects = parse_manifest_text(text, "file.yaml")
    except ManifestError:
        return True
    return len(objects) == 1 and refused(objects[0])


# -- user templates -------------------------------------------------------------------------


@st.composite
def template_cases(draw: st.DrawFn) -> tuple[api.Router, str, str]:
    router = draw(st.sampled_from(list(ROUTERS)))
    name = draw(st.sampled_from(["bgp.j2", "header.j2"]))
    lines = (TEMPLATES / router.value / name).read_text(encoding="utf-8").splitlines()
    snippet = draw(st.sampled_from(SNIPPETS)).replace("SECRET", SECRET_EXPR)
    at = draw(st.integers(min_value=0, max_value=len(lines)))
    if draw(st.booleans()):
        body = "\n".join([*lines[:at], snippet, *lines[at:]]) + "\n"
    else:
        body = snippet + "\n"
    return router, name, body


def test_user_templates() -> None:
    model = api.load(copy.deepcopy(BASE))
    views = {router: build_view(model, router, node) for router, node in ROUTERS.items()}

    @fuzz_settings(60)
    @given(template_cases())
    def case(c: tuple[api.Router, str, str]) -> None:
        router, name, body = c
        with tempfile.TemporaryDirectory(prefix="lbroute-fuzz-") as tmp:
            (Path(tmp) / name).write_text(body, encoding="utf-8")
            with time_budget():
                try:
                    text = render_view(views[router], load_template_set(router, Path(tmp)))
                except LbrouteError as exc:
                    message = str(exc)
                    assert len(message) <= 4 * PROBLEM_LIMIT, message[:300]
                    check_no_secret(message)
                    assert tmp in message or name in message, f"names no template: {message}"
                    return
        check_config_text(text)

    case()


# -- Service annotations ------------------------------------------------------------------

HOLDERS = {
    "held-v4": ("192.0.2.10",),
    "held-dual": ("192.0.2.11", "2001:db8:1::11"),
    "held-ospf": ("198.51.100.10",),
}
"""Services that hold addresses already (and the allocated-from annotation)."""


def _service(
    name: str, annotations: dict[str, Any], spec: dict[str, Any], ips: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": annotations,
        },
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "lbroute.io/lbroute", **spec},
        "status": {"loadBalancer": {"ingress": ips}},
    }


def holders() -> list[dict[str, Any]]:
    found = []
    for name, ips in HOLDERS.items():
        group = "campus" if name == "held-ospf" else "web"
        pools = ",".join(
            "198.51.100.0/24" if group == "campus" else
            ("2001:db8:1::/64" if ":" in ip else "192.0.2.0/24")
            for ip in ips
        )  # fmt: skip
        found.append(
            _service(
                name,
                {
                    "lbroute.io/service-group": group,
                    "lbroute.io/allocated-from": f"{group}:{pools}",
                },
                {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}
                if len(ips) == 2
                else {},
                [{"ip": ip} for ip in ips],
            )
        )
    return found


@st.composite
def service_cases(draw: st.DrawFn) -> dict[str, Any]:
    annotations = draw(st.dictionaries(ANNOTATION_KEYS, ANNOTATION_VALUES, max_size=4))
    name = draw(st.one_of(st.just("fuzzed"), st.builds(lambda s: MARKER + s, UNICODE)))
    obj = _service(name, annotations, draw(SPEC_FIELDS), draw(INGRESS))
    obj["metadata"]["creationTimestamp"] = "2026-06-01T00:00:00Z"  # younger than the holders
    return obj


def test_service_annotations() -> None:
    model = api.load(copy.deepcopy(BASE))
    bad_groups = invalid_groups(model.problems)
    held = holders()

    def allocation(objects: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
        parsed = [allocator_service(o, default_class=False) for o in objects]
        result = allocate(
            model.service_groups, [p for p in parsed if p is not None], invalid_groups=bad_groups
        )
        for failure in result.failures:
            text = f"{failure.ref}: {escape(failure.path)}: {escape(failure.message)}"
            assert len(text) <= PROBLEM_LIMIT and text.isprintable(), text[:300]
            check_quoted(escape(failure.path), plain=".")
            check_quoted(escape(failure.message))
        return {a.ref.name: tuple(map(str, a.addresses)) for a in result.assignments}

    def announced(objects: list[dict[str, Any]]) -> dict[str, Any]:
        problems: list[Problem] = []
        services = [
            s
            for s in (parse_service(o, default_class=False, problems=problems) for o in objects)
            if s is not None
        ]
        check_problems(problems)
        for s in services:
            check_problems(s.problems)
        state = desired_state(model, services, {}, "node-a")
        check_problems(state.problems)
        return {ref.name: tuple(map(str, ifaces)) for ref, ifaces in state.by_service().items()}

    before = allocation(held)
    assert {name: before[name] for name in HOLDERS} == HOLDERS
    before_announced = announced(held)

    @fuzz_settings(150)
    @given(service_cases())
    def case(fuzzed: dict[str, Any]) -> None:
        with time_budget():
            objects = [*held, fuzzed]
            given_ = allocation(objects)
            for name in HOLDERS:
                assert given_[name] == before[name], f"{name} lost its address"
            now = announced(objects)
            for name in HOLDERS:
                assert now.get(name) == before_announced.get(name), name
            for addresses in given_.values():
                for address in addresses:
                    ipaddress.ip_address(address)

    case()


def test_the_profile_is_reproducible() -> None:
    """CI runs the same cases every time: the default profile is derandomized, without
    a database of past failures."""
    probe = fuzz_settings(1)
    if PROFILE == "ci":
        assert probe.derandomize and probe.database is None and probe.max_examples == 1
