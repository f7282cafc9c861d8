"""The ``lbroute`` command: a thin click group; each command hands off to a library.

Exit codes: 0 ok, 1 invalid input or an invalid configuration (a message, never a
traceback), 2 usage.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from lbroute import __version__
from lbroute.model import api
from lbroute.model.errors import LbrouteError, Problem, Severity, quote
from lbroute.model.fields import NAME_RE
from lbroute.model.manifests import read_manifests
from renderer.render import render_view
from renderer.templating import load_template_set
from renderer.view import NodeView, build_view, select_agent

F = TypeVar("F", bound=Callable[..., Any])


def _kube_options(kubeconfig_help: str, namespace_help: str) -> Callable[[F], F]:
    """--kubeconfig, --context and --namespace, as every command that talks to the API
    takes them."""

    def decorate(command: F) -> F:
        for option in reversed(
            (
                click.option(
                    "--kubeconfig",
                    type=click.Path(path_type=Path, dir_okay=False),
                    help=kubeconfig_help,
                ),
                click.option(
                    "--context",
                    "kube_context",
                    help="Kubeconfig context (default: the current one).",
                ),
                click.option(
                    "--namespace",
                    envvar="POD_NAMESPACE",
                    default="lbroute",
                    show_default=True,
                    help=namespace_help,
                ),
            )
        ):
            command = option(command)
        return command

    return decorate


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": self.formatTime(record),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def _setup_logging(fmt: str, verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)


@click.group(
    context_settings={"auto_envvar_prefix": "LBROUTE", "help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="lbroute")
@click.option(
    "--log-format",
    type=click.Choice(["plain", "json"]),
    default="plain",
    show_default=True,
    help="Format of log lines on stderr.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(log_format: str, verbose: int) -> None:
    """lbroute: LoadBalancer Services on bare metal, announced by BIRD 2 or FRR."""
    _setup_logging(log_format, verbose)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _report(problems: tuple[Problem, ...] | list[Problem]) -> int:
    """Print problems to stderr; return how many were errors."""
    errors = 0
    for p in problems:
        click.echo(str(p), err=True)
        errors += p.severity is Severity.ERROR
    return errors


def _node_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """--node: a Kubernetes node name (an RFC 1123 subdomain)."""
    if not NAME_RE.fullmatch(value):
        raise click.BadParameter(
            f"{quote(value)} is not a node name: lowercase letters, digits, '-' and '.', starting "
            "and ending with a letter or digit, at most 253 characters"
        )
    return value


def render_options(func: F) -> F:
    @click.option(
        "-f",
        "--filename",
        "paths",
        multiple=True,
        required=True,
        type=click.Path(path_type=Path),
        help="YAML file or directory of manifests (repeatable).",
    )
    @click.option(
        "--node", required=True, callback=_node_name, help="Name of the node to render for."
    )
    @click.option(
        "--router",
        type=click.Choice([r.value for r in api.Router]),
        help="Router to render for (default: the node's NodeAgent, else bird).",
    )
    @click.option(
        "--mode",
        type=click.Choice([m.value for m in api.Mode]),
        help="managed: whole config; include: a fragment for an existing BIRD.",
    )
    @click.option(
        "--templates",
        "templates_dir",
        type=click.Path(path_type=Path),
        help="Directory whose templates override the built-in ones by name.",
    )
    @click.option("--router-id", help="Router id when no NodeAgent or Node gives one.")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _render(
    paths: tuple[Path, ...],
    node: str,
    router: str | None,
    mode: str | None,
    templates_dir: Path | None,
    router_id: str | None,
) -> tuple[NodeView, str, int]:
    """Load, check and render; returns the view, the text and the number of errors."""
    rid = None
    if router_id is not None:
        try:
            rid = ipaddress.IPv4Address(router_id)
        except ValueError:
            raise click.BadParameter(
                f"{router_id!r} is not an IPv4 address", param_hint="--router-id"
            ) from None
    manifests = read_manifests(paths)
    for error in manifests.errors:
        click.echo(f"error: {error}", err=True)
    try:
        model = api.load(manifests.objects)
        view = build_view(
            model,
            api.Router(router) if router else None,
            node,
            mode=api.Mode(mode) if mode else None,
            router_id=rid,
        )
        user_dir = templates_dir
        if user_dir is None:
            agent_dir = _agent_templates(model, node)
            user_dir = Path(agent_dir) if agent_dir else None
        text = render_view(view, load_template_set(view.router, user_dir))
    except LbrouteError as exc:
        _fail(str(exc))
        raise AssertionError("unreachable") from exc
    errors = len(manifests.errors) + _report(list(model.problems) + list(view.problems))
    return view, text, errors


def _agent_templates(model: api.Model, node: str) -> str | None:
    found = model.node(node)
    agent, _ = select_agent(model, found or api.Node(name=node))
    return agent.templates_dir if agent is not None else None


@main.command()
@render_options
def render(**kwargs: Any) -> None:
    """Print the router configuration of one node.

    Invalid objects and files that cannot be read are reported on stderr and left
    out; the rest still renders. Exits 1 when any was.
    """
    _view, text, errors = _render(**kwargs)
    click.echo(text, nl=False)
    if errors:
        sys.exit(1)


@main.command()
@render_options
def validate(**kwargs: Any) -> None:
    """Render, then check the result with the router's own parser.

    Runs ``bird -p -c`` or ``vtysh --dryrun -f`` and prints OK, or the parser's error
    with the offending lines.
    """
    from nodeagent.routers import check_config

    view, text, errors = _render(**kwargs)
    try:
        result = check_config(view.router, text, view.mode)
    except LbrouteError as exc:
        _fail(str(exc))
        return
    if not result.ok:
        _fail(
            f"{view.router} rejected the configuration for node {view.node}:\n{result.describe()}"
        )
    click.echo(
        f"OK: {view.router} accepts the {view.mode} configuration for node {view.node} "
        f"({len(view.groups)} ServiceGroups, {len(view.bgp)} BGP neighbors)"
    )
    if errors:
        sys.exit(1)


@main.command()
@click.option(
    "--source",
    "source_dir",
    type=click.Path(path_type=Path),
    help="Directory of manifests to watch (Services, EndpointSlices, Nodes, "
    "ServiceGroups, Peers, NodeAgents, Secrets).",
)
@click.option(
    "--kubernetes",
    is_flag=True,
    help="Watch the Kubernetes API instead (in-cluster, or --kubeconfig) and publish "
    "NodeState, Events and conditions.",
)
@_kube_options(
    "Kubeconfig file for --kubernetes (default: the in-cluster service account).",
    "Namespace of the ServiceGroups, Peers, NodeAgents, Secrets and NodeStates.",
)
@click.option(
    "--node",
    required=True,
    envvar="NODE_NAME",
    callback=_node_name,
    help="Name of the Node this agent runs on.",
)
@click.option(
    "--router",
    type=click.Choice([r.value for r in api.Router]),
    help="Override the NodeAgent's router.",
)
@click.option(
    "--mode", type=click.Choice([m.value for m in api.Mode]), help="Override the NodeAgent's mode."
)
@click.option(
    "--router-config",
    type=click.Path(path_type=Path),
    help="Router configuration file (default /etc/bird/bird.conf, /etc/frr/frr.conf).",
)
@click.option(
    "--router-socket",
    type=click.Path(path_type=Path),
    help="BIRD control socket, or FRR vty socket directory.",
)
@click.option(
    "--templates",
    "templates_dir",
    type=click.Path(path_type=Path),
    help="Templates directory overriding the built-in ones (watched).",
)
@click.option(
    "--default-class/--no-default-class",
    default=False,
    show_default=True,
    help="Also announce LoadBalancer Services that set no loadBalancerClass.",
)
@click.option(
    "--status-file",
    type=click.Path(path_type=Path),
    default=Path("/run/lbroute/status.json"),
    show_default=True,
)
@click.option(
    "--metrics-port",
    type=int,
    default=9473,
    show_default=True,
    help="Port for /metrics, /healthz and /readyz; 0 turns them off.",
)
@click.option("--metrics-address", default="", help="Address to serve metrics on (default: all).")
def agent(
    source_dir: Path | None,
    kubernetes: bool,
    kubeconfig: Path | None,
    kube_context: str | None,
    namespace: str,
    node: str,
    router: str | None,
    mode: str | None,
    router_config: Path | None,
    router_socket: Path | None,
    templates_dir: Path | None,
    default_class: bool,
    status_file: Path,
    metrics_port: int,
    metrics_address: str,
) -> None:
    """Run the node agent: program kube-lb0 and drive the node's BIRD or FRR."""
    from nodeagent.main import AgentOptions, run_agent
    from nodeagent.settings import AgentSettings, RouterOverrides

    if (source_dir is None) == (not kubernetes):
        raise click.UsageError("give either --source DIR or --kubernetes")
    if source_dir is not None and not source_dir.is_dir():
        raise click.BadParameter(f"{source_dir} is not a directory", param_hint="--source")
    settings = AgentSettings(
        node=node,
        overrides=RouterOverrides(
            router=api.Router(router) if router else None,
            mode=api.Mode(mode) if mode else None,
            config_path=router_config,
            socket_path=router_socket,
            templates_dir=templates_dir,
        ),
        default_class=default_class,
        status_file=status_file,
    )
    options = AgentOptions(
        settings=settings,
        source_dir=source_dir,
        kubeconfig=kubeconfig,
        context=kube_context,
        namespace=namespace,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
    )
    try:
        code = run_agent(options)
    except LbrouteError as exc:
        _fail(str(exc))
        return
    sys.exit(code)


@main.command()
@click.option(
    "--status-file",
    type=click.Path(path_type=Path),
    default=Path("/run/lbroute/status.json"),
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
def status(status_file: Path, as_json: bool) -> None:
    """Show what the agent on this node announces and how its router is doing."""
    from nodeagent.status import Status

    try:
        doc = Status.from_json(status_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        _fail(f"{status_file} not found: is the agent running on this node?")
        return
    except (OSError, ValueError, TypeError) as exc:
        _fail(f"{status_file}: unreadable status: {exc}")
        return
    if as_json:
        click.echo(doc.to_json())
        return
    la = doc.last_apply
    click.echo(f"node:        {doc.node}")
    click.echo(f"router:      {doc.router} ({doc.mode})")
    click.echo(f"config hash: {doc.config_hash or '-'}")
    click.echo(f"last apply:  {la.result or '-'} {la.time} ({la.duration:.3f}s)")
    if la.error:
        click.echo(f"  error: {la.error}")
    click.echo(f"updated:     {doc.updated}")
    click.echo(f"\nannounced ({len(doc.announced)}):")
    for a in doc.announced:
        click.echo(f"  {a.address:<44} {a.group:<28} {', '.join(a.services)}")
    click.echo(f"\nsessions ({len(doc.sessions)}):")
    for s in doc.sessions:
        click.echo(f"  {s.protocol:<6} {s.name:<32} {s.state:<14} {s.since}")
    if doc.problems:
        click.echo(f"\nproblems ({len(doc.problems)}):")
        for p in doc.problems:
            click.echo(f"  {p}")


@main.command()
@click.option("--example", type=click.Path(path_type=Path, file_okay=False),
              default=Path("examples/lab"), show_default=True,
              help="Directory with cluster.yaml and services.yaml.")  # fmt: skip
def demo(example: Path) -> None:
    """Run the demo lab (needs root): two nodes, an upstream router, the example.

    Builds network namespaces, runs BIRD, FRR and the agent, adds the example Services,
    prints what the upstream router learned, and removes everything again.
    """
    import os
    import shutil

    from lbroute.demo import run_demo

    if os.geteuid() != 0:
        _fail("the demo creates network namespaces and needs root (sudo make demo)")
    for tool in ("ip", "bird", "vtysh"):
        if shutil.which(tool) is None:
            _fail(f"{tool} is not installed; run make install (or make demo) first")
    for name in ("cluster.yaml", "services.yaml"):
        if not (example / name).is_file():
            _fail(f"{example / name} not found; run from the repository root or pass --example")
    sys.exit(run_demo(example))


@main.command()
@_kube_options(
    "Kubeconfig file (default: the in-cluster service account).",
    "Namespace of the ServiceGroups and of the Lease.",
)
@click.option(
    "--default-class/--no-default-class",
    default=False,
    show_default=True,
    help="Also serve LoadBalancer Services that set no loadBalancerClass.",
)
@click.option(
    "--metrics-port",
    type=int,
    default=9474,
    show_default=True,
    help="Port for /metrics, /healthz and /readyz; 0 turns them off.",
)
@click.option("--metrics-address", default="", help="Address to serve metrics on (default: all).")
@click.option(
    "--lease-name", default="lbroute-allocator", show_default=True, help="Name of the Lease."
)
@click.option(
    "--identity",
    envvar="POD_NAME",
    help="This replica's name in the Lease (default: the host name); a random suffix is added.",
)
def allocator(
    kubeconfig: Path | None,
    kube_context: str | None,
    namespace: str,
    default_class: bool,
    metrics_port: int,
    metrics_address: str,
    lease_name: str,
    identity: str | None,
) -> None:
    """Run the allocator: give LoadBalancer Services addresses from ServiceGroup pools.

    Replicas elect a leader with a Lease; only the leader writes the Services' status,
    the allocated-from annotation, Events and the ServiceGroups' status.
    """
    from allocator.main import AllocatorOptions, run_allocator

    options = AllocatorOptions(
        kubeconfig=kubeconfig,
        context=kube_context,
        namespace=namespace,
        default_class=default_class,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
        lease_name=lease_name,
        identity=identity,
    )
    try:
        code = run_allocator(options)
    except LbrouteError as exc:
        _fail(str(exc))
        return
    sys.exit(code)


@main.command()
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="YAML file or directory of manifests (repeatable): ServiceGroups and Services.",
)
@click.option(
    "--default-class/--no-default-class",
    default=False,
    show_default=True,
    help="Also serve LoadBalancer Services that set no loadBalancerClass.",
)
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
def allocate(paths: tuple[Path, ...], default_class: bool, dry_run: bool) -> None:
    """Fill in status.loadBalancer.ingress of the Service manifests, in place.

    One allocation pass as the allocator makes it in a cluster: addresses already in a
    Service's status stay; Services without one get one from their ServiceGroup. Only
    the documents of changed Services are rewritten; a file that cannot be read is
    reported and left out. Exits 1 when a Service could not get its addresses or a
    file could not be read.
    """
    from allocator.manifests import allocate_manifests

    try:
        result = allocate_manifests(list(paths), default_class=default_class, dry_run=dry_run)
    except LbrouteError as exc:
        _fail(str(exc))
        return
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
    for problem in result.problems:
        click.echo(problem, err=True)
    verb = "would assign" if dry_run else "assigned"
    for a in result.allocation.changes():
        where = f"{a.ref.namespace}/{a.ref.name}"
        if a.assigned:
            group = f" from {a.group.name}" if a.group else ""
            click.echo(f"{where}: {verb} {', '.join(map(str, a.assigned))}{group}")
        if a.released:
            released = "would release" if dry_run else "released"
            click.echo(f"{where}: {released} {', '.join(map(str, a.released))}")
        if not a.assigned and not a.released:
            click.echo(f"{where}: keeps {', '.join(map(str, a.addresses))} ({a.allocated_from})")
    for outside in result.allocation.outside:
        click.echo(f"warning: {outside}", err=True)
    for failure in result.allocation.failures:
        click.echo(f"error: {failure}", err=True)
    for path in result.written:
        click.echo(f"{'would write' if dry_run else 'wrote'} {path}")
    if result.allocation.failures or result.errors:
        sys.exit(1)
