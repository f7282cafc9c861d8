"""How one node agent runs, and which router it drives.

:class:`AgentSettings` is what the command line gives (``lbroute agent``), in groups:
what it says about the router over the node's NodeAgent (:class:`RouterOverrides`),
what a NodeAgent may choose at all (:class:`Allowed`), when configurations are applied
(:class:`ApplyTiming`, nodeagent.scheduler) and how often the router is checked
(:class:`RouterChecks`). What the command line leaves unset comes from the NodeAgent
object that selects the node; :func:`decide_router` merges the two into the
:class:`RouterSettings` the agent drives its router with. That is decided again on every
pass, since the NodeAgent may change: when the settings differ, the agent starts over
with a new driver.

Two rules keep the node's router safe from what a NodeAgent says, or stops saying:

- The command line is the administrator's; a NodeAgent is whoever can write one. So a
  NodeAgent only chooses among what the command line allowed (``--allow-path``,
  ``--allow-reload-command``): a path outside those directories, a reload command not
  in that list, or include mode for FRR is refused with a problem naming the field and
  what is allowed, and the agent keeps the settings it had (issue 24).
- An agent in include mode writes a fragment of the host's own BIRD configuration. If
  its NodeAgent goes away (deleted, its selector stops matching, or invalid), the
  default would be managed mode, which writes a whole configuration over the host's;
  so the agent stays in include mode with the last fragment and reports it. Only an
  explicit word (a NodeAgent that selects the node, or ``--mode``) changes the mode
  (issue 14).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from lbroute.model import api
from lbroute.model.errors import ObjectRef, Problem, Severity, quote
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
    include_path: Path | None = None
    """Overrides NodeAgent.spec.includePath: the file the fragment goes to (include mode)."""


@dataclass(frozen=True, kw_only=True)
class Allowed:
    """What a NodeAgent may choose, as the agent's command line allows it. What the
    command line itself names (:class:`RouterOverrides`) needs no allowing."""

    paths: tuple[PurePosixPath, ...] = ()
    """Directories under which a NodeAgent's configPath, socketPath, includePath and
    templatesDir may lie (``--allow-path``)."""
    reload_commands: tuple[tuple[str, ...], ...] = ()
    """The commands a NodeAgent's reloadCommand may be, argument for argument
    (``--allow-reload-command``)."""

    def allows_path(self, path: str) -> bool:
        """``path`` is one of the directories or lies under one. The model has made it
        absolute, without ``.`` or ``..`` parts, so the comparison is by parts."""
        p = PurePosixPath(path)
        return any(p == d or d in p.parents for d in self.paths)

    def allows_command(self, argv: tuple[str, ...]) -> bool:
        return argv in self.reload_commands


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
    allowed: Allowed = field(default_factory=Allowed)
    """What a NodeAgent may choose: paths and reload commands."""
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
    lease_dir: Path | None = None
    """Manifest-directory mode: the directory whose files are the agents' membership
    Leases for local addresses (``--lease-dir``; shared by the agents of one host).
    None: no local addresses in that mode (with the API, the Leases live there)."""
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
    """The command that reloads the router in include mode (argument list, no shell);
    empty: ``birdc configure``, which reloads the file BIRD runs."""
    templates_dir: Path | None
    """The user's templates, overriding the built-in ones by name (watched)."""
    interface: str
    """The dummy interface the Service addresses go on (kube-lb0)."""
    mode_chosen: bool = True
    """A NodeAgent that selects the node, or ``--mode``, said the mode. False: managed
    mode by default, which does not replace a BIRD configuration that includes other
    files (that is the host's own, and lbroute only ever wrote a fragment of it)."""


PATH_QUOTE = 256
"""How much of a path or command a message quotes: a NodeAgent's paths are at most 256
characters (the model's pattern), and cutting them would hide what was refused."""

DEFAULT_PATHS = {
    api.Router.BIRD: (Path("/etc/bird/bird.conf"), Path("/run/bird/bird.ctl")),
    api.Router.FRR: (Path("/etc/frr/frr.conf"), Path("/var/run/frr")),
}
"""Configuration file and control socket (FRR: socket directory) of each router, when
neither the command line nor the NodeAgent names them."""


@dataclass(frozen=True, kw_only=True)
class RouterDecision:
    """What :func:`decide_router` found for one pass."""

    settings: RouterSettings | None
    """The settings to drive the router with; None: no router until the problems are
    fixed (nothing was ever allowed to run)."""
    kept: bool = False
    """``settings`` are the ones in use before, kept because the NodeAgent went away or
    asks for what is not allowed: the agent renders nothing new and the router keeps the
    configuration it runs (Service addresses are still programmed)."""
    problems: tuple[Problem, ...] = ()
    """Why something was refused or kept, for the status, NodeState and Events."""


def decide_router(
    settings: AgentSettings, agent: api.NodeAgent | None, current: RouterSettings | None
) -> RouterDecision:
    """The router settings for this pass: the command line's overrides over the NodeAgent
    ``agent`` that selects the node (None: there is none, or it is invalid), given the
    ``current`` ones (None before the first pass)."""
    over = settings.overrides
    lost = agent is None and over.mode is None
    if lost and current is not None and current.mode is api.Mode.INCLUDE:
        return RouterDecision(
            settings=current, kept=True, problems=(_lost(settings.node, current),)
        )
    wanted = _merge(settings, agent)
    problems = _refusals(settings, agent, wanted)
    if not problems:
        return RouterDecision(settings=wanted)
    if current is None:
        then = "the agent drives no router until this is fixed"
    else:
        then = (
            f"the agent keeps its previous router settings ({current.router} "
            f"{current.mode}) and the router the configuration it runs"
        )
    return RouterDecision(
        settings=current,
        kept=current is not None,
        problems=tuple(
            Problem(severity=p.severity, ref=p.ref, path=p.path, message=f"{p.message}; {then}")
            for p in problems
        ),
    )


def _merge(settings: AgentSettings, agent: api.NodeAgent | None) -> RouterSettings:
    spec = agent or api.NodeAgent(ref=ObjectRef(kind=NODE_AGENT, namespace="", name=""))
    over = settings.overrides
    router = over.router or spec.router
    default_config, default_socket = DEFAULT_PATHS[router]
    templates = over.templates_dir or (Path(spec.templates_dir) if spec.templates_dir else None)
    include = over.include_path or (Path(spec.include_path) if spec.include_path else None)
    return RouterSettings(
        router=router,
        mode=over.mode or spec.mode,
        config_path=over.config_path or Path(spec.config_path or default_config),
        socket_path=over.socket_path or Path(spec.socket_path or default_socket),
        include_path=include,
        reload_command=spec.reload_command,
        templates_dir=templates,
        interface=spec.interface,
        mode_chosen=agent is not None or over.mode is not None,
    )


def _refusals(
    settings: AgentSettings, agent: api.NodeAgent | None, wanted: RouterSettings
) -> list[Problem]:
    """What in ``wanted`` may not be used: a NodeAgent's path or command the command
    line does not allow, FRR in include mode, include mode without a fragment file."""
    over, allowed = settings.overrides, settings.allowed
    node_ref = ObjectRef(kind="Node", namespace="", name=settings.node)
    include = wanted.mode is api.Mode.INCLUDE
    problems: list[Problem] = []

    def refuse(path: str, message: str) -> None:
        ref = agent.ref if agent is not None and path else node_ref
        problems.append(Problem(severity=Severity.ERROR, ref=ref, path=path, message=message))

    if wanted.router is api.Router.FRR and include:
        refuse(
            "spec.mode" if agent is not None and over.mode is None else "",
            "include mode is for BIRD 2: FRR has no include directive, and lbroute never "
            "writes into a configuration of FRR's it does not own; use mode managed "
            "(lbroute then owns FRR's whole configuration) or router bird",
        )
    if include and wanted.include_path is None:
        refuse(
            "spec.includePath" if agent is not None else "",
            "include mode needs the file the fragment goes to: spec.includePath on the "
            "node's NodeAgent, or --include-path",
        )
    if agent is None:
        return problems
    used = {
        "spec.templatesDir": None if over.templates_dir else agent.templates_dir,
        "spec.configPath": None if over.config_path or include else agent.config_path,
        "spec.socketPath": None if over.socket_path else agent.socket_path,
        "spec.includePath": None if over.include_path or not include else agent.include_path,
    }
    for path, value in used.items():
        if value is not None and not allowed.allows_path(value):
            refuse(path, f"{quote(value, PATH_QUOTE)} is not allowed: {_allowed_paths(allowed)}")
    command = agent.reload_command
    if include and command and not allowed.allows_command(command):
        refuse(
            "spec.reloadCommand",
            f"{quote(' '.join(command), PATH_QUOTE)} is not allowed: {_allowed_commands(allowed)}",
        )
    return problems


def _allowed_paths(allowed: Allowed) -> str:
    if not allowed.paths:
        return (
            "the agent's command line allows a NodeAgent no path (--allow-path DIR allows "
            "the paths under DIR)"
        )
    dirs = ", ".join(quote(str(d), PATH_QUOTE) for d in allowed.paths)
    return f"a NodeAgent may only name paths under {dirs} (the agent's --allow-path)"


def _allowed_commands(allowed: Allowed) -> str:
    if not allowed.reload_commands:
        return (
            "the agent's command line allows a NodeAgent no reload command "
            "(--allow-reload-command); without one the agent reloads BIRD with birdc "
            "configure, which reloads the file BIRD runs"
        )
    commands = ", ".join(quote(" ".join(c), PATH_QUOTE) for c in allowed.reload_commands)
    return f"a NodeAgent may only choose one of {commands} (the agent's --allow-reload-command)"


def _lost(node: str, current: RouterSettings) -> Problem:
    return Problem(
        severity=Severity.ERROR,
        ref=ObjectRef(kind="Node", namespace="", name=node),
        path="",
        message=(
            "no valid NodeAgent selects this node any more (deleted, its nodeSelector no "
            "longer matches, or invalid): the agent stays in include mode and keeps the "
            f"last fragment in {quote(str(current.include_path), PATH_QUOTE)}, so the host's BIRD "
            "configuration stays the host's; ServiceGroup and Peer changes reach BIRD "
            "again once a NodeAgent selects the node. Managed mode, where lbroute owns "
            "BIRD's whole configuration, takes an explicit word: a NodeAgent with mode "
            "managed, or --mode managed"
        ),
    )
