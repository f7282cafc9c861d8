"""Golden configurations: every case in tests/cases/ rendered for BIRD and FRR.

Each rendered configuration is compared byte for byte with tests/golden/<case>.<router>
(refresh with ``pytest --update-golden`` and review the diff), and each golden is also
fed to the real parser (``bird -p``, ``vtysh --dryrun``), so a golden can never hold a
configuration the router would reject. Known-bad configurations must be rejected by the
same check, which proves it is not a rubber stamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from lbroute.model import api
from lbroute.model.errors import Severity
from lbroute.model.manifests import read_manifests
from nodeagent.routers import check_config
from renderer.render import render_view
from renderer.view import build_view

HERE = Path(__file__).parent
CASES = HERE / "cases"
GOLDEN = HERE / "golden"

FRR_ONLY = {"bgp-unnumbered", "isis", "isis-levels"}
BIRD_ONLY = {"include"}
OTHER_NODES = {"mixed": ["node-b"]}


@dataclass(frozen=True)
class Case:
    name: str
    router: api.Router
    node: str

    @property
    def id(self) -> str:
        suffix = "" if self.node == "node-a" else f"@{self.node}"
        return f"{self.name}{suffix}.{self.router.value}"

    @property
    def golden(self) -> Path:
        return GOLDEN / f"{self.id}.conf"


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
    return out


ALL = _cases()


def _render(case: Case) -> tuple[str, api.Mode]:
    manifests = read_manifests([CASES / f"{case.name}.yaml"])
    assert manifests.errors == ()
    model = api.load(manifests.objects)
    assert not model.errors, [str(p) for p in model.errors]
    view = build_view(model, case.router, case.node)
    errors = [str(p) for p in view.problems if p.severity is Severity.ERROR]
    assert not errors, errors
    return render_view(view), view.mode


def test_enough_cases() -> None:
    assert len(ALL) >= 20
    assert {c.router for c in ALL} == set(api.Router)


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_matches_golden(case: Case, update_golden: bool) -> None:
    text, _mode = _render(case)
    if update_golden:
        GOLDEN.mkdir(exist_ok=True)
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
    expected = {c.golden.name for c in ALL}
    assert {p.name for p in GOLDEN.glob("*.conf")} == expected


# Known-bad: small corruptions of real goldens that each parser must reject, with the
# offending line named.
BAD = [
    (api.Router.BIRD, "bgp-ipv4.bird", "  neighbor 10.0.0.1 as 65000;", "  neighbor 10.0.0.1 as;"),
    (api.Router.BIRD, "bgp-policy.bird", "reject;", "rejectt;"),
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
