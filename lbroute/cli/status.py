"""``lbroute status``: what the agent on this node announces and how its router is doing.

Reads the status document the agent writes (nodeagent.status) and prints it as a table,
or as the document itself with ``--json``. Service names in it are a tenant's text:
they are printed escaped, so one cannot fake a line of the table.

The local addresses the node holds (ServiceGroups with ``announce: local``) are the
document's ``local`` list, one object per address with ``address`` (with the subnet's
prefix length), ``interface``, ``group``, ``services`` and ``since``, the names of the
NodeState's ``status.local``. They are read from the JSON as it is, so that a document
without the list (an agent from before local addresses) prints as before.

A status file outlives its agent: the table says how old it is (``updated: ... (3 s
ago)``) and whether the agent that wrote it still runs, and a warning on stderr says
when it does not, or when the file is older than :data:`STALE_BEATS` of the agent's
heartbeats (it writes the file at least every 5 s: nodeagent.status.HEARTBEAT). The
document names its writer (pid, start time, boot, pid namespace): a pid reused by
another process, a boot since or a zombie is an agent that is not running. From another
pid namespace (the agent in its container, ``lbroute status`` on the host) its pid
means nothing: only the age counts there. ``--check``, for scripts, exits 1 when the
status is not current (either warning) or its last apply failed; the problems with
objects it lists do not count (they are the same on every node, what ``lbroute
validate`` reports).
"""

from __future__ import annotations

import calendar
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lbroute.cli.options import status_file_option
from lbroute.cli.output import fail
from lbroute.model.errors import escape

if TYPE_CHECKING:
    from nodeagent.status import Status, Writer

STALE_BEATS = 6
"""A document older than this many of its agent's heartbeats is stale (30 s by
default): the agent is stuck, or gone and its pid cannot be checked from here."""


@click.command()
@status_file_option
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 when the status is not current (its agent is not running, or it is "
    "older than six heartbeats: 30 s) or its last apply failed; the problems it lists "
    "with objects do not count.",
)
def status(status_file: Path, as_json: bool, check: bool) -> None:
    """Show what the agent on this node announces and how its router is doing.

    Says how old the status file is and warns (on stderr) when the agent that wrote it
    is not running or it is older than six of the agent's heartbeats.
    """
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
    age = _age(doc.updated)
    running = _running(doc.writer)
    warnings = _warnings(status_file, doc, age, running)
    if as_json:
        click.echo(doc.to_json())
        _finish(warnings, doc, check)
        return
    la = doc.last_apply
    click.echo(f"node:        {doc.node}")
    click.echo(f"router:      {doc.router} ({doc.mode})")
    click.echo(f"config hash: {doc.config_hash or '-'}")
    reason = f" ({la.reason})" if la.reason else ""
    click.echo(f"last apply:  {la.result or '-'}{reason} {la.time} ({la.duration:.3f}s)")
    if la.error:
        click.echo(f"  error: {la.error}")
    click.echo(f"updated:     {_text(doc.updated)} ({_ago(age)})")
    click.echo(f"agent:       {_agent(doc.writer, running)}")
    if doc.drain.state != "Serving":
        d = doc.drain
        why = ", ".join(escape(r) for r in d.reasons) or "-"
        click.echo(f"drain:       {escape(d.state)} since {_text(d.since)} ({why}); "
                   f"routes withdrawn at {_text(d.withdraw_at)}")  # fmt: skip
    click.echo(f"\nannounced ({len(doc.announced)}):")
    for a in doc.announced:
        services = ", ".join(escape(s) for s in a.services)
        notes = [f"weight {a.weight}"] * bool(a.weight)
        notes += [f"class {escape(a.bgp_class)}"] * bool(a.bgp_class)
        note = f"  ({', '.join(notes)})" if notes else ""
        click.echo(f"  {a.address:<44} {escape(a.group):<28} {services}{note}")
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
    _finish(warnings, doc, check)


def _finish(warnings: list[str], doc: Status, check: bool) -> None:
    """The warnings on stderr; with ``check``, exit 1 when there is one or the last
    apply failed."""
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if check and doc.last_apply.result == "Failed":
        click.echo(f"error: the last apply failed: {doc.last_apply.summary(doc.router)}", err=True)
    if check and (warnings or doc.last_apply.result == "Failed"):
        sys.exit(1)


def _age(updated: str) -> float | None:
    """Seconds since ``updated``; None: not a time the agent writes."""
    try:
        return time.time() - calendar.timegm(time.strptime(updated, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return None


def _ago(age: float | None) -> str:
    if age is None:
        return "when is unknown"
    if age < -1:
        return f"{_span(-age)} in the future: the clocks differ"
    return "just now" if age < 1 else f"{_span(age)} ago"


def _span(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 2 * 3600:
        return f"{s // 60} min"
    if s < 2 * 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _running(writer: Writer | None) -> bool | None:
    """Whether the process that wrote the document runs; None: cannot tell (the
    document does not say which it is, or it is in another pid namespace)."""
    from nodeagent.status import boot_id, pid_namespace, process_start

    if writer is None:
        return None
    boot = boot_id()
    if writer.boot and boot and writer.boot != boot:
        return False  # it ran before the last boot
    here = pid_namespace()
    if not writer.pidns or not here or writer.pidns != here:
        return None
    try:
        os.kill(writer.pid, 0)  # pid >= 1 (Status.from_json): this one process
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it runs, as another user
    except OSError:
        return None
    found = process_start(writer.pid)
    if found is None:
        return True  # there, but its /proc entry is hidden from us
    start, state = found
    return state != "Z" and (not writer.start or start == writer.start)


def _agent(writer: Writer | None, running: bool | None) -> str:
    if writer is None:
        return "- (the document does not say which process wrote it)"
    started = f", started {_text(writer.started)}" if writer.started else ""
    if running is None:
        from nodeagent.status import pid_namespace

        other = writer.pidns and writer.pidns != pid_namespace()
        why = "in another pid namespace" if other else "cannot be looked up"
        return f"pid {writer.pid}{started} ({why}: not checked)"
    return f"pid {writer.pid}{started}{'' if running else ': NOT RUNNING'}"


def _warnings(path: Path, doc: Status, age: float | None, running: bool | None) -> list[str]:
    from nodeagent.status import HEARTBEAT

    beat = doc.writer.heartbeat if doc.writer is not None else HEARTBEAT
    if not isinstance(beat, (int, float)) or isinstance(beat, bool) or not beat > 0:
        beat = HEARTBEAT
    out = []
    if running is False:
        assert doc.writer is not None
        out.append(
            f"{path}: the agent that wrote it (pid {doc.writer.pid}) is not running: this is "
            f"what it saw {_ago(age)}, not what the node does now"
        )
    elif age is None:
        out.append(f"{path}: updated {_text(doc.updated)!r} is no time: its age is unknown")
    elif age > STALE_BEATS * beat:
        out.append(
            f"{path}: not updated for {_span(age)} though its agent writes it every "
            f"{beat:g} s: the agent is stuck or not running"
        )
    return out


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
