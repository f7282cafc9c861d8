"""The options several ``lbroute`` commands take, each declared once.

Commands that read manifests take ``-f``; those that talk to the API take
``--kubeconfig``, ``--context`` and ``--namespace``; the long-running ones serve
``/metrics``, ``/healthz`` and ``/readyz`` and may serve Services of no class; render,
validate and the agent pick a router, a mode and a templates directory; the agent and
``status`` meet at the status file. Declaring each option here keeps its name, type,
default and check the same wherever it appears; a command passes only its help text.
Options are applied in the order they are listed, which is the order ``--help`` shows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from lbroute.model import api
from lbroute.model.errors import quote
from lbroute.model.fields import NAME_RE

F = TypeVar("F", bound=Callable[..., Any])

STATUS_FILE = Path("/run/lbroute/status.json")
"""Where the agent writes its status document and ``lbroute status`` reads it."""


def stacked(*options: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator of several options, shown by ``--help`` in the order given."""

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def node_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """--node: a Kubernetes node name (an RFC 1123 subdomain)."""
    if not NAME_RE.fullmatch(value):
        raise click.BadParameter(
            f"{quote(value)} is not a node name: lowercase letters, digits, '-' and '.', starting "
            "and ending with a letter or digit, at most 253 characters"
        )
    return value


def node_option(help: str, **kwargs: Any) -> Callable[[F], F]:
    """--node, required and checked as a node name."""
    return click.option("--node", required=True, callback=node_name, help=help, **kwargs)


def filename_option(help: str) -> Callable[[F], F]:
    """-f/--filename: manifest files or directories, repeatable, into ``paths``."""
    return click.option(
        "-f",
        "--filename",
        "paths",
        multiple=True,
        required=True,
        type=click.Path(path_type=Path),
        help=help,
    )


def kube_options(kubeconfig_help: str, namespace_help: str) -> Callable[[F], F]:
    """--kubeconfig, --context and --namespace, as every command that talks to the API
    takes them."""
    return stacked(
        click.option(
            "--kubeconfig", type=click.Path(path_type=Path, dir_okay=False), help=kubeconfig_help
        ),
        click.option(
            "--context", "kube_context", help="Kubeconfig context (default: the current one)."
        ),
        click.option(
            "--namespace",
            envvar="POD_NAMESPACE",
            default="lbroute",
            show_default=True,
            help=namespace_help,
        ),
    )


def router_option(help: str) -> Callable[[F], F]:
    return click.option("--router", type=click.Choice([r.value for r in api.Router]), help=help)


def mode_option(help: str) -> Callable[[F], F]:
    return click.option("--mode", type=click.Choice([m.value for m in api.Mode]), help=help)


def templates_option(help: str) -> Callable[[F], F]:
    return click.option("--templates", "templates_dir", type=click.Path(path_type=Path), help=help)


def default_class_option(verb: str) -> Callable[[F], F]:
    """--default-class: also ``verb`` (serve, announce) Services of no class."""
    return click.option(
        "--default-class/--no-default-class",
        default=False,
        show_default=True,
        help=f"Also {verb} LoadBalancer Services that set no loadBalancerClass.",
    )


def serving_options(port: int) -> Callable[[F], F]:
    """--metrics-port and --metrics-address of a long-running command."""
    return stacked(
        click.option(
            "--metrics-port",
            type=int,
            default=port,
            show_default=True,
            help="Port for /metrics, /healthz and /readyz; 0 turns them off.",
        ),
        click.option(
            "--metrics-address",
            default="",
            help="IP address to serve them on: one of this node's (the DaemonSets give the "
            "node's own, status.hostIP) or 127.0.0.1; default: every IPv4 address.",
        ),
    )


status_file_option = click.option(
    "--status-file", type=click.Path(path_type=Path), default=STATUS_FILE, show_default=True
)
