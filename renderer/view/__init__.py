"""The view of one node: everything a template prints, computed from the model.

:func:`build_view` selects what applies to one node (its NodeAgent, the Peers whose
nodeSelector matches, the ServiceGroups those Peers carry), runs the per-node checks
(conflicting settings of one protocol, IS-IS asked of BIRD, ...) and computes every
name and sequence number, so templates only format. It is pure and deterministic: the
same model gives the same view, whatever order the objects came in.

The modules mirror ``templates/{bird,frr}/<protocol>.j2``: ``bgp``, ``ospf``, ``rip``,
``isis`` and ``bfd`` each build one protocol's part of the view; ``names`` computes the
names and sequence numbers they share (prefix sets, filters, route-maps); ``context``
is what ``node`` hands each of them; ``node`` holds :class:`NodeView`,
:func:`build_view` and :func:`select_agent`. A new protocol option touches one
protocol module and the templates that print it.
"""

from renderer.view.isis import system_id
from renderer.view.names import Drain, ident
from renderer.view.node import NodeView, build_view, select_agent

__all__ = ["Drain", "NodeView", "build_view", "ident", "select_agent", "system_id"]
