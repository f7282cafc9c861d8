"""Host sessions (issue 22): the NodeAgent's ``hostSessions``, the fragment that lets a
host BIRD (a CNI's) announce lbroute's prefixes through its own sessions, and the
agent's reading of those sessions' state.

The fragments here are parsed by the real BIRD inside the host configuration of
examples/cni (a Calico-shaped one that calls ``lbroute_export()``): with the stub that
stands before lbroute's first apply, with groups carried, drained, and with every
ServiceGroup gone. The namespace test (tests/netns/test_cni_router.py) runs it live.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lbroute.model import api
from lbroute.model.errors import Severity
from lbroute.model.manifests import read_manifests
from nodeagent.routers.bird import host_session_patterns, host_sessions
from renderer.render import render_view
from renderer.view import Drain, build_view

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cni"


def _objects() -> list[dict[str, Any]]:
    manifests = read_manifests([EXAMPLE / "cluster.yaml"])
    assert manifests.errors == ()
    return [dict(o) for o in manifests.objects]


def _render(objects: list[dict[str, Any]], drain: Drain = Drain.NONE) -> str:
    model = api.load(objects)
    assert not model.errors, [str(p) for p in model.errors]
    view = build_view(model, None, "node-a", drain=drain)
    assert not [p for p in view.problems if p.severity is Severity.ERROR]
    return render_view(view)


def _agent(objects: list[dict[str, Any]], **host: Any) -> list[dict[str, Any]]:
    out = copy.deepcopy(objects)
    for o in out:
        if o["kind"] == "NodeAgent":
            o["spec"]["hostSessions"].update(host)
    return out


def _errors(objects: list[dict[str, Any]]) -> list[str]:
    return [str(p) for p in api.load(objects).errors]


def _host_parses(fragment: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``bird -p`` on examples/cni/calico-bird.cfg with ``fragment`` as lbroute's file."""
    if shutil.which("bird") is None:
        pytest.skip("bird is not installed (run make install)")
    (tmp_path / "lbroute").mkdir(exist_ok=True)
    (tmp_path / "lbroute" / "lbroute.conf").write_text(fragment, encoding="utf-8")
    host = (EXAMPLE / "calico-bird.cfg").read_text(encoding="utf-8")
    host = host.replace("/etc/calico/confd/config/lbroute/", f"{tmp_path}/lbroute/")
    (tmp_path / "bird.cfg").write_text(host, encoding="utf-8")
    return subprocess.run(
        ["bird", "-p", "-c", str(tmp_path / "bird.cfg")],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


# -- the model ------------------------------------------------------------------------


def test_the_example_parses_with_its_defaults() -> None:
    model = api.load(_objects())
    (agent,) = model.node_agents
    assert agent.host_sessions is not None
    assert agent.host_sessions.protocols == ("Global_*", "Node_*")
    assert not agent.host_sessions.ibgp
    assert (agent.host_sessions.ipv4_table, agent.host_sessions.ipv6_table) == (
        "master4",
        "master6",
    )


@pytest.mark.parametrize(
    ("host", "field", "says"),
    [
        ({"protocols": ["Node-10-0-0-1"]}, "spec.hostSessions.protocols[0]", "a BIRD protocol"),
        ({"protocols": ["1st"]}, "spec.hostSessions.protocols[0]", "not starting with a digit"),
        ({"protocols": ["lbr_bgp_tor"]}, "spec.hostSessions.protocols[0]", "lbroute's own"),
        ({"protocols": ["Node_*", "Node_*"]}, "spec.hostSessions.protocols[1]", "listed twice"),
        ({"protocols": []}, "spec.hostSessions.protocols", "is required"),
        ({"session": "ibgp"}, "spec.hostSessions.session", "eBGP, iBGP"),
        ({"ipv4Table": "lbroute4"}, "spec.hostSessions.ipv4Table", "lbroute's own tables"),
        ({"ipv6Table": "master 6"}, "spec.hostSessions.ipv6Table", "a BIRD symbol"),
        ({"protocol": ["Node_*"]}, "spec.hostSessions.protocol", "unknown field"),
    ],
)
def test_bad_host_sessions_are_refused_naming_the_field(
    host: dict[str, Any], field: str, says: str
) -> None:
    errors = _errors(_agent(_objects(), **host))
    assert any(
        "NodeAgent lbroute/calico-nodes" in e and field in e and says in e for e in errors
    ), errors


def test_host_sessions_in_managed_mode_is_a_warning_and_renders_nothing() -> None:
    objects = _objects()
    for o in objects:
        if o["kind"] == "NodeAgent":
            o["spec"]["mode"] = "managed"
            del o["spec"]["includePath"]
    model = api.load(objects)
    assert not model.errors
    view = build_view(model, None, "node-a")
    (warning,) = [str(p) for p in view.problems if "spec.hostSessions" in str(p)]
    assert "NodeAgent lbroute/calico-nodes" in warning and "is ignored" in warning
    assert "lbroute_export" not in _render(objects)


# -- the fragment -------------------------------------------------------------------


def test_the_fragment_pipes_the_carried_groups_and_sets_their_attributes(tmp_path: Path) -> None:
    text = _render(_objects())
    assert "protocol bgp" not in text  # lbroute owns no session
    assert "# lbroute-host-sessions: Global_* Node_*" in text
    assert "# They carry (eBGP attributes): lbroute/web" in text
    assert "peer table master4;" in text
    assert 'return proto = "lbr_kernel4" || proto = "lbr_kernel6";' in text
    export = text[text.index("function lbroute_export()") :]
    assert "if net ~ lbr_sg_web_v4 then" in export and "lbr_sg_web_bgp();" in export
    assert "bgp_community.add((65000, 100));" in text and "bgp_med = 50;" in text
    result = _host_parses(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ibgp_attributes_and_other_tables(tmp_path: Path) -> None:
    objects = _agent(_objects(), session="iBGP", ipv4Table="calico4")
    for o in objects:
        if o["kind"] == "ServiceGroup":
            o["spec"]["bgp"] = {"localPref": 300, "asPathPrepend": 2}
    text = _render(objects)
    assert "bgp_local_pref = 300;" in text and "bgp_path.prepend" not in text
    assert "peer table calico4;" in text
    result = _host_parses(text.replace("calico4", "master4"), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_group_the_selector_leaves_out_is_not_carried() -> None:
    objects = _objects()
    for o in objects:
        if o["kind"] == "ServiceGroup":
            o["metadata"]["labels"] = {"uplink": "edge"}
    text = _render(objects)
    assert "protocol pipe" not in text
    assert "# They carry (eBGP attributes): nothing" in text
    assert "function lbroute_export() {\n  return false;\n}" in text


@pytest.mark.parametrize("case", ["stub", "no groups", "drained"])
def test_the_functions_always_exist_so_the_host_file_parses(case: str, tmp_path: Path) -> None:
    if case == "stub":
        text = (EXAMPLE / "lbroute-stub.conf").read_text(encoding="utf-8")
    elif case == "no groups":
        text = _render([o for o in _objects() if o["kind"] != "ServiceGroup"])
        assert "protocol pipe" not in text
    else:
        text = _render(_objects(), Drain.WITHDRAW)
        assert "lbr_sg_web_v4 then {\n      " not in text  # matches nothing
    assert "function lbroute_export() {\n  return false;\n}" in text
    assert "function lbroute_route()" in text
    result = _host_parses(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_while_draining_the_host_sessions_get_the_deprefer_actions() -> None:
    text = _render(_objects(), Drain.DEPREFER)
    assert "bgp_community.add((65535, 0));" in text
    assert "lbr_sg_web_ebgp(" in text[text.index("function lbroute_export()") :]


# -- status: the host's sessions, read from birdc ------------------------------------

SHOW_PROTOCOLS_ALL = """\
BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
Global_10_0_0_1 BGP        ---        up     2026-12-06 06:40:01  Established
  Description:    Connection to BGP peer
  BGP state:          Established
    Neighbor address: 10.0.0.1
  Channel ipv4
    State:          UP

Mesh_10_1_0_1 BGP        ---        up     2026-12-06 06:40:00  Established
  BGP state:          Established

Node_10_0_0_2 BGP        ---        start  2026-12-06 06:40:00  Active  Socket: Connection refused
  BGP state:          Active

Node_static static1    master4    up     2026-12-06 06:40:00
lbr_bgp_edge BGP        ---        up     2026-12-06 06:40:02  Established
  BGP state:          Established

kernel1    Kernel     master4    up     2026-12-06 06:40:00
"""


def test_the_agent_reads_the_host_sessions_the_fragment_names() -> None:
    patterns = host_session_patterns(_render(_objects()))
    assert patterns == ("Global_*", "Node_*")
    found = {(s.name, s.state, s.since) for s in host_sessions(SHOW_PROTOCOLS_ALL, patterns)}
    assert found == {
        ("Global_10_0_0_1", "Established", "2026-12-06 06:40:01"),
        ("Node_10_0_0_2", "Active", "2026-12-06 06:40:00"),
    }
    assert host_session_patterns("# Generated by lbroute\n") == ()
