"""A lab in network namespaces: nodes running the agent and BIRD or FRR, and an
upstream router, all on one link. Used by the demo and the root-only tests.

Topology (every name gets a unique prefix, so labs never collide)::

    [node-a: eth0 10.0.0.11 fd00::11, kube-lb0]--+
    [node-b: eth0 10.0.0.12 fd00::12, kube-lb0]--+-- br0 [upstream: 10.0.0.1 fd00::1]

The upstream router (FRR or BIRD) accepts BGP from any node (AS 65000, nodes use AS
64512), runs OSPFv2/v3, RIP/RIPng and (FRR) IS-IS level 2 on br0, installs what it
learns into its kernel table with ECMP, and exports nothing. Its kernel table is the
"upstream view" the demo prints and the tests read.

Everything the lab starts is started by it, with pid files and sockets of its own,
and :meth:`Lab.stop` stops exactly that and deletes the namespaces, even after a
failure.

Modules: :mod:`~lbroute.lab.netns` (namespaces, veth pairs, a bridged LAN),
:mod:`~lbroute.lab.daemons` (FRR and BIRD instances, stopping by pid),
:mod:`~lbroute.lab.configs` (the upstream's and a node's fixed configurations),
:mod:`~lbroute.lab.topology` (the lab), :mod:`~lbroute.lab.ibgp` (a second upstream
that speaks iBGP with the nodes, and the BGP paths an upstream received, read alike
from FRR and BIRD).
"""

from lbroute.lab.configs import UPSTREAM_ASN, UPSTREAM_V4, UPSTREAM_V6
from lbroute.lab.daemons import FRR_BIN, BirdInstance, FrrInstance, alive, kill, vtysh_conf
from lbroute.lab.netns import Lan, Netns, run, veth
from lbroute.lab.topology import Lab, LabNode, NodeSpec, Route, agent_command

__all__ = [
    "FRR_BIN",
    "UPSTREAM_ASN",
    "UPSTREAM_V4",
    "UPSTREAM_V6",
    "BirdInstance",
    "FrrInstance",
    "Lab",
    "LabNode",
    "Lan",
    "Netns",
    "NodeSpec",
    "Route",
    "agent_command",
    "alive",
    "kill",
    "run",
    "veth",
    "vtysh_conf",
]
