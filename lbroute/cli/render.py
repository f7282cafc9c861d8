"""``lbroute render`` and ``lbroute validate``: one node's configuration from manifests.

Both load the manifests, check them, and render the node's BIRD or FRR configuration
(renderer); validate then hands the text to the router's own parser
(nodeagent.routers.check_config). Invalid objects and unreadable files are reported on
stderr and left out, the rest still renders, and the exit code is 1.

ServiceGroups with ``announce: local`` are in no router configuration: both commands
list, for the node, which local pools it can serve as far as the manifests tell
(renderer.view.local; render on stderr, so that stdout stays the configuration), and
warn about local groups no node given can serve.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Any

import click

from lbroute.cli.options import (
    filename_option,
    mode_option,
    node_option,
    router_option,
    stacked,
    templates_option,
)
from lbroute.cli.output import fail, report
from lbroute.model import api
from lbroute.model.errors import LbrouteError, quote
from lbroute.model.manifests import read_manifests
from renderer.render import render_view
from renderer.templating import load_template_set
from renderer.view import NodeView, build_view, select_agent
from renderer.view.local import LocalView, local_problems, local_view

render_options = stacked(
    filename_option("YAML file or directory of manifests (repeatable)."),
    node_option("Name of the node to render for."),
    router_option("Router to render for (default: the node's NodeAgent, else bird)."),
    mode_option("managed: whole config; include: a fragment for an existing BIRD."),
    templates_option("Directory whose templates override the built-in ones by name."),
    click.option("--router-id", help="Router id when no NodeAgent or Node gives one."),
)


def load_and_render(
    paths: tuple[Path, ...],
    node: str,
    router: str | None,
    mode: str | None,
    templates_dir: Path | None,
    router_id: str | None,
) -> tuple[NodeView, LocalView, str, int]:
    """Load, check and render; returns the view, the node's local pools, the text and
    the number of errors."""
    rid = None
    if router_id is not None:
        try:
            rid = ipaddress.IPv4Address(router_id)
        except ValueError:
            raise click.BadParameter(
                f"{quote(router_id)} is not an IPv4 address", param_hint="--router-id"
            ) from None
    manifests = read_manifests(paths)
    for error in manifests.errors:
        click.echo(f"error: {error}", err=True)
    try:
        model = api.load(manifests.objects, where=manifests.where)
    except LbrouteError as exc:
        fail(str(exc))
    missing = _missing_node(model, node)
    try:
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
        local = local_view(model, node)
    except LbrouteError as exc:
        # The objects' own errors first: they are often why the node cannot render.
        report((*model.problems, *local_problems(model)))
        fail(f"{missing}; {exc}" if missing else str(exc))
    problems = (*model.problems, *view.problems, *local_problems(model))
    errors = len(manifests.errors) + report(problems)
    return view, local, text, errors


def _missing_node(model: api.Model, node: str) -> str | None:
    """ "no Node named X in the input (known: ...)" when the input has Nodes but not this
    one (a mistyped --node); None when it has it, or has no Node at all."""
    if not model.nodes or model.node(node) is not None:
        return None
    known = [n.name for n in model.nodes]
    more = f" and {len(known) - 10} more" if len(known) > 10 else ""
    return f"no Node named {quote(node)} in the input (known: {', '.join(known[:10])}{more})"


def _agent_templates(model: api.Model, node: str) -> str | None:
    found = model.node(node)
    agent, _ = select_agent(model, found or api.Node(name=node))
    return agent.templates_dir if agent is not None else None


@click.command()
@render_options
def render(**kwargs: Any) -> None:
    """Print the router configuration of one node.

    Invalid objects and files that cannot be read are reported on stderr and left
    out; the rest still renders. Exits 1 when any was.
    """
    _view, local, text, errors = load_and_render(**kwargs)
    for line in local.lines():
        click.echo(line, err=True)
    click.echo(text, nl=False)
    if errors:
        sys.exit(1)


@click.command()
@render_options
def validate(**kwargs: Any) -> None:
    """Render, then check the result with the router's own parser.

    Runs ``bird -p -c`` or ``vtysh --dryrun -f`` and prints OK, or the parser's error
    with the offending lines.
    """
    from nodeagent.routers import check_config

    view, local, text, errors = load_and_render(**kwargs)
    try:
        result = check_config(view.router, text, view.mode)
    except LbrouteError as exc:
        fail(str(exc))
    if not result.ok:
        fail(f"{view.router} rejected the configuration for node {view.node}:\n{result.describe()}")
    click.echo(
        f"OK: {view.router} accepts the {view.mode} configuration for node {view.node} "
        f"({len(view.groups)} ServiceGroups, {len(view.bgp)} BGP neighbors)"
    )
    for line in local.lines():
        click.echo(line)
    if errors:
        sys.exit(1)


COMMANDS = (render, validate)
