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
from lbroute.manifests import read_manifests
from renderer import api
from renderer.errors import LbrouteError, Problem, Severity
from renderer.render import render_view
from renderer.templating import load_template_set
from renderer.view import NodeView, build_view

F = TypeVar("F", bound=Callable[..., Any])


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
    @click.option("--node", required=True, help="Name of the node to render for.")
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
    try:
        model = api.load(read_manifests(paths))
        view = build_view(
            model,
            api.Router(router) if router else None,
            node,
            mode=api.Mode(mode) if mode else None,
            router_id=rid,
        )
        user_dir = templates_dir
        if user_dir is None and view.mode is not None:
            agent_dir = _agent_templates(model, node)
            user_dir = Path(agent_dir) if agent_dir else None
        text = render_view(view, load_template_set(view.router, user_dir))
    except LbrouteError as exc:
        _fail(str(exc))
        raise AssertionError("unreachable") from exc
    errors = _report(list(model.problems) + list(view.problems))
    return view, text, errors


def _agent_templates(model: api.Model, node: str) -> str | None:
    from renderer.view import select_agent

    found = model.node(node)
    agent, _ = select_agent(model, found or api.Node(name=node))
    return agent.templates_dir if agent is not None else None


@main.command()
@render_options
def render(**kwargs: Any) -> None:
    """Print the router configuration of one node.

    Invalid objects are reported on stderr and left out; the rest still renders.
    Exits 1 when any object was invalid.
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
