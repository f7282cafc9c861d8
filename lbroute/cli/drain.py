"""``lbroute drain`` and ``lbroute undrain``: drain this node by hand (issue 17).

For hosts without Kubernetes, or to drain without touching the Node: ``drain`` leaves a
request file next to the agent's status file (nodeagent.drain), which the agent notices
within a second; it then announces the node's Service routes de-preferred and, after the
NodeAgent's ``drainSeconds``, withdraws them, its sessions kept up. ``undrain`` removes
the file and the routes are announced as usual again. Other triggers (the Node's
exclusion label, a cordon with ``drainOnCordon``, kubelet's shutdown) keep a node
draining whatever ``undrain`` says; ``lbroute status --json`` shows the drain and why.
"""

from __future__ import annotations

from pathlib import Path

import click

from lbroute.cli.options import status_file_option
from lbroute.cli.output import fail


@click.command()
@status_file_option
def drain(status_file: Path) -> None:
    """Drain this node: de-prefer its Service routes, then withdraw them."""
    from nodeagent.drain import request_drain

    try:
        path = request_drain(status_file)
    except OSError as exc:
        fail(f"cannot write the drain request next to {status_file}: {exc}")
    click.echo(f"drain requested ({path}); the agent de-prefers, then withdraws the routes")


@click.command()
@status_file_option
def undrain(status_file: Path) -> None:
    """Undo ``lbroute drain``: announce this node's Service routes as usual again."""
    from nodeagent.drain import cancel_drain

    try:
        cancelled = cancel_drain(status_file)
    except OSError as exc:
        fail(f"cannot remove the drain request next to {status_file}: {exc}")
    if cancelled:
        click.echo("drain request removed; the agent announces the routes as usual again")
    else:
        click.echo("no drain request on this node (lbroute drain was not run)")


COMMANDS = [drain, undrain]
