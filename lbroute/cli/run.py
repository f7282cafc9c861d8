"""``lbroute agent`` and ``lbroute allocator``: the two long-running parts.

Each command turns its options into the part's own options dataclass and hands off to
its ``main`` (nodeagent.main, allocator.main), which builds the runtime, serves
metrics and runs until SIGTERM or SIGINT. Both are imported only when their command
runs, so the other commands never load the Kubernetes client.
"""

from __future__ import annotations

import shlex
from pathlib import Path, PurePosixPath

import click

from lbroute.cli.options import (
    default_class_option,
    kube_options,
    mode_option,
    node_option,
    router_option,
    serving_options,
    status_file_option,
    templates_option,
)
from lbroute.cli.output import exit_with
from lbroute.model import api


@click.command()
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
@kube_options(
    "Kubeconfig file for --kubernetes (default: the in-cluster service account).",
    "Namespace of the ServiceGroups, Peers, NodeAgents, Secrets and NodeStates "
    "(default: $POD_NAMESPACE when set, as the DaemonSets set it; else lbroute).",
)
@node_option("Name of the Node this agent runs on (default: $NODE_NAME).", envvar="NODE_NAME")
@router_option("Override the NodeAgent's router.")
@mode_option("Override the NodeAgent's mode.")
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
    "--include-path",
    type=click.Path(path_type=Path),
    callback=lambda _c, _p, v: _absolute(v, "--include-path"),
    help="Include mode: the file the fragment goes to, which BIRD's own configuration "
    "includes (overrides the NodeAgent's includePath).",
)
@click.option(
    "--allow-path",
    "allow_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    callback=lambda _c, _p, v: tuple(_absolute(d, "--allow-path") for d in v),
    help="A directory under which a NodeAgent may name its configPath, socketPath, "
    "includePath and templatesDir (repeatable; default: none, so a NodeAgent names no path).",
)
@click.option(
    "--allow-reload-command",
    "allow_reload_commands",
    multiple=True,
    callback=lambda _c, _p, v: tuple(_argv(c) for c in v),
    help="A command (one string, split as a shell would, never run by one) that a "
    "NodeAgent's reloadCommand may be (repeatable; default: none, so include mode reloads "
    "BIRD with birdc configure).",
)
@templates_option("Templates directory overriding the built-in ones (watched).")
@click.option(
    "--lease-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="With --source: the directory the agents of this host share for their "
    "membership Leases (announce: local needs it; created if missing).",
)
@click.option(
    "--watch",
    type=click.Choice(["auto", "labeled", "all"]),
    default="auto",
    show_default=True,
    help="With --kubernetes: which Services and EndpointSlices to list and watch. labeled: "
    "only those the allocator labeled lbroute.io/allocated-group (filtered by the API "
    "server); all: every one; auto: all until every ServiceGroup's status says "
    "labeledServices, then labeled.",
)
@default_class_option("announce")
@status_file_option
@serving_options(9473)
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
    include_path: Path | None,
    allow_paths: tuple[Path, ...],
    allow_reload_commands: tuple[tuple[str, ...], ...],
    templates_dir: Path | None,
    lease_dir: Path | None,
    watch: str,
    default_class: bool,
    status_file: Path,
    metrics_port: int,
    metrics_address: str,
) -> None:
    """Run the node agent: program kube-lb0 and drive the node's BIRD or FRR."""
    from nodeagent.main import AgentOptions, run_agent
    from nodeagent.settings import AgentSettings, Allowed, RouterOverrides

    if router == api.Router.FRR and mode == api.Mode.INCLUDE:
        raise click.UsageError("include mode is for BIRD 2: FRR has no include directive")
    if (source_dir is None) == (not kubernetes):
        raise click.UsageError("give either --source DIR or --kubernetes")
    if source_dir is not None and not source_dir.is_dir():
        raise click.BadParameter(f"{source_dir} is not a directory", param_hint="--source")
    if lease_dir is not None and source_dir is None:
        raise click.UsageError(
            "--lease-dir is for --source: with --kubernetes the Leases live in the API"
        )
    settings = AgentSettings(
        node=node,
        overrides=RouterOverrides(
            router=api.Router(router) if router else None,
            mode=api.Mode(mode) if mode else None,
            config_path=router_config,
            socket_path=router_socket,
            templates_dir=templates_dir,
            include_path=include_path,
        ),
        allowed=Allowed(
            paths=tuple(PurePosixPath(d) for d in allow_paths),
            reload_commands=allow_reload_commands,
        ),
        default_class=default_class,
        status_file=status_file,
        lease_dir=lease_dir,
    )
    options = AgentOptions(
        settings=settings,
        source_dir=source_dir,
        kubeconfig=kubeconfig,
        context=kube_context,
        namespace=namespace,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
        watch=watch,
    )
    exit_with(run_agent, options)


@click.command()
@kube_options(
    "Kubeconfig file (default: the in-cluster service account).",
    "Namespace of the ServiceGroups and of the Lease (default: $POD_NAMESPACE when set, "
    "as the Deployment sets it; else lbroute).",
)
@default_class_option("serve")
@serving_options(9474)
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
    exit_with(run_allocator, options)


def _absolute(path: Path | None, option: str) -> Path | None:
    """An absolute path without '.' or '..' parts (what a NodeAgent's is compared to)."""
    if path is not None and (not path.is_absolute() or {".", ".."} & set(str(path).split("/"))):
        raise click.BadParameter(
            f"{str(path)!r} is not an absolute path without '.' or '..'", param_hint=option
        )
    return path


def _argv(command: str) -> tuple[str, ...]:
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        hint = "--allow-reload-command"
        raise click.BadParameter(f"{command!r}: {exc}", param_hint=hint) from exc
    if not argv:
        raise click.BadParameter("an empty command", param_hint="--allow-reload-command")
    return argv


COMMANDS = (agent, allocator)
