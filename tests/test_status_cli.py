"""``lbroute status`` and the agent's metrics and health endpoints.

``lbroute status`` reads the status document the agent writes (nodeagent.status) and
prints it as a table (Service names escaped) or, with ``--json``, as the document
itself; a missing or unreadable file is one line on stderr and exit 1. The HTTP server
answers /metrics in the Prometheus text format with lbroute's metrics, /healthz 200
while the loop beats, /readyz 503 until the router runs a configuration lbroute
applied, then 200.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lbroute.cli import main
from lbroute.kube.serving import Health, serve
from lbroute.model.files import write_atomic
from nodeagent.status import Announced, LastApply, Metrics, SessionState, Status


def _status() -> Status:
    return Status(
        node="node-a",
        router="bird",
        mode="managed",
        config_hash="6a640094c150b608",
        last_apply=LastApply(
            time="2026-11-28T01:12:09Z",
            result="Failed",
            error="bird: <config>:50:1 Local AS number must be set",
            duration=0.125,
        ),
        announced=[
            Announced(
                address="192.0.2.10/24",
                group="lbroute/web",
                services=("default/web-1", "default/web-2"),
            ),
            Announced(
                address="2001:db8:1::10/64", group="lbroute/web", services=("default/web-1",)
            ),
        ],
        sessions=[
            SessionState(
                name="lbr_bgp_upstream_v4",
                protocol="bgp",
                state="Established",
                since="01:12:13.050",
            ),
            SessionState(name="lbr_ospf_v2", protocol="ospf", state="up", since="01:12:09.171"),
        ],
        problems=["error: ServiceGroup lbroute/broken: spec.pools[1].cidr: not valid"],
        updated="2026-11-28T01:12:20Z",
    )


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["status", *args])


@pytest.fixture
def status_file(tmp_path: Path) -> Path:
    path = tmp_path / "run" / "status.json"
    write_atomic(path, _status().to_json())
    return path


def test_json_is_the_status_document(status_file: Path) -> None:
    result = _run("--status-file", str(status_file), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc == json.loads(_status().to_json())
    assert Status.from_json(result.output) == _status()
    assert doc["last_apply"]["result"] == "Failed"
    assert doc["problems"] == ["error: ServiceGroup lbroute/broken: spec.pools[1].cidr: not valid"]


def test_the_document_keeps_its_json_shape(tmp_path: Path) -> None:
    doc = json.loads(_status().to_json())
    assert doc["announced"][0] == {
        "address": "192.0.2.10/24",
        "group": "lbroute/web",
        "services": ["default/web-1", "default/web-2"],
    }
    assert doc["sessions"][1] == {
        "name": "lbr_ospf_v2",
        "protocol": "ospf",
        "state": "up",
        "since": "01:12:09.171",
    }
    path = tmp_path / "status.json"
    path.write_text(json.dumps(doc), encoding="utf-8")  # as another writer would
    assert Status.from_json(path.read_text(encoding="utf-8")) == _status()


def test_table_shows_what_an_operator_looks_for(status_file: Path) -> None:
    result = _run("--status-file", str(status_file))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "node:        node-a" in lines
    assert "router:      bird (managed)" in lines
    assert "config hash: 6a640094c150b608" in lines
    assert "last apply:  Failed 2026-11-28T01:12:09Z (0.125s)" in lines
    assert "  error: bird: <config>:50:1 Local AS number must be set" in lines
    assert "announced (2):" in lines
    (web,) = [line for line in lines if "192.0.2.10/24" in line]
    assert web.split() == ["192.0.2.10/24", "lbroute/web", "default/web-1,", "default/web-2"]
    assert "sessions (2):" in lines
    (bgp,) = [line for line in lines if "lbr_bgp_upstream_v4" in line]
    assert bgp.split() == ["bgp", "lbr_bgp_upstream_v4", "Established", "01:12:13.050"]
    assert "problems (1):" in lines
    assert "  error: ServiceGroup lbroute/broken: spec.pools[1].cidr: not valid" in lines


def test_a_healthy_node_has_no_error_or_problem_lines(tmp_path: Path) -> None:
    status = _status()
    status.last_apply = LastApply(time="2026-11-28T01:12:09Z", result="Unchanged")
    status.problems = []
    path = tmp_path / "status.json"
    write_atomic(path, status.to_json())
    result = _run("--status-file", str(path))
    assert result.exit_code == 0, result.output
    assert "last apply:  Unchanged 2026-11-28T01:12:09Z (0.000s)" in result.output
    assert "error:" not in result.output and "problems" not in result.output


def test_a_failed_apply_says_how_it_failed(tmp_path: Path) -> None:
    """Issue 14: not converged is not rejected; the table says which."""
    status = _status()
    status.last_apply = LastApply(
        time="2026-11-28T01:12:09Z",
        result="Failed",
        reason="NotConverged",
        error="frr-reload.py --test still finds:\nno hostname other",
        duration=1.5,
    )
    path = tmp_path / "status.json"
    write_atomic(path, status.to_json())
    result = _run("--status-file", str(path))
    assert result.exit_code == 0, result.output
    assert "last apply:  Failed (NotConverged) 2026-11-28T01:12:09Z (1.500s)" in result.output
    assert Status.from_json(path.read_text(encoding="utf-8")) == status


def test_a_service_name_in_the_document_cannot_fake_a_line(tmp_path: Path) -> None:
    """Service names are a tenant's text: the table shows them escaped."""
    status = _status()
    status.announced = [
        Announced(
            address="192.0.2.10/24",
            group="lbroute/web",
            services=("default/a\n  198.51.100.1/32  lbroute/web  default/b\x1b[2K",),
        )
    ]
    path = tmp_path / "status.json"
    write_atomic(path, status.to_json())
    result = _run("--status-file", str(path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert not [line for line in lines if "198.51.100.1" in line and "192.0.2.10" not in line]
    (web,) = [line for line in lines if "192.0.2.10/24" in line]
    assert web.endswith(r"default/a\n  198.51.100.1/32  lbroute/web  default/b\x1b[2K")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found: is the agent running on this node?"),
        ("{not json", "unreadable status"),
        ('{"node": "node-a", "colour": "blue"}', "unreadable status"),
        ("[]", "unreadable status"),
        ('{"node": "node-a", "announced": ["192.0.2.1/32"]}', "unreadable status"),
        ('{"node": "node-a", "sessions": [{"name": "x"}]}', "unreadable status"),
    ],
    ids=["missing", "not-json", "unknown-field", "not-an-object", "bad-address", "bad-session"],
)
def test_a_missing_or_unreadable_file_is_one_line_and_exit_1(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "status.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    for args in ((), ("--json",)):
        result = _run("--status-file", str(path), *args)
        assert result.exit_code == 1
        assert result.output.startswith(f"error: {path}")
        assert message in result.output
        assert "Traceback" not in result.output and len(result.output.splitlines()) == 1


# -- the HTTP endpoints ---------------------------------------------------------------


def _get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_metrics_healthz_and_readyz() -> None:
    metrics, health = Metrics(), Health()
    metrics.addresses.labels("ipv4").set(3)
    metrics.applies.labels("applied").inc()
    metrics.sessions.labels("bgp", "Established").set(2)
    server = serve(0, metrics, health, host="127.0.0.1")
    try:
        port = server.server_address[1]
        code, ctype, body = _get(port, "/metrics")
        assert code == 200 and ctype.startswith("text/plain")
        assert 'lbroute_announced_addresses{family="ipv4"} 3.0' in body
        assert 'lbroute_router_applies_total{result="applied"} 1.0' in body
        assert 'lbroute_sessions{protocol="bgp",state="Established"} 2.0' in body
        for name in ("lbroute_render_seconds", "lbroute_apply_seconds", "lbroute_invalid_objects"):
            assert f"# TYPE {name} " in body

        assert _get(port, "/healthz") == (200, "text/plain", "ok\n")
        assert _get(port, "/readyz") == (503, "text/plain", "not ready\n")
        health.ready = True
        assert _get(port, "/readyz") == (200, "text/plain", "ok\n")
        assert _get(port, "/nothing")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_healthz_fails_when_the_loop_stalls() -> None:
    health = Health(stale_after=0.0)
    server = serve(0, Metrics(), health, host="127.0.0.1")
    try:
        assert _get(server.server_address[1], "/healthz") == (503, "text/plain", "stalled\n")
    finally:
        server.shutdown()
        server.server_close()
