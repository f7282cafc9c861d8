"""What each protocol's view builder is handed for one node, and how it reports problems.

:func:`~renderer.view.node.build_view` selects the node's NodeAgent, ServiceGroups and
Peers, then hands every protocol module (bgp, ospf, rip, isis) the same
:class:`Context`: the groups each Peer carries, the router's :class:`~.names.Names`,
the node's BFD profiles, whether fast convergence is on, and the list where a builder
reports the objects it leaves out (:func:`problem`). A protocol's builder reads nothing
else, so a new protocol option touches one view module and the templates that print it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from lbroute.model.api import NodeAgent, RipTimers
from lbroute.model.errors import ObjectRef, Problem, Severity
from renderer.view.bfd import BfdProfiles
from renderer.view.names import Drain, GroupView, Names


@dataclass(frozen=True, kw_only=True)
class FastConvergence:
    """Timers rendered when the NodeAgent asks for fast convergence (the default)."""

    bgp_connect_retry: int = 5
    bgp_advertisement_interval: int = 0
    ospf_spf_delay_ms: int = 0
    ospf_spf_hold_ms: int = 50
    ospf_spf_max_hold_ms: int = 1000
    ospf_lsa_min_interval_ms: int = 0
    isis_lsp_gen_interval: int = 1
    rip_timers: RipTimers = field(
        default_factory=lambda: RipTimers(update=5, timeout=30, garbage=20)
    )


FAST = FastConvergence()


@dataclass(frozen=True, kw_only=True)
class Context:
    agent: NodeAgent
    """The NodeAgent that configures the node (or the defaults when none does)."""
    router_id: ipaddress.IPv4Address
    names: Names
    carried: Mapping[ObjectRef, tuple[GroupView, ...]]
    """The groups each Peer applying to the node carries."""
    fast_convergence: bool
    bfd: BfdProfiles
    problems: list[Problem]
    """Where builders report the objects they leave out, in the order found."""
    drain: Drain = Drain.NONE
    """Where the node is in a drain; the NodeAgent's ``drain`` says how BGP de-prefers."""

    def drain_metric(self, largest: int) -> int | None:
        """An IGP's metric for every exported route: ``largest`` while de-preferring."""
        return largest if self.drain is Drain.DEPREFER else None

    @property
    def withdrawn(self) -> bool:
        return self.drain is Drain.WITHDRAW


def problem(ref: ObjectRef, path: str, message: str, *, warning: bool = False) -> Problem:
    severity = Severity.WARNING if warning else Severity.ERROR
    return Problem(severity=severity, ref=ref, path=path, message=message)
