"""Kubernetes-style durations wherever lbroute takes seconds or milliseconds (issue 19).

People copy timers from MetalLB manifests ("90s", "300ms"): a Peer's BGP, BFD, OSPF and
RIP timers take an integer (as before) or a duration string of numbers with units h, m,
s and ms ("1m30s"). A duration that is not a whole number of the field's unit, or out
of its range, is an error naming the Peer, the field and what is valid. A configuration
written with durations renders exactly as the one with the same integers, and the
router's own parser accepts it. The NodeAgent's lease timers take fractions of a second,
so they stay numbers (the CRD cannot type a number-or-string field); a duration string
there is refused with a message that says so. The CRDs' side is in tests/test_crds.py.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from lbroute.cli import main
from lbroute.model import api
from lbroute.model.errors import InvalidObject, Severity
from lbroute.model.fields import parse_duration

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def peer(spec: dict[str, Any]) -> Any:
    return api.parse_object(
        {
            "apiVersion": api.API_VERSION,
            "kind": "Peer",
            "metadata": {"name": "upstream", "namespace": "lbroute"},
            "spec": spec,
        }
    )


def errors(spec: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidObject) as info:
        peer(spec)
    return [(p.path, p.message) for p in info.value.problems if p.severity is Severity.ERROR]


BGP = {"address": "10.0.0.1", "asn": 65001}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", Fraction(90)),
        ("1m30s", Fraction(90)),
        ("1h", Fraction(3600)),
        ("300ms", Fraction(3, 10)),
        ("1.5s", Fraction(3, 2)),
        ("2s500ms", Fraction(5, 2)),
        ("0s", Fraction(0)),
        ("1s1m", Fraction(61)),
    ],
)
def test_duration_strings_read_exactly(text: str, seconds: Fraction) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["90", "", "1d", "9 s", "-5s", "90S", ".5s", "1.s", "s", 90])
def test_what_is_not_a_duration(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_bgp_and_bfd_timers_take_durations_and_integers_alike() -> None:
    with_strings = peer(
        {
            "bgp": {
                **BGP,
                "holdTime": "1m30s",
                "keepaliveTime": "30s",
                "connectTime": "1m",
                "bfd": {"minRx": "300ms", "minTx": "1s"},
            }
        }
    )
    with_ints = peer(
        {
            "bgp": {
                **BGP,
                "holdTime": 90,
                "keepaliveTime": 30,
                "connectTime": 60,
                "bfd": {"minRx": 300, "minTx": 1000},
            }
        }
    )
    assert with_strings == with_ints
    assert with_strings.bgp.hold_time == 90 and with_strings.bgp.bfd.min_tx == 1000


def test_ospf_and_rip_timers_take_durations() -> None:
    ospf = peer(
        {
            "ospf": {
                "interfaces": [{"name": "eth0", "helloInterval": "5s", "deadInterval": "20s"}],
                "helloInterval": "10s",
                "deadInterval": "40s",
                "bfd": {"minRx": "100ms", "minTx": "100ms"},
            }
        }
    )
    assert ospf == peer(
        {
            "ospf": {
                "interfaces": [{"name": "eth0", "helloInterval": 5, "deadInterval": 20}],
                "helloInterval": 10,
                "deadInterval": 40,
                "bfd": {"minRx": 100, "minTx": 100},
            }
        }
    )
    rip = peer({"rip": {"interfaces": ["eth0"], "timers": {"update": "30s", "timeout": "3m",
                                                          "garbage": "2m"}}})  # fmt: skip
    assert rip.rip.timers is not None
    assert (rip.rip.timers.update, rip.rip.timers.timeout, rip.rip.timers.garbage) == (30, 180, 120)


@pytest.mark.parametrize(
    ("bgp", "path", "message"),
    [
        ({"holdTime": "1.5s"}, "spec.bgp.holdTime",
         "'1.5s' is not a whole number of seconds; expected whole seconds, e.g. 90 or \"90s\""),
        ({"holdTime": "300ms"}, "spec.bgp.holdTime", "is not a whole number of seconds"),
        ({"holdTime": "90"}, "spec.bgp.holdTime",
         "'90' is not a duration; expected an integer number of seconds or a duration of "
         "numbers with units h, m, s or ms, such as 90 or \"90s\""),
        ({"holdTime": "20h"}, "spec.bgp.holdTime",
         "'20h' (72000 seconds) is out of range; expected 0 to 65535 seconds"),
        ({"holdTime": "2s"}, "spec.bgp.holdTime", "2 is not valid; expected 0 (no keepalives)"),
        ({"holdTime": "9s", "keepaliveTime": "10s"}, "spec.bgp.keepaliveTime",
         "10 is more than a third of holdTime (9); expected at most 3"),
        ({"connectTime": "0s"}, "spec.bgp.connectTime", "'0s' (0 seconds) is out of range"),
        ({"bfd": {"minRx": "0.5ms"}}, "spec.bgp.bfd.minRx",
         "'0.5ms' is not a whole number of ms; expected whole ms, e.g. 300 or \"300ms\""),
        ({"bfd": {"minTx": "2m"}}, "spec.bgp.bfd.minTx",
         "'2m' (120000 ms) is out of range; expected 10 to 60000 ms"),
        ({"bfd": {"minTx": True}}, "spec.bgp.bfd.minTx", "must be an integer from 10 to 60000"),
    ],
    ids=lambda v: str(v),
)  # fmt: skip
def test_unusable_durations_name_the_field_and_what_is_valid(
    bgp: dict[str, Any], path: str, message: str
) -> None:
    found = errors({"bgp": {**BGP, **bgp}})
    assert [p for p, _ in found] == [path], found
    assert message in found[0][1]


def test_a_rip_timer_duration_is_compared_as_seconds() -> None:
    found = errors({"rip": {"interfaces": ["eth0"], "timers": {"update": "1m", "timeout": "60s",
                                                              "garbage": "40s"}}})  # fmt: skip
    assert found == [("spec.rip.timers.timeout", "60 must be greater than update (60)")]


def test_the_lease_timers_stay_numbers_and_say_why() -> None:
    obj = {
        "apiVersion": api.API_VERSION,
        "kind": "NodeAgent",
        "metadata": {"name": "all", "namespace": "lbroute"},
        "spec": {"localLease": {"durationSeconds": "10s", "renewSeconds": 1}},
    }
    with pytest.raises(InvalidObject) as info:
        api.parse_object(obj)
    [problem] = info.value.problems
    assert problem.path == "spec.localLease.durationSeconds"
    assert "'10s' is not valid; expected a number of seconds from 1 to 300" in problem.message
    assert "without quotes or unit" in problem.message


def _with_durations(tmp_path: Path) -> tuple[Path, Path]:
    """examples/bgp.yaml as it is, and with every timer written as a duration."""
    plain, durations = tmp_path / "plain", tmp_path / "durations"
    plain.mkdir()
    durations.mkdir()
    shutil.copy(EXAMPLES / "bgp.yaml", plain / "bgp.yaml")
    docs = list(yaml.safe_load_all((EXAMPLES / "bgp.yaml").read_text()))
    changed = 0
    for d in docs:
        bgp = (d.get("spec") or {}).get("bgp") or {}
        if d.get("kind") == "Peer" and "holdTime" in bgp:
            bgp["holdTime"] = f"1m{bgp['holdTime'] - 60}s"
            bgp["keepaliveTime"] = f"{bgp['keepaliveTime']}s"
            bgp["bfd"]["minRx"] = f"{bgp['bfd']['minRx']}ms"
            bgp["bfd"]["minTx"] = f"{bgp['bfd']['minTx'] / 1000}s"
            changed += 1
    assert changed == 2
    (durations / "bgp.yaml").write_text(yaml.safe_dump_all(docs))
    return plain, durations


@pytest.mark.parametrize("router", ["bird", "frr"])
def test_a_configuration_with_durations_renders_as_with_integers(
    tmp_path: Path, router: str
) -> None:
    plain, durations = _with_durations(tmp_path)
    runner = CliRunner()
    out = []
    for d in (plain, durations):
        result = runner.invoke(main, ["render", "-f", str(d), "--node", "node-a",
                                      "--router", router])  # fmt: skip
        assert result.exit_code == 0, result.output
        out.append(result.stdout)
    assert out[0] == out[1]
    assert "90" in out[1]


def test_the_router_accepts_the_configuration_with_durations(tmp_path: Path) -> None:
    if shutil.which("bird") is None:
        pytest.skip("BIRD is not installed")
    _plain, durations = _with_durations(tmp_path)
    result = CliRunner().invoke(main, ["validate", "-f", str(durations), "--node", "node-a",
                                       "--router", "bird"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "OK" in result.output
