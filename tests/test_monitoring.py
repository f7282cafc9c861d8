"""The monitoring component (deploy/components/monitoring): what it scrapes, its alerts
and its dashboard, checked against what lbroute really exports.

- rendered with the base by ``kubectl kustomize``: the PodMonitors select the agents' and
  the allocator's pods and name a port those pods have; the namespace follows the
  overlay's;
- every PromQL expression (alerts and dashboard panels) parses (promql-parser, the
  Rust parser Prometheus's grammar is ported to), and every metric it names is one the
  agent or the allocator exports (their registries, as /metrics prints them: counters
  with ``_total``, histograms with ``_bucket``...), or ``up``;
- every label an alert's text or expression uses is one its series carry: the metric's
  own labels, and ``node``, ``job`` and ``instance`` that the scrape adds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from allocator.metrics import AllocatorMetrics
from nodeagent.status import Metrics

promql = pytest.importorskip("promql_parser")

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
MONITORING = DEPLOY / "components" / "monitoring"
SCRAPE_LABELS = {"node", "job", "instance", "namespace", "pod", "container"}
"""Labels every scraped series carries (the PodMonitor's relabeling adds ``node``)."""
JSON = dict[str, Any]


def exported() -> dict[str, set[str]]:
    """Every series name the agent and the allocator can print on /metrics (counters
    with ``_total``, histograms with ``_bucket``, ``_sum``, ``_count``...) -> its labels
    (``le`` for buckets). Labelled metrics print no series until a label value is set,
    so the names are the registries' (prometheus_client's map of every name it would
    expose to its metric)."""
    names: dict[str, set[str]] = {"up": set()}
    for registry in (Metrics().registry, AllocatorMetrics().registry):
        for name, collector in registry._names_to_collectors.items():
            labels = set(getattr(collector, "_labelnames", ()))
            names[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return names


def rules() -> list[JSON]:
    doc = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text(encoding="utf-8"))
    return [r for g in doc["spec"]["groups"] for r in g["rules"]]


def panel_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "lbroute-dashboard.json").read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def selectors(node: Any) -> Iterator[Any]:
    """Every VectorSelector in a parsed expression."""
    if isinstance(node, promql.VectorSelector):
        yield node
        return
    for attr in ("lhs", "rhs", "expr", "vector_selector", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield from selectors(child)
    for arg in getattr(node, "args", None) or ():
        yield from selectors(arg)


def names_in(expr: str) -> set[str]:
    return {s.name for s in selectors(promql.parse(expr)) if s.name}


@pytest.mark.parametrize("expr", [r["expr"] for r in rules()] + panel_exprs())
def test_every_expression_parses_and_names_exported_metrics(expr: str) -> None:
    names = names_in(expr)
    assert names, f"{expr}: names no metric"
    missing = names - exported().keys()
    assert not missing, f"{expr}: {sorted(missing)} is exported by neither agent nor allocator"


def test_the_name_check_can_fail() -> None:
    assert names_in("rate(lbroute_no_such_metric_total[5m]) > 0") - exported().keys()
    with pytest.raises(Exception):  # noqa: B017 - promql_parser raises its own error types
        promql.parse("sum by (node (lbroute_ready)")


@pytest.mark.parametrize("rule", rules(), ids=lambda r: str(r["alert"]))
def test_alerts_use_only_labels_their_series_carry(rule: JSON) -> None:
    series = exported()
    carried = set(SCRAPE_LABELS)
    for name in names_in(rule["expr"]):
        carried |= series[name]
    text = " ".join(str(v) for v in rule.get("annotations", {}).values())
    used = set(re.findall(r"\$labels\.(\w+)", text))
    assert used <= carried, f"{rule['alert']}: {sorted(used - carried)} on no series it reads"
    assert rule["labels"]["severity"] in ("warning", "critical")


def test_the_alerts_the_issue_names_are_there() -> None:
    assert {r["alert"] for r in rules()} >= {
        "LbrouteSessionDown",
        "LbrouteApplyFailing",
        "LbrouteAgentNotReady",
        "LbrouteNodeAnnouncesNothing",
        "LbroutePoolExhausted",
        "LbroutePoolAlmostFull",
    }


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is needed")
def test_rendered_with_the_base_the_monitors_select_the_pods_they_scrape(tmp_path: Path) -> None:
    where = tmp_path / "site"
    where.mkdir()
    up = Path(os.path.relpath(DEPLOY, where))
    (where / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [str(up)],
                "namespace": "netops-lb",
                "components": [str(up / "components" / "monitoring")],
            }
        ),
        encoding="utf-8",
    )
    out = subprocess.run(["kubectl", "kustomize", str(where)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    monitors = [d for d in docs if d["kind"] == "PodMonitor"]
    workloads = [d for d in docs if d["kind"] in ("DaemonSet", "Deployment")]
    assert {m["metadata"]["name"] for m in monitors} == {"lbroute-agent", "lbroute-allocator"}
    scraped = set()
    for monitor in monitors:
        assert monitor["metadata"]["namespace"] == "netops-lb"
        wanted = monitor["spec"]["selector"]["matchLabels"]
        for w in workloads:
            pod = w["spec"]["template"]
            if wanted.items() <= pod["metadata"]["labels"].items():
                ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
                for endpoint in monitor["spec"]["podMetricsEndpoints"]:
                    assert endpoint["port"] in ports, (monitor["metadata"]["name"], ports)
                scraped.add(w["metadata"]["name"])
    assert scraped == {w["metadata"]["name"] for w in workloads}, "every agent and the allocator"
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["metadata"]["namespace"] == "netops-lb"
    (dashboard,) = [d for d in docs if d["kind"] == "ConfigMap" and "lbroute-dashboard.json"
                    in d.get("data", {})]  # fmt: skip
    assert dashboard["metadata"]["labels"] == {"grafana_dashboard": "1"}
    assert json.loads(dashboard["data"]["lbroute-dashboard.json"])["uid"] == "lbroute"
