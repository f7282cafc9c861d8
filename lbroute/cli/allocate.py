"""``lbroute allocate``: one allocation pass over Service manifests, written in place.

Hands off to allocator.manifests and prints what it did: a line per changed Service
(names escaped, so a Service name holding a newline or a terminal escape cannot fake a
line), the problems, failures, addresses kept outside every pool and the MetalLB or
PureLB annotations read (``note:``) or overridden by a conflicting one of lbroute's
(``warning:``) on stderr, and the files written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lbroute.cli.options import default_class_option, filename_option
from lbroute.cli.output import fail
from lbroute.model.errors import LbrouteError, ObjectRef, escape
from lbroute.model.netbox import URL_RE, URL_VALID

_NAME_LIMIT = 253
"""The longest valid namespace or Service name: a longer one is printed cut."""


def _where(ref: ObjectRef) -> str:
    """``namespace/name`` of a Service, each escaped."""
    return f"{escape(ref.namespace, _NAME_LIMIT)}/{escape(ref.name, _NAME_LIMIT)}"


@click.command()
@filename_option("YAML file or directory of manifests (repeatable): ServiceGroups and Services.")
@default_class_option("serve")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what would change; write nothing (NetBox is asked, not written to).",
)
@click.option(
    "--netbox-token",
    envvar="LBROUTE_NETBOX_TOKEN",
    show_envvar=True,
    help="NetBox API token for ServiceGroups with ipam.netbox.",
)
@click.option(
    "--netbox-url",
    envvar="LBROUTE_NETBOX_URL",
    show_envvar=True,
    help="Reach NetBox here instead of at the ServiceGroups' ipam.netbox.url.",
)
def allocate(
    paths: tuple[Path, ...],
    default_class: bool,
    dry_run: bool,
    netbox_token: str | None,
    netbox_url: str | None,
) -> None:
    """Fill in status.loadBalancer.ingress of the Service manifests, in place.

    One allocation pass as the allocator makes it in a cluster: addresses already in a
    Service's status stay; Services without one get one from their ServiceGroup. Only
    the documents of changed Services are rewritten, and in them only the lines of the
    fields written (comments, key order and flow style stay); a file that cannot be read
    is reported and left out. Exits 1 when a Service could not get its addresses or a
    file could not be read. The status written is a preview: kubectl apply, Argo CD and
    Flux do not apply a Service's status. A ServiceGroup with ipam.netbox takes its
    addresses from NetBox, with --netbox-token (recorded there as the allocator records
    them; with --dry-run NetBox is only asked).
    """
    from allocator.manifests import NetBoxAccess, allocate_manifests

    if netbox_url is not None and not URL_RE.fullmatch(netbox_url):
        fail(f"--netbox-url: {netbox_url!r} is not valid; expected {URL_VALID}")
    token = (netbox_token or "").strip()
    netbox = NetBoxAccess(token=token, url=netbox_url) if token else None
    try:
        result = allocate_manifests(
            list(paths), default_class=default_class, dry_run=dry_run, netbox=netbox
        )
    except LbrouteError as exc:
        fail(str(exc))
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
    for problem in result.problems:
        click.echo(problem, err=True)
    for ref, foreign in result.foreign:
        level = "warning" if foreign.conflict else "note"
        click.echo(f"{level}: {_where(ref)}: {foreign.message}", err=True)
    verb = "would assign" if dry_run else "assigned"
    for a in result.allocation.changes():
        where = _where(a.ref)
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


COMMANDS = (allocate,)
