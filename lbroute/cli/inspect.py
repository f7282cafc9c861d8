"""``lbroute inspect``, also ``kubectl lbroute``: the cluster as lbroute sees it, from a
workstation.

Installed as ``kubectl-lbroute`` (a console script of this package) on the ``PATH``,
kubectl runs it as ``kubectl lbroute``. Four commands read the API with the user's
kubeconfig, never write and never exec into a pod:

- ``status``: per node (its NodeState): router, mode, last apply, sessions up, what is
  down, how many addresses it announces, local addresses held, Ready;
- ``services``: each LoadBalancer Service of lbroute's: address, group, how it is
  announced, over which protocols and by which nodes;
- ``pools``: each ServiceGroup: pools, used/free per family, Valid, LocalHeld;
- ``why NAMESPACE/SERVICE`` (or ``why -n NAMESPACE SERVICE``): the chain from the
  Service to its routes, stopping at the first broken link with what to do; exit 0 when
  it is reachable as far as lbroute can tell, 1 otherwise.

``-n/--namespace`` before the command (or after status, services and pools) is
lbroute's install namespace (default ``lbroute``); after ``why`` it is the Service's,
as kubectl reads ``-n``. What is printed and decided is lbroute.diagnose's; the reading
lbroute.kube.inspect's. An API that refuses or does not answer is ``error: ...`` and
exit 1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import click

from lbroute.cli.output import fail
from lbroute.model.errors import LbrouteError

if TYPE_CHECKING:
    from lbroute.diagnose import Cluster

INSTALL_NAMESPACE = "lbroute"


@dataclass(frozen=True, kw_only=True)
class Target:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = INSTALL_NAMESPACE
    default_class: bool = False


@click.group(
    "inspect",
    context_settings={"auto_envvar_prefix": "LBROUTE", "help_option_names": ["-h", "--help"]},
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).",
)
@click.option("--context", help="Context of the kubeconfig (default: its current context).")
@click.option(
    "-n",
    "--namespace",
    default=INSTALL_NAMESPACE,
    show_default=True,
    help="lbroute's install namespace (its ServiceGroups, Peers, NodeAgents, NodeStates).",
)
@click.option(
    "--default-class",
    is_flag=True,
    help="lbroute also serves LoadBalancer Services without a loadBalancerClass (as the "
    "allocator and agents run with --default-class).",
)
@click.pass_context
def inspect(
    ctx: click.Context,
    kubeconfig: str | None,
    context: str | None,
    namespace: str,
    default_class: bool,
) -> None:
    """The cluster as lbroute sees it: nodes, Services, pools, and why a Service is not
    reachable. Reads the API with your kubeconfig; writes nothing."""
    ctx.obj = Target(
        kubeconfig=kubeconfig, context=context, namespace=namespace, default_class=default_class
    )


def _install_namespace(f: Any) -> Any:
    return click.option(
        "-n",
        "--namespace",
        "install_namespace",
        default=None,
        help=f"lbroute's install namespace (default {INSTALL_NAMESPACE}).",
    )(f)


def _read(target: Target, *, events_in: tuple[str, ...] = ()) -> Cluster:
    """The snapshot, parsed; an API error is the message of exit 1."""
    from lbroute.diagnose import Cluster
    from lbroute.kube.inspect import connect, read_cluster

    try:
        snap = read_cluster(
            connect(target.kubeconfig, target.context), target.namespace, events_in=events_in
        )
    except LbrouteError as exc:
        fail(f"cannot read the cluster: {exc}")
    return Cluster.of(
        namespace=snap.namespace,
        default_class=target.default_class,
        services=snap.services,
        slices=snap.slices,
        nodes=snap.nodes,
        groups=snap.groups,
        peers=snap.peers,
        agents=snap.agents,
        states=snap.states,
        events=snap.events,
    )


def _target(ctx: click.Context, install_namespace: str | None) -> Target:
    target: Target = ctx.find_object(Target) or Target()
    return replace(target, namespace=install_namespace) if install_namespace else target


def _echo(lines: list[str], cluster: Cluster) -> None:
    for line in lines:
        click.echo(line)
    for note in cluster.notes:
        click.echo(f"warning: {note}", err=True)


@inspect.command()
@_install_namespace
@click.pass_context
def status(ctx: click.Context, install_namespace: str | None) -> None:
    """Per node: router, mode, last apply, sessions, announced, local addresses, Ready."""
    from lbroute.diagnose import node_rows

    cluster = _read(_target(ctx, install_namespace))
    _echo(node_rows(cluster), cluster)


@inspect.command()
@_install_namespace
@click.pass_context
def services(ctx: click.Context, install_namespace: str | None) -> None:
    """Each LoadBalancer Service of lbroute's: address, group, how and by whom announced."""
    from lbroute.diagnose import service_rows

    cluster = _read(_target(ctx, install_namespace))
    _echo(service_rows(cluster), cluster)


@inspect.command()
@_install_namespace
@click.pass_context
def pools(ctx: click.Context, install_namespace: str | None) -> None:
    """Each ServiceGroup: pools, used/free addresses per family, Valid, LocalHeld."""
    from lbroute.diagnose import pool_rows

    cluster = _read(_target(ctx, install_namespace))
    _echo(pool_rows(cluster), cluster)


@inspect.command()
@click.option(
    "-n",
    "--namespace",
    "service_namespace",
    default=None,
    help="The Service's namespace (default: the context's, else default).",
)
@click.argument("service")
@click.pass_context
def why(ctx: click.Context, service_namespace: str | None, service: str) -> None:
    """Why SERVICE (NAMESPACE/NAME, or NAME with -n) is not reachable: walks type,
    class, group, address, nodes, endpoints, announcement and sessions, and stops at the
    first broken link. Exit 0 when reachable as far as lbroute can tell, 1 otherwise."""
    from lbroute.diagnose import why as walk
    from lbroute.kube.inspect import context_namespace

    target = _target(ctx, None)
    namespace, _, name = service.rpartition("/")
    if namespace and service_namespace and namespace != service_namespace:
        raise click.BadParameter(
            f"{service!r} names namespace {namespace!r} but -n says {service_namespace!r}",
            param_hint="SERVICE",
        )
    if not name or "/" in namespace:
        raise click.BadParameter(
            f"{service!r}: expected NAME or NAMESPACE/NAME, such as shop/web",
            param_hint="SERVICE",
        )
    if not namespace:
        try:
            namespace = service_namespace or context_namespace(target.kubeconfig, target.context)
        except LbrouteError as exc:
            fail(str(exc))
    cluster = _read(target, events_in=(namespace,))
    verdict = walk(cluster, namespace, name)
    _echo(verdict.lines(), cluster)
    ctx.exit(0 if verdict.reachable else 1)


def plugin() -> None:
    """The ``kubectl-lbroute`` console script: this group under kubectl's name."""
    inspect(prog_name="kubectl lbroute")


COMMANDS = [inspect]
