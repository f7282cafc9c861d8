"""``lbroute status``: what the agent on this node announces and how its router is doing.

Reads the status document the agent writes (nodeagent.status) and prints it as a table,
or as the document itself with ``--json``. Service names in it are a tenant's text:
they are printed escaped, so one cannot fake a line of the table.

The local addresses the node holds (ServiceGroups with ``announce: local``) are the
document's ``local`` list, one object per address with ``address`` (with the subnet's
prefix length), ``interface``, ``group``, ``services`` and ``since``, the names of the
NodeState's ``status.local``. They are read from the JSON as it is, so that a document
without the list (an agent from before local addresses) prints as before.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

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
        text = status_file.read_text(encoding="utf-8")
        raw = json.loads(text)
        local = _local(raw)
        if local is not None and "local" not in {f.name for f in dataclasses.fields(Status)}:
            text = json.dumps({k: v for k, v in raw.items() if k != "local"})
        doc = Status.from_json(text)
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
    if local is not None:
        click.echo(f"\nlocal addresses held ({len(local)}):")
        for entry in local:
            click.echo("  " + _local_line(entry))
    click.echo(f"\nsessions ({len(doc.sessions)}):")
    for s in doc.sessions:
        click.echo(f"  {s.protocol:<6} {s.name:<32} {s.state:<14} {s.since}")
    if doc.problems:
        click.echo(f"\nproblems ({len(doc.problems)}):")
        for p in doc.problems:
            click.echo(f"  {p}")


def _local(doc: Any) -> list[dict[str, Any]] | None:
    """The document's ``local`` list (None when it has none), entries that are no object
    left out."""
    found = doc.get("local") if isinstance(doc, dict) else None
    if not isinstance(found, list):
        return None
    return [e for e in found if isinstance(e, dict)]


def _text(value: Any) -> str:
    return escape(value) if isinstance(value, str) and value else "-"


def _local_line(entry: dict[str, Any]) -> str:
    services = entry.get("services")
    names = (
        [escape(s) for s in services if isinstance(s, str)] if isinstance(services, list) else []
    )
    since = f" since {_text(entry.get('since'))}" if entry.get("since") else ""
    return (
        f"{_text(entry.get('address')):<44} {_text(entry.get('interface')):<16} "
        f"{_text(entry.get('group')):<28} {', '.join(names) or '-'}{since}"
    )


COMMANDS = (status,)
