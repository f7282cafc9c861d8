"""Which router the agent drives, and how: ``nodeagent.settings.decide_router``.

Issue 14: an agent in include mode writes a fragment of the host's own BIRD
configuration. Every way its NodeAgent can go away (deleted, its nodeSelector no
longer matching the node, turned invalid: each reaches the agent as "no NodeAgent
selects the node") keeps include mode, the same fragment file, and reports it; the
default (managed mode, which writes a whole configuration over the host's) is never
taken on its own. An explicit word (a NodeAgent that says managed, or --mode) changes
the mode. Default managed mode is marked as not chosen, which the BIRD driver reads as
"do not replace a configuration that includes other files".

Issue 24: a NodeAgent only chooses among what the agent's command line allows. A path
outside the --allow-path directories (or any path, when none is allowed), a reload
command not in --allow-reload-command, FRR in include mode, or include mode without a
fragment file is refused with a problem naming the NodeAgent, the field and what is
allowed; the agent keeps the settings it had, or drives no router when it had none.
What the command line names itself needs no allowing. The model refuses relative
paths and '.' or '..' parts, naming the field, and the CRD refuses the same.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from click.testing import CliRunner

from lbroute.cli import main
from lbroute.model import api
from lbroute.model.errors import InvalidObject, ObjectRef
from nodeagent.settings import (
    AgentSettings,
    Allowed,
    RouterDecision,
    RouterOverrides,
    RouterSettings,
    decide_router,
)
from tests.test_crds import crd_errors

FRAGMENT = "/etc/bird/lbroute/lbroute.conf"
INCLUDE = {"router": "bird", "mode": "include", "includePath": FRAGMENT}
ALLOWED = Allowed(
    paths=(PurePosixPath("/etc/bird/lbroute"), PurePosixPath("/etc/lbroute/templates")),
    reload_commands=(("birdcl", "-s", "/var/run/calico/bird.ctl", "configure"),),
)


def node_agent(spec: dict[str, Any], name: str = "cni-nodes") -> api.NodeAgent:
    parsed = api.parse_object(
        {
            "apiVersion": api.API_VERSION,
            "kind": "NodeAgent",
            "metadata": {"name": name, "namespace": "lbroute"},
            "spec": spec,
        }
    )
    assert isinstance(parsed, api.NodeAgent)
    return parsed


def agent_settings(
    overrides: RouterOverrides | None = None, allowed: Allowed = ALLOWED
) -> AgentSettings:
    return AgentSettings(node="node-a", overrides=overrides or RouterOverrides(), allowed=allowed)


def decide(
    agent: api.NodeAgent | None,
    current: RouterSettings | None = None,
    settings: AgentSettings | None = None,
) -> RouterDecision:
    return decide_router(settings or agent_settings(), agent, current)


def in_include_mode(settings: AgentSettings | None = None) -> RouterSettings:
    first = decide(node_agent(INCLUDE), settings=settings)
    assert first.settings is not None and not first.problems and not first.kept
    assert first.settings.mode is api.Mode.INCLUDE
    return first.settings


def problems(decision: RouterDecision) -> list[str]:
    return [str(p) for p in decision.problems]


# -- include mode never falls back to managed -----------------------------------------


def test_include_mode_takes_the_fragment_and_reloads_bird_itself() -> None:
    rs = in_include_mode()
    assert rs.include_path == Path(FRAGMENT)
    assert rs.reload_command == ()  # birdc configure: the file BIRD runs
    assert rs.mode_chosen


@pytest.mark.parametrize(
    "how",
    [
        "NodeAgent deleted",
        "its nodeSelector stops matching the node",
        "it turns invalid",
        "another NodeAgent with a selector for other nodes is all that is left",
    ],
)
def test_losing_the_node_agent_keeps_include_mode_and_the_fragment(how: str) -> None:
    """However the NodeAgent goes, the agent sees no NodeAgent for its node (the view's
    select_agent skips what does not match; the model drops what is invalid)."""
    current = in_include_mode()
    decision = decide(None, current)
    assert decision.settings == current
    assert decision.kept
    [problem] = decision.problems
    assert problem.ref == ObjectRef(kind="Node", namespace="", name="node-a")
    text = str(problem)
    assert "no valid NodeAgent selects this node" in text
    assert f"keeps the last fragment in {FRAGMENT!r}" in text
    assert "a NodeAgent with mode managed, or --mode managed" in text


def test_it_stays_so_pass_after_pass_and_comes_back_with_a_node_agent() -> None:
    current = in_include_mode()
    for _ in range(3):
        decision = decide(None, current)
        assert decision.settings is current and decision.kept
    back = decide(node_agent(INCLUDE), current)
    assert back.settings == current and not back.kept and not back.problems


def test_an_explicit_managed_node_agent_changes_the_mode() -> None:
    current = in_include_mode()
    decision = decide(node_agent({"router": "bird", "mode": "managed"}), current)
    assert decision.settings is not None and not decision.kept and not decision.problems
    assert decision.settings.mode is api.Mode.MANAGED and decision.settings.mode_chosen


def test_a_node_agent_without_mode_is_managed_by_its_word() -> None:
    """A NodeAgent that selects the node speaks for it; the CRD defaults mode to
    managed, so the API never serves one without a mode."""
    decision = decide(node_agent({"router": "bird"}), in_include_mode())
    assert decision.settings is not None and decision.settings.mode is api.Mode.MANAGED


def test_mode_on_the_command_line_changes_the_mode() -> None:
    settings = agent_settings(RouterOverrides(mode=api.Mode.MANAGED))
    current = in_include_mode(agent_settings())
    decision = decide(None, current, settings)
    assert decision.settings is not None and not decision.kept
    assert decision.settings.mode is api.Mode.MANAGED and decision.settings.mode_chosen


def test_include_mode_on_the_command_line_survives_the_node_agent() -> None:
    settings = agent_settings(
        RouterOverrides(mode=api.Mode.INCLUDE, include_path=Path("/etc/bird/lbroute.conf"))
    )
    decision = decide(None, None, settings)
    assert decision.settings is not None and not decision.problems
    assert decision.settings.mode is api.Mode.INCLUDE
    assert decision.settings.include_path == Path("/etc/bird/lbroute.conf")


def test_a_fresh_agent_without_node_agent_is_managed_by_default_not_by_choice() -> None:
    decision = decide(None)
    assert decision.settings is not None and not decision.problems
    assert decision.settings.mode is api.Mode.MANAGED
    assert not decision.settings.mode_chosen
    assert decision.settings.config_path == Path("/etc/bird/bird.conf")


def test_a_managed_agent_that_loses_its_node_agent_goes_on_with_the_defaults() -> None:
    """Managed to managed changes no ownership: the agent owned the file already."""
    current = decide(node_agent({"router": "bird", "localASN": 65001})).settings
    decision = decide(None, current)
    assert decision.settings is not None and not decision.kept and not decision.problems
    assert decision.settings.mode is api.Mode.MANAGED


# -- FRR has no include mode ----------------------------------------------------------


def test_frr_include_mode_is_refused_and_the_router_left_alone() -> None:
    frr = node_agent({**INCLUDE, "router": "frr"})
    decision = decide(frr)
    assert decision.settings is None and not decision.kept
    [problem] = decision.problems
    assert problem.ref == frr.ref and problem.path == "spec.mode"
    assert "include mode is for BIRD 2: FRR has no include directive" in problem.message
    assert "the agent drives no router until this is fixed" in problem.message


def test_frr_include_mode_keeps_what_runs() -> None:
    current = in_include_mode()
    decision = decide(node_agent({**INCLUDE, "router": "frr"}), current)
    assert decision.settings is current and decision.kept
    assert "keeps its previous router settings (bird include)" in problems(decision)[0]


def test_router_frr_on_the_command_line_with_an_include_node_agent_is_refused() -> None:
    settings = agent_settings(RouterOverrides(router=api.Router.FRR))
    decision = decide(node_agent(INCLUDE), None, settings)
    assert decision.settings is None
    assert [p.path for p in decision.problems] == ["spec.mode"]


def test_include_mode_without_a_fragment_file_is_refused() -> None:
    settings = agent_settings(RouterOverrides(mode=api.Mode.INCLUDE))
    decision = decide(None, None, settings)
    assert decision.settings is None
    [problem] = decision.problems
    assert problem.ref.kind == "Node"
    assert "needs the file the fragment goes to" in problem.message
    assert "--include-path" in problem.message


# -- what a NodeAgent may choose ------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({**INCLUDE, "includePath": "/etc/bird/bird.conf"}, "spec.includePath"),
        ({"router": "bird", "configPath": "/etc/shadow"}, "spec.configPath"),
        ({"router": "bird", "socketPath": "/run/containerd/containerd.sock"}, "spec.socketPath"),
        ({"router": "bird", "templatesDir": "/var/run/secrets"}, "spec.templatesDir"),
        ({"router": "bird", "templatesDir": "/etc/bird/lbroute-other"}, "spec.templatesDir"),
    ],
)
def test_a_path_outside_the_allowed_directories_is_refused(
    spec: dict[str, Any], field: str
) -> None:
    agent = node_agent(spec)
    current = in_include_mode()
    decision = decide(agent, current)
    assert decision.settings is current and decision.kept
    [problem] = decision.problems
    assert (problem.ref, problem.path) == (agent.ref, field)
    assert "is not allowed: a NodeAgent may only name paths under" in problem.message
    assert "'/etc/bird/lbroute', '/etc/lbroute/templates' (the agent's --allow-path)" in str(
        problem
    )
    assert "keeps its previous router settings" in problem.message


def test_without_allowed_paths_a_node_agent_names_none() -> None:
    agent = node_agent(INCLUDE)
    decision = decide(agent, None, agent_settings(allowed=Allowed()))
    assert decision.settings is None
    [problem] = decision.problems
    assert problem.path == "spec.includePath"
    assert "allows a NodeAgent no path (--allow-path DIR" in problem.message


def test_paths_under_the_allowed_directories_are_taken() -> None:
    agent = node_agent(
        {
            "router": "bird",
            "configPath": "/etc/bird/lbroute/bird.conf",
            "socketPath": "/etc/bird/lbroute/bird.ctl",
            "templatesDir": "/etc/lbroute/templates",
        }
    )
    decision = decide(agent)
    assert not decision.problems and decision.settings is not None
    assert decision.settings.config_path == Path("/etc/bird/lbroute/bird.conf")
    assert decision.settings.templates_dir == Path("/etc/lbroute/templates")


def test_what_the_command_line_names_needs_no_allowing() -> None:
    """The command line overrides the NodeAgent's paths: those are not used, so not
    refused; the command line's own are the administrator's."""
    settings = agent_settings(
        RouterOverrides(
            config_path=Path("/srv/bird.conf"),
            socket_path=Path("/srv/bird.ctl"),
            templates_dir=Path("/srv/templates"),
        ),
        allowed=Allowed(),
    )
    agent = node_agent(
        {"router": "bird", "configPath": "/etc/shadow", "templatesDir": "/var/run/secrets"}
    )
    decision = decide(agent, None, settings)
    assert not decision.problems and decision.settings is not None
    assert decision.settings.config_path == Path("/srv/bird.conf")
    assert decision.settings.templates_dir == Path("/srv/templates")


def test_unused_fields_are_not_checked() -> None:
    """configPath in include mode, includePath and reloadCommand in managed mode."""
    managed = node_agent(
        {"router": "bird", "includePath": "/elsewhere/x.conf", "reloadCommand": ["reboot"]}
    )
    assert not decide(managed).problems
    include = node_agent({**INCLUDE, "configPath": "/elsewhere/bird.conf"})
    assert not decide(include).problems


def test_a_reload_command_not_allowed_is_refused_and_never_runs() -> None:
    agent = node_agent({**INCLUDE, "reloadCommand": ["/bin/sh", "-c", "reboot"]})
    current = in_include_mode()
    decision = decide(agent, current)
    assert decision.settings is current and decision.kept
    [problem] = decision.problems
    assert (problem.ref, problem.path) == (agent.ref, "spec.reloadCommand")
    assert "'/bin/sh -c reboot' is not allowed: a NodeAgent may only choose one of " in (
        problem.message
    )
    assert "'birdcl -s /var/run/calico/bird.ctl configure'" in problem.message


def test_an_allowed_reload_command_is_taken() -> None:
    argv = ["birdcl", "-s", "/var/run/calico/bird.ctl", "configure"]
    decision = decide(node_agent({**INCLUDE, "reloadCommand": argv}))
    assert decision.settings is not None and not decision.problems
    assert decision.settings.reload_command == tuple(argv)


def test_without_allowed_commands_a_node_agent_chooses_none() -> None:
    agent = node_agent({**INCLUDE, "reloadCommand": ["birdc", "configure"]})
    decision = decide(agent, None, agent_settings(allowed=replace(ALLOWED, reload_commands=())))
    assert decision.settings is None
    [problem] = decision.problems
    assert "allows a NodeAgent no reload command (--allow-reload-command)" in problem.message


def test_every_refused_field_is_reported_at_once() -> None:
    agent = node_agent(
        {
            **INCLUDE,
            "includePath": "/tmp/x.conf",
            "templatesDir": "/tmp/t",
            "reloadCommand": ["reboot"],
        }
    )
    decision = decide(agent, None, agent_settings(allowed=Allowed()))
    assert sorted(p.path for p in decision.problems) == [
        "spec.includePath",
        "spec.reloadCommand",
        "spec.templatesDir",
    ]


def test_allowed_paths_compare_by_parts() -> None:
    allowed = Allowed(paths=(PurePosixPath("/etc/bird"),))
    assert allowed.allows_path("/etc/bird")
    assert allowed.allows_path("/etc/bird/lbroute/x.conf")
    assert not allowed.allows_path("/etc/birdx/x.conf")
    assert not allowed.allows_path("/etc")


# -- the model refuses paths that would get round the check ---------------------------


@pytest.mark.parametrize("field", ["includePath", "configPath", "socketPath", "templatesDir"])
@pytest.mark.parametrize(
    "value",
    ["/etc/bird/lbroute/../../shadow", "/etc/bird/lbroute/..", "/etc/./bird", "etc/bird"],
)
def test_relative_paths_and_dot_parts_are_refused_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(InvalidObject) as caught:
        node_agent({**INCLUDE, field: value})
    [problem] = caught.value.problems
    assert problem.path == f"spec.{field}"
    assert repr(value) in problem.message
    assert "an absolute path" in problem.message


@pytest.mark.parametrize("field", ["includePath", "configPath", "socketPath", "templatesDir"])
@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("/etc/bird/lbroute/../../shadow", False),
        ("/etc/bird/lbroute/..", False),
        ("/etc/./bird", False),
        ("/etc/bird/.", False),
        ("/etc/bird/..lbroute/.x", True),
    ],
)
def test_the_crd_agrees(field: str, value: str, valid: bool) -> None:
    obj = {
        "apiVersion": api.API_VERSION,
        "kind": "NodeAgent",
        "metadata": {"name": "cni-nodes", "namespace": "lbroute"},
        "spec": {**INCLUDE, field: value},
    }
    paths = [path for path, _ in crd_errors("NodeAgent", obj)]
    assert paths == ([] if valid else [f"spec.{field}"])
    model = api.load([obj])
    assert bool(model.node_agents) is valid


# -- the command line -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--router", "frr", "--mode", "include"], "include mode is for BIRD 2"),
        (["--allow-path", "etc/bird"], "'etc/bird' is not an absolute path without"),
        (["--allow-path", "/etc/bird/../shadow"], "is not an absolute path without '.'"),
        (["--include-path", "lbroute.conf"], "'lbroute.conf' is not an absolute path"),
        (["--allow-reload-command", "birdc 'configure"], "No closing quotation"),
        (["--allow-reload-command", " "], "an empty command"),
    ],
)
def test_the_agent_refuses_what_it_cannot_allow(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["agent", "--node", "node-a", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
