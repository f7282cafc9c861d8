"""Golden configurations: every case in tests/cases/ rendered for BIRD and FRR.

Each rendered configuration is compared byte for byte with tests/golden/<case>.<router>
(refresh with ``pytest --update-golden`` and review the diff), and each golden is also
fed to the real parser (``bird -p``, ``vtysh --dryrun``), so a golden can never hold a
configuration the router would reject. Known-bad configurations must be rejected by the
same check, which proves it is not a rubber stamp.

Some cases are also rendered for a draining node (issue 17), in tests/golden/drain/:
``<case>+deprefer`` while it de-prefers its routes, ``<case>+withdraw`` once drained,
with a NodeAgent drain policy added (2 prepends and MED 500 towards eBGP).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lbroute.model import api
from lbroute.model.errors import Severity
from lbroute.model.manifests import read_manifests
from nodeagent.routers import check_config
from renderer.render import render_view
from renderer.view import Drain, build_view

HERE = Path(__file__).parent
CASES = HERE / "cases"
GOLDEN = HERE / "golden"
DRAIN_GOLDEN = GOLDEN / "drain"

FRR_ONLY = {"bgp-unnumbered", "isis", "isis-levels"}
BIRD_ONLY = {"include", "include-host-sessions"}
OTHER_NODES = {"mixed": ["node-b"]}
DRAINED = {"bgp-policy-sessions", "mixed", "ospf-v2", "ospf-v3", "rip", "ripng", "isis-levels"}
"""Cases also rendered while the node de-prefers its routes and once it is drained."""
DRAIN_POLICY = {"drainPrepend": 2, "drainMED": 500}


@dataclass(frozen=True)
class Case:
    name: str
    router: api.Router
    node: str
    drain: Drain = Drain.NONE

    @property
    def id(self) -> str:
        suffix = "" if self.node == "node-a" else f"@{self.node}"
        if self.drain is not Drain.NONE:
            suffix += f"+{self.drain.value}"
        return f"{self.name}{suffix}.{self.router.value}"

    @property
    def golden(self) -> Path:
        return (GOLDEN if self.drain is Drain.NONE else DRAIN_GOLDEN) / f"{self.id}.conf"


def _cases() -> list[Case]:
    out = []
    for path in sorted(CASES.glob("*.yaml")):
        name = path.stem
        for router in api.Router:
            if (router is api.Router.BIRD and name in FRR_ONLY) or (
                router is api.Router.FRR and name in BIRD_ONLY
            ):
                continue
            for node in ["node-a", *OTHER_NODES.get(name, [])]:
                out.append(Case(name=name, router=router, node=node))
            if name in DRAINED:
                for drain in (Drain.DEPREFER, Drain.WITHDRAW):
                    out.append(Case(name=name, router=router, node="node-a", drain=drain))
    return out


ALL = _cases()


def _render(case: Case) -> tuple[str, api.Mode]:
    manifests = read_manifests([CASES / f"{case.name}.yaml"])
    assert manifests.errors == ()
    objects = list(manifests.objects)
    if case.drain is not Drain.NONE:
        objects = [_with_drain_policy(o) for o in objects]
        if not any(o.get("kind") == "NodeAgent" for o in objects):
            objects.append(_node_agent())
    model = api.load(objects)
    assert not model.errors, [str(p) for p in model.errors]
    view = build_view(model, case.router, case.node, drain=case.drain)
    errors = [str(p) for p in view.problems if p.severity is Severity.ERROR]
    assert not errors, errors
    return render_view(view), view.mode


def _with_drain_policy(obj: dict[str, Any]) -> dict[str, Any]:
    if obj.get("kind") != "NodeAgent":
        return obj
    return {**obj, "spec": {**obj.get("spec", {}), **DRAIN_POLICY}}


def _node_agent() -> dict[str, Any]:
    return {
        "apiVersion": "lbroute.io/v1alpha1",
        "kind": "NodeAgent",
        "metadata": {"name": "drain", "namespace": "lbroute"},
        "spec": dict(DRAIN_POLICY),
    }


def test_enough_cases() -> None:
    assert len(ALL) >= 20
    assert {c.router for c in ALL} == set(api.Router)


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_matches_golden(case: Case, update_golden: bool) -> None:
    text, _mode = _render(case)
    if update_golden:
        case.golden.parent.mkdir(exist_ok=True)
        case.golden.write_text(text, encoding="utf-8")
        return
    assert case.golden.exists(), f"no golden for {case.id}; run pytest --update-golden"
    assert text == case.golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_golden_accepted_by_real_parser(case: Case) -> None:
    _text, mode = _render(case)
    result = check_config(case.router, case.golden.read_text(encoding="utf-8"), mode)
    assert result.ok, result.describe()


def test_no_stale_goldens() -> None:
    expected = {c.golden for c in ALL}
    assert {*GOLDEN.glob("*.conf"), *DRAIN_GOLDEN.glob("*.conf")} == expected


# Known-bad: small corruptions of real goldens that each parser must reject, with the
# offending line named.
BAD = [
    (api.Router.BIRD, "bgp-ipv4.bird", "  neighbor 10.0.0.1 as 65000;", "  neighbor 10.0.0.1 as;"),
    (api.Router.BIRD, "bgp-policy.bird", "  reject;", "  rejectt;"),
    (api.Router.BIRD, "ospf-v2.bird", "type ptp;", "type pointy;"),
    (api.Router.BIRD, "rip.bird", "version 2;", "version 7;"),
    (api.Router.FRR, "bgp-ipv4.frr", " neighbor 10.0.0.1 remote-as 65000",
     " neighbor 10.0.0.1 remote-as sixty"),
    (api.Router.FRR, "ospf-v2.frr", " ip ospf cost 10", " ip ospf cost ten"),
    (api.Router.FRR, "isis.frr", " is-type level-2-only", " is-type level-9"),
    (api.Router.FRR, "bgp-policy.frr", " set metric 10", " set metrics 10"),
]  # fmt: skip


@pytest.mark.parametrize("router,golden,good,bad", BAD, ids=[b[1] + "-bad" for b in BAD])
def test_known_bad_rejected(router: api.Router, golden: str, good: str, bad: str) -> None:
    text = (GOLDEN / f"{golden}.conf").read_text(encoding="utf-8")
    assert good in text, f"{golden}: the line to corrupt is gone; update this case"
    broken = text.replace(good, bad, 1)
    result = check_config(router, broken)
    assert not result.ok
    assert result.line is not None
    assert broken.splitlines()[result.line - 1].strip() == bad.strip()
