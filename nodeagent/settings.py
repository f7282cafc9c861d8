"""How one node agent runs, and which router it drives.

:class:`AgentSettings` is what the command line gives (``lbroute agent``), in groups:
what it says about the router over the node's NodeAgent (:class:`RouterOverrides`),
when configurations are applied (:class:`ApplyTiming`, nodeagent.scheduler) and how
often the router is checked (:class:`RouterChecks`). What the command line leaves unset
comes from the NodeAgent object that selects the node; :func:`router_settings` merges
the two into the :class:`RouterSettings` the agent drives its router with. Those are
computed again on every pass, since the NodeAgent may change: when they differ, the
agent starts over with a new driver.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from lbroute.model import api
from lbroute.model.errors import ObjectRef
from lbroute.model.vocabulary import NODE_AGENT


@dataclass(frozen=True, kw_only=True)
class RouterOverrides:
    """What the command line says about the router; None leaves it to the NodeAgent."""

    router: api.Router | None = None
    """Overrides NodeAgent.spec.router."""
    mode: api.Mode | None = None
    """Overrides NodeAgent.spec.mode."""
    config_path: Path | None = None
    """Router configuration file (managed mode); default per router (:data:`DEFAULT_PATHS`)."""
    socket_path: Path | None = None
    """BIRD control socket, or FRR vty socket directory."""
    templates_dir: Path | None = None
    """Overrides NodeAgent.spec.templatesDir."""


@dataclass(frozen=True, kw_only=True)
class ApplyTiming:
    """When a new router configuration is applied, and when a failed apply is retried."""

    settle: float = 0.2
    """Seconds without a newer configuration before the newest is applied."""
    max_delay: float = 2.0
    """Seconds after the first change of a burst by which its newest configuration is
    applied, however long the burst goes on."""
    retry_backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    """Seconds before each retry of an apply that failed for another reason than the
    router's parser rejecting the configuration; after the last, wait for a change."""


@dataclass(frozen=True, kw_only=True)
class RouterChecks:
    """How often the agent asks its router how it is."""

    interval: float = 1.0
    """Seconds between checks that the router daemon answers and is the instance the
    configuration was applied to (a restarted one gets it again)."""
    sessions_every: int = 5
    """Poll the router's sessions every this many checks."""


@dataclass(frozen=True, kw_only=True)
class AgentSettings:
    """How one agent runs. Unset router fields come from the node's NodeAgent object."""

    node: str
    """Name of the Node this agent runs on."""
    overrides: RouterOverrides = field(default_factory=RouterOverrides)
    """What the command line says about the router, over the NodeAgent."""
    default_class: bool = False
    """Also announce LoadBalancer Services that set no loadBalancerClass."""
    status_file: Path = Path("/run/lbroute/status.json")
    """Where the status document goes (what ``lbroute status`` prints)."""
    hostname: str = field(default_factory=socket.gethostname)
    """The host's name as the router daemon sees it (FRR prints it in its running
    configuration)."""
    apply: ApplyTiming = field(default_factory=ApplyTiming)
    """When configurations are applied and retried."""
    checks: RouterChecks = field(default_factory=RouterChecks)
    """How often the router is checked."""
    isis_pace: float = 0.25
    """Addresses that only IS-IS announces are programmed at most this often (see
    :class:`nodeagent.pacing.Pacer`)."""


@dataclass(frozen=True, kw_only=True)
class RouterSettings:
    """Everything that decides which router the agent drives, and how."""

    router: api.Router
    """BIRD or FRR."""
    mode: api.Mode
    """managed (the whole configuration) or include (a fragment of the host's own)."""
    config_path: Path
    """The router's configuration file (managed mode: the one the agent writes)."""
    socket_path: Path
    """BIRD control socket, or FRR vty socket directory."""
    include_path: Path | None
    """The file the fragment is written to (include mode)."""
    reload_command: tuple[str, ...]
    """The command that reloads the router in include mode (argument list, no shell)."""
    templates_dir: Path | None
    """The user's templates, overriding the built-in ones by name (watched)."""
    interface: str
    """The dummy interface the Service addresses go on (kube-lb0)."""


DEFAULT_PATHS = {
    api.Router.BIRD: (Path("/etc/bird/bird.conf"), Path("/run/bird/bird.ctl")),
    api.Router.FRR: (Path("/etc/frr/frr.conf"), Path("/var/run/frr")),
}
"""Configuration file and control socket (FRR: socket directory) of each router, when
neither the command line nor the NodeAgent names them."""


def router_settings(settings: AgentSettings, agent: api.NodeAgent | None) -> RouterSettings:
    """The command line's overrides over the NodeAgent ``agent`` (None: its defaults)."""
    spec = agent or api.NodeAgent(ref=ObjectRef(kind=NODE_AGENT, namespace="", name=""))
    over = settings.overrides
    router = over.router or spec.router
    default_config, default_socket = DEFAULT_PATHS[router]
    templates = over.templates_dir or (Path(spec.templates_dir) if spec.templates_dir else None)
    return RouterSettings(
        router=router,
        mode=over.mode or spec.mode,
        config_path=over.config_path or Path(spec.config_path or default_config),
        socket_path=over.socket_path or Path(spec.socket_path or default_socket),
        include_path=Path(spec.include_path) if spec.include_path else None,
        reload_command=spec.reload_command,
        templates_dir=templates,
        interface=spec.interface,
    )
