"""``lbroute status``: what the agent on this node announces and how its router is doing.

Reads the status document the agent writes (nodeagent.status) and prints it as a table,
or as the document itself with ``--json``. Service names in it are a tenant's text:
they are printed escaped, so one cannot fake a line of the table.
"""

from __future__ import annotations

from pathlib import Path

import click

from lbroute.cli.options import status_file_option
from lbroute.cli.output import fail
from lbroute.model.errors import escape


@click.command()
@status_file_option
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
def status(status_file: Path, as_json: bool) -> None:
    """Show what the agent on this node announces and how its router is doing."""
    from nodeagent.status import Status

    try:
        doc = Status.from_json(status_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"{status_file} not found: is the agent running on this node?")
    except (OSError, ValueError, TypeError) as exc:
        fail(f"{status_file}: unreadable status: {exc}")
    if as_json:
        click.echo(doc.to_json())
        return
    la = doc.last_apply
    click.echo(f"node:        {doc.node}")
    click.echo(f"router:      {doc.router} ({doc.mode})")
    click.echo(f"config hash: {doc.config_hash or '-'}")
    reason = f" ({la.reason})" if la.reason else ""
    click.echo(f"last apply:  {la.result or '-'}{reason} {la.time} ({la.duration:.3f}s)")
    if la.error:
        click.echo(f"  error: {la.error}")
    click.echo(f"updated:     {doc.updated}")
    click.echo(f"\nannounced ({len(doc.announced)}):")
    for a in doc.announced:
        services = ", ".join(escape(s) for s in a.services)
        click.echo(f"  {a.address:<44} {escape(a.group):<28} {services}")
    click.echo(f"\nsessions ({len(doc.sessions)}):")
    for s in doc.sessions:
        click.echo(f"  {s.protocol:<6} {s.name:<32} {s.state:<14} {s.since}")
    if doc.problems:
        click.echo(f"\nproblems ({len(doc.problems)}):")
        for p in doc.problems:
            click.echo(f"  {p}")


COMMANDS = (status,)
