"""What a pass of the agent does again and what it reuses (issue 20): a Service or an
endpoint changes neither the model of the other objects nor the router configuration,
so a pass for one parses no other object and renders nothing; anything the
configuration depends on (an object, the drain phase, the templates, the router
settings) renders again. Counted through ``lbroute_render_seconds``, the histogram an
operator scrapes. The status writes of a burst of passes: tests/netns/test_agent_pace.py.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from lbroute.model import api
from nodeagent.agent import Agent
from nodeagent.drain import Trigger
from nodeagent.settings import AgentSettings, RouterSettings
from tests.test_desired import group, service
from tests.test_drain_restart import Quiet
from tests.test_weights import NODE, PEER


def _agent(tmp_path: Path) -> Agent:
    agent = Agent(AgentSettings(node="node-a", status_file=tmp_path / "status.json"), Quiet())
    agent._router = RouterSettings(
        router=api.Router.BIRD,
        mode=api.Mode.MANAGED,
        config_path=tmp_path / "bird.conf",
        socket_path=tmp_path / "bird.ctl",
        include_path=None,
        reload_command=(),
        templates_dir=None,
        interface="kube-lb0",
    )
    return agent


def _renders(agent: Agent) -> float:
    value = agent.metrics.registry.get_sample_value("lbroute_render_seconds_count")
    return value or 0.0


def _pass(agent: Agent, objects: tuple[dict[str, Any], ...]) -> str | None:
    model = agent._model(objects)
    text, _ = agent._render(model, None)
    return text


def test_a_pass_with_the_same_objects_reuses_the_model_and_renders_nothing(
    tmp_path: Path,
) -> None:
    agent = _agent(tmp_path)
    objects = (group("web", [{"cidr": "192.0.2.0/24"}]), PEER, NODE)
    first = _pass(agent, objects)
    assert first is not None and "lbr_sg_web_v4" in first and _renders(agent) == 1
    # The sources hand over the same dicts for unchanged objects (a new tuple each pass).
    assert agent._model(tuple(objects)) is agent._model(objects)
    assert _pass(agent, tuple(objects)) == first and _renders(agent) == 1


def test_whatever_the_configuration_depends_on_renders_again(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    web = group("web", [{"cidr": "192.0.2.0/24"}])
    _pass(agent, (web, PEER, NODE))
    edited = copy.deepcopy(web)
    edited["spec"]["bgp"] = {"communities": ["64512:7"]}
    text = _pass(agent, (edited, PEER, NODE))  # an object changed: parsed and rendered
    assert text is not None and "bgp_community.add((64512, 7));" in text
    assert _renders(agent) == 2
    agent.drainer.update((Trigger.COMMAND,), 600)  # the drain phase
    drained = _pass(agent, (edited, PEER, NODE))
    assert drained is not None and "(65535, 0)" in drained and _renders(agent) == 3
    agent._templates = None  # what a template change does
    _pass(agent, (edited, PEER, NODE))
    assert _renders(agent) == 4


def test_a_service_is_read_again_only_when_its_object_changed(tmp_path: Path) -> None:
    agent = _agent(tmp_path)

    def read(*objects: dict[str, Any]) -> tuple[list[str], list[str]]:
        fresh, gone = agent._read_services(*agent._objects.update(objects))
        return sorted(s.ref.name for s in fresh), sorted(s.ref.name for s in gone)

    web, api_ = service("web", "192.0.2.7"), service("api", "192.0.2.8")
    assert read(web, api_) == (["api", "web"], [])
    held = {id(s): s for s in agent._all_services()}
    assert read(web, api_) == ([], [])  # the same objects: nothing read again
    assert {id(s): s for s in agent._all_services()} == held
    moved = copy.deepcopy(web)
    moved["status"]["loadBalancer"]["ingress"] = [{"ip": "192.0.2.9"}]
    assert read(moved) == (["web"], ["api", "web"])  # api is gone, web is another object
    (after,) = agent._all_services()
    assert [str(a) for a in after.addresses] == ["192.0.2.9"]
    broken = copy.deepcopy(web)
    broken["status"]["loadBalancer"]["ingress"] = [{"ip": "not-an-ip"}]
    read(broken)
    problems = agent._service_problem_list()
    assert problems and "not-an-ip" in str(problems[0])
    read(broken)
    assert agent._service_problem_list() == problems  # kept with the object
    read()
    assert agent._service_problem_list() == []  # and gone with it


def test_a_pass_says_where_its_time_went(tmp_path: Path, caplog: Any) -> None:
    """lbroute_agent_pass_seconds by phase, from the stamps a pass takes; wait only when
    the source said when the change reached it; the stamps at debug level."""
    import logging

    agent = _agent(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="nodeagent.agent"):
        agent._timed(100.0, 100.25, 100.5, 100.75, 101.0, 101.5)
        agent._timed(0.0, 200.0, 200.001, 200.002, 200.003, 200.004)

    def total(phase: str) -> tuple[float | None, float | None]:
        get = agent.metrics.registry.get_sample_value
        labels = {"phase": phase}
        return (
            get("lbroute_agent_pass_seconds_count", labels),
            get("lbroute_agent_pass_seconds_sum", labels),
        )

    assert total("wait") == (1.0, 0.25), "the second pass had no stamp from its source"
    assert total("objects")[0] == 2.0 and total("objects")[1] == pytest.approx(0.251)
    assert total("netlink")[0] == 2.0 and total("rest")[1] == pytest.approx(0.501)
    assert "pass at 100.000000: started 100.250000 read 100.500000" in caplog.text
