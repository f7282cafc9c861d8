"""A burst of passes writes the status once it is over (issue 20), checked with a real
agent loop in a throw-away namespace (the agent programs kube-lb0 there; no router
daemon runs, so its applies fail, which changes nothing here).

Ten snapshots 30 ms apart, as a burst of Service changes brings, each its own pass: at
most half as many status writes as passes, and the status written last is the last
pass's.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from tests.netns.lab import Netns

RUN = textwrap.dedent(
    """
    import json, sys, threading, time
    from pathlib import Path
    from lbroute.kube.directory import Snapshot
    from lbroute.model import api
    from nodeagent import agent as agent_module
    from nodeagent.agent import Agent
    from nodeagent.settings import AgentSettings, RouterOverrides

    work = Path(sys.argv[1])
    writes = []
    real = agent_module.write_atomic

    def counting(path, text, **kwargs):
        if path.name == "status.json":
            writes.append(text)
        real(path, text, **kwargs)

    agent_module.write_atomic = counting

    def group(i):
        return {"apiVersion": api.API_VERSION, "kind": "ServiceGroup",
                "metadata": {"name": f"g{i}", "namespace": "lbroute"},
                "spec": {"pools": [{"cidr": f"192.0.{i}.0/24"}], "bgp": {"med": -1}}}

    class Burst:
        def snapshots(self, stop):
            for i in range(10):
                yield Snapshot(objects=(group(i),))
                time.sleep(0.03)  # each its own pass
            stop.wait()

    overrides = RouterOverrides(router=api.Router.BIRD, mode=api.Mode.MANAGED,
                                config_path=work / "bird.conf", socket_path=work / "bird.ctl")
    settings = AgentSettings(node="node-a", status_file=work / "status.json",
                             overrides=overrides)
    agent = Agent(settings, Burst())
    passes = []
    process = agent.process
    agent.process = lambda snapshot: (passes.append(1), process(snapshot))
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,))
    runner.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (writes and "g9" in writes[-1]):
        time.sleep(0.02)
    stop.set()
    runner.join(10)
    print(json.dumps({"writes": len(writes), "passes": len(passes),
                      "last": writes[-1] if writes else ""}))
    """
)


def test_a_burst_of_passes_writes_the_status_once_it_is_over(netns: Netns, tmp_path: Path) -> None:
    netns.add_ifb("kube-lb0")
    out = json.loads(netns.exec(sys.executable, "-c", RUN, str(tmp_path)).stdout)
    assert "g9" in out["last"], "the last pass's status is written"
    assert out["passes"] >= 8, out
    assert 1 <= out["writes"] <= out["passes"] // 2, out
