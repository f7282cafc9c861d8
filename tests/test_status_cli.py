"""``lbroute status`` and the agent's metrics and health endpoints.

``lbroute status`` reads the status document the agent writes (nodeagent.status) and
prints it as a table (Service names escaped) or, with ``--json``, as the document
itself; a missing or unreadable file is one line on stderr and exit 1. It says how old
the file is and whether the process that wrote it (a real process here, in a pid
namespace of its own too) still runs, warns when it does not or the file is stale, and
``--check`` then exits 1, as for a failed apply; an idle agent rewrites the file (its
heartbeat), so that an old file means a gone or stuck agent. The HTTP server
answers /metrics in the Prometheus text format with lbroute's metrics, /healthz 200
while the loop beats, /readyz 503 until the router runs a configuration lbroute
applied, then 200.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lbroute.cli import main
from lbroute.kube.directory import Snapshot
from lbroute.kube.serving import Health, serve
from lbroute.model.files import write_atomic
from nodeagent.agent import Agent
from nodeagent.settings import AgentSettings, RouterChecks
from nodeagent.status import (
    Announced,
    LastApply,
    Metrics,
    SessionState,
    Status,
    Writer,
    now,
    stamp,
)


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
    doc = json.loads(result.stdout)
    assert doc == json.loads(_status().to_json())
    assert Status.from_json(result.stdout) == _status()
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


# -- how current the status is (issue 23) ----------------------------------------------


def _write(path: Path, status: Status) -> Path:
    write_atomic(path, status.to_json())
    return path


def _current(**changes: object) -> Status:
    """A healthy document this process wrote just now."""
    status = _status()
    status.last_apply = LastApply(time=now(), result="Applied", duration=0.2)
    status.updated = now()
    return dataclasses.replace(status, **changes)  # type: ignore[arg-type]


def _ago(seconds: float) -> str:
    return stamp(time.time() - seconds)


def test_a_current_status_says_its_age_and_its_agent(tmp_path: Path) -> None:
    path = _write(tmp_path / "status.json", _current())
    for args in ((), ("--check",)):
        result = _run("--status-file", str(path), *args)
        assert result.exit_code == 0, result.output
        assert result.stderr == ""
    (updated,) = [line for line in result.stdout.splitlines() if line.startswith("updated:")]
    assert re.fullmatch(r"updated: +\S+Z \((just now|[0-9] s ago)\)", updated), updated
    (agent,) = [line for line in result.stdout.splitlines() if line.startswith("agent:")]
    assert agent.startswith(f"agent:       pid {os.getpid()}, started 20"), agent
    assert "NOT RUNNING" not in agent
    # The problems with objects it lists are not the node's: --check passes (documented).
    assert "problems (1):" in result.stdout


def _exited_writer(tmp_path: Path) -> Path:
    """A status file written by a process (as the agent does) that has exited since."""
    path = tmp_path / "status.json"
    code = (
        "import sys; from pathlib import Path\n"
        "from nodeagent.status import LastApply, Status, now\n"
        "from lbroute.model.files import write_atomic\n"
        "s = Status(node='node-a', router='bird', mode='managed', updated=now(),\n"
        "           last_apply=LastApply(time=now(), result='Applied'))\n"
        "write_atomic(Path(sys.argv[1]), s.to_json())\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    return path


def test_a_status_left_by_an_agent_that_exited_is_not_current(tmp_path: Path) -> None:
    path = _exited_writer(tmp_path)
    writer = Status.from_json(path.read_text(encoding="utf-8")).writer
    assert writer is not None and writer.pid != os.getpid()
    result = _run("--status-file", str(path))
    assert result.exit_code == 0, result.output
    assert f"agent:       pid {writer.pid}, started " in result.stdout
    assert result.stdout.splitlines()[5].endswith(": NOT RUNNING")
    assert result.stderr == (
        f"warning: {path}: the agent that wrote it (pid {writer.pid}) is not running: this is "
        f"what it saw {re.search(r'[(](.*)[)]', result.stdout.splitlines()[4])[1]}, "  # type: ignore[index]
        "not what the node does now\n"
    )
    for args in (("--check",), ("--check", "--json")):
        result = _run("--status-file", str(path), *args)
        assert result.exit_code == 1
        assert "is not running" in result.stderr
    assert json.loads(result.stdout)["node"] == "node-a"  # --json still prints it


def _in_a_pid_namespace(script: str, path: Path) -> subprocess.CompletedProcess[str]:
    """``sh -c script`` in a new pid namespace, as in a container: its first process
    is pid 1 there, and sees /proc as the container does."""
    return subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script, "sh",
         sys.executable, str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


_WRITE = (
    '"$1" -c "import sys; from pathlib import Path; from nodeagent.status import Status, now; '
    "from lbroute.model.files import write_atomic; "
    'write_atomic(Path(sys.argv[1]), Status(node=\'node-a\', updated=now()).to_json())" "$2"'
)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare"
)
def test_an_agent_in_another_pid_namespace_is_judged_in_its_own(tmp_path: Path) -> None:
    """The agent in its container: ``lbroute status`` in the same container sees that it
    exited; on the host its pid (1 there) is not ours to look up, only the age counts."""
    path = tmp_path / "status.json"
    done = _in_a_pid_namespace(
        _WRITE + ' && "$1" -m lbroute status --status-file "$2" --check', path
    )
    assert done.returncode == 1, done.stderr
    assert "agent:       pid 2, started " in done.stdout  # sh is 1, the writer 2
    assert "(pid 2) is not running" in done.stderr
    writer = Status.from_json(path.read_text(encoding="utf-8")).writer
    assert writer is not None and writer.pidns != Writer.this_process().pidns
    result = _run("--status-file", str(path), "--check")
    assert result.exit_code == 0, result.output
    assert "agent:       pid 2, started " in result.stdout
    assert "(in another pid namespace: not checked)" in result.stdout


@pytest.mark.parametrize(
    "writer",
    [
        {"start": 1},  # the pid is this process's, its start is not: the pid was reused
        {"boot": "00000000-0000-0000-0000-000000000000"},  # written before the last boot
    ],
    ids=["pid-reused", "rebooted"],
)
def test_a_pid_that_is_another_process_by_now_is_not_the_agent(
    tmp_path: Path, writer: dict[str, object]
) -> None:
    this = Writer.this_process()
    path = _write(tmp_path / "status.json", _current(writer=dataclasses.replace(this, **writer)))  # type: ignore[arg-type]
    result = _run("--status-file", str(path), "--check")
    assert result.exit_code == 1
    assert f"agent:       pid {os.getpid()}, started {this.started}: NOT RUNNING" in result.stdout
    assert "is not running" in result.stderr


def test_an_old_status_of_a_running_writer_is_stale(tmp_path: Path) -> None:
    """The agent writes the file every 5 s at least: 25 minutes means it is stuck."""
    path = _write(tmp_path / "status.json", _current(updated=_ago(25 * 60 + 3)))
    result = _run("--status-file", str(path))
    assert result.exit_code == 0, result.output
    assert re.search(r"^updated: +\S+ \(25 min ago\)$", result.stdout, re.M), result.stdout
    assert result.stderr == (
        f"warning: {path}: not updated for 25 min though its agent writes it every 5 s: the "
        "agent is stuck or not running\n"
    )
    assert _run("--status-file", str(path), "--check").exit_code == 1
    # Six heartbeats (30 s) are allowed: an apply may hold the agent's loop a while.
    path = _write(tmp_path / "status.json", _current(updated=_ago(20)))
    result = _run("--status-file", str(path), "--check")
    assert result.exit_code == 0 and result.stderr == "", result.output


def test_from_another_pid_namespace_only_the_age_counts(tmp_path: Path) -> None:
    """The agent in its container, ``lbroute status`` on the host: its pid means nothing
    here (it may even be one of ours), so it is not looked up."""
    other = dataclasses.replace(Writer.this_process(), pidns="pid:[1]", start=1)
    path = _write(tmp_path / "status.json", _current(writer=other))
    result = _run("--status-file", str(path), "--check")
    assert result.exit_code == 0, result.output
    assert "(in another pid namespace: not checked)" in result.stdout
    assert result.stderr == ""
    path = _write(tmp_path / "status.json", _current(writer=other, updated=_ago(3600)))
    result = _run("--status-file", str(path), "--check")
    assert result.exit_code == 1
    assert "not updated for 60 min" in result.stderr


def test_a_document_of_an_older_agent_is_judged_by_its_age(tmp_path: Path) -> None:
    doc = json.loads(_current().to_json())
    del doc["writer"]
    path = tmp_path / "status.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = _run("--status-file", str(path), "--check")
    assert result.exit_code == 0, result.output
    assert "agent:       - (the document does not say which process wrote it)" in result.stdout
    doc["updated"] = _ago(600)
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = _run("--status-file", str(path), "--check")
    assert result.exit_code == 1 and "not updated for 10 min" in result.stderr
    doc["updated"] = "yesterday"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = _run("--status-file", str(path), "--check")
    assert result.exit_code == 1
    assert "updated:     yesterday (when is unknown)" in result.stdout
    assert "its age is unknown" in result.stderr


def test_check_fails_when_the_last_apply_failed(tmp_path: Path) -> None:
    failed = LastApply(time=now(), result="Failed", reason="Unavailable", error="no socket")
    path = _write(tmp_path / "status.json", _current(last_apply=failed))
    assert _run("--status-file", str(path)).exit_code == 0
    result = _run("--status-file", str(path), "--check")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the last apply failed: ")


@pytest.mark.parametrize("pid", [0, -1, "1", True, 1 << 40])
def test_a_writer_pid_that_is_no_process_id_is_refused(tmp_path: Path, pid: object) -> None:
    """kill(0) or kill(-1) would reach many processes: such a pid is an unreadable file."""
    doc = json.loads(_current().to_json())
    doc["writer"]["pid"] = pid
    path = tmp_path / "status.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = _run("--status-file", str(path), "--check")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}: unreadable status: writer.pid: ")


class _Quiet:
    def snapshots(self, stop: threading.Event) -> Iterator[Snapshot]:
        return iter(())


def test_the_agent_writes_its_status_again_though_nothing_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heartbeat: an idle agent's status stays current, so an old one is not."""
    monkeypatch.setattr("nodeagent.status.HEARTBEAT", 1.0)
    settings = AgentSettings(
        node="node-a", status_file=tmp_path / "status.json", checks=RouterChecks(interval=0.05)
    )
    agent = Agent(settings, _Quiet())
    agent.status.updated = _ago(60)  # written a minute ago, nothing changed since
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not settings.status_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        first = Status.from_json(settings.status_file.read_text(encoding="utf-8")).updated
        while time.monotonic() < deadline:
            again = Status.from_json(settings.status_file.read_text(encoding="utf-8"))
            if again.updated > first:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert first >= _ago(5)
    assert again.updated > first, "written again within 10 s"
    assert again.writer == Writer.this_process()


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


def test_a_draining_node_says_so_with_why_and_when(tmp_path: Path) -> None:
    from nodeagent.status import DrainStatus

    drain = DrainStatus(
        state="Draining",
        reasons=("lbroute drain",),
        since="2026-12-06T04:00:00Z",
        withdraw_at="2026-12-06T04:00:30Z",
    )
    path = _write(tmp_path / "status.json", _current(drain=drain))
    result = _run("--status-file", str(path))
    assert result.exit_code == 0, result.output
    assert (
        "drain:       Draining since 2026-12-06T04:00:00Z (lbroute drain); routes withdrawn "
        "at 2026-12-06T04:00:30Z" in result.stdout
    )
    serving = _run("--status-file", str(_write(tmp_path / "serving.json", _current())))
    assert "drain:" not in serving.stdout


def test_the_reporters_copy_is_the_document_read_back() -> None:
    """The agent hands its reporter a copy of the status instead of the document read
    back (30 ms at 10,000 addresses): the same, passwords in the router's message too."""
    status = _status()
    status.last_apply = LastApply(result="Failed", error='password "s3cret" rejected')
    copy = status.copy()
    assert copy == Status.from_json(status.to_json())
    assert "s3cret" not in copy.last_apply.error and "s3cret" in status.last_apply.error
