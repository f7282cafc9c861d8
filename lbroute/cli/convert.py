"""``lbroute convert``: MetalLB's or PureLB's configuration as lbroute's, in one command.

Reads the manifests (``kubectl get -o yaml`` output: multi-document or ``kind: List``;
the other tool's objects, the cluster's Services and the Secrets they refer to), hands
them to :mod:`lbroute.convert` and writes what it returns:

- with ``-o DIR``: ``lbroute.yaml`` (ServiceGroups, Peers, NodeAgents and the Secrets
  they need; mode 0600, it may hold passwords), ``services.yaml`` (one merge patch per
  Service, as documents), ``patch-services.sh`` (the same as ``kubectl patch`` commands)
  and ``report.txt``; the report also on stderr;
- without: the objects and then the Service patches as one multi-document YAML stream
  on stdout, the report on stderr.

Exit codes: 0 when everything was converted and checked; 1 when something could not be
converted (unless ``--allow-partial``), or, always, when the output fails lbroute's
checks or would move a Service's address (it is written all the same, for a look, and
the report says not to apply it).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lbroute.cli.options import filename_option
from lbroute.cli.output import fail
from lbroute.model.errors import LbrouteError, quote
from lbroute.model.files import write_atomic
from lbroute.model.manifests import read_manifests
from lbroute.model.vocabulary import LOADBALANCER_CLASS
from lbroute.model.yamldecode import dump_document

if TYPE_CHECKING:
    from lbroute.convert import Conversion

SOURCES = ("metallb", "purelb")
"""What ``--from`` takes: lbroute.convert.SOURCES (imported only when the command runs)."""


def _stream(documents: list[Any]) -> str:
    return "".join(f"---\n{dump_document(d)}" for d in documents)


def _patch_documents(result: Conversion) -> list[dict[str, Any]]:
    docs = []
    for p in result.services:
        if not p.patch:
            continue
        meta = p.service["metadata"]
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": meta.get("name"),
                    "namespace": meta.get("namespace"),
                    **p.patch["metadata"],
                },
            }
        )
    return docs


def _script(result: Conversion) -> str:
    lines = [
        "#!/bin/sh",
        "# Written by lbroute convert: rename MetalLB/PureLB annotations to lbroute's and pin",
        "# each Service's current address. Run after applying lbroute.yaml.",
        "set -eu",
    ]
    for p in result.services:
        if p.recreate:
            lines.append(
                f"# {p.ref}: recreate it with spec.loadBalancerClass {LOADBALANCER_CLASS} and "
                "these annotations (the class cannot be patched):"
            )
        if p.patch:
            meta = p.service["metadata"]
            patch = json.dumps(p.patch, sort_keys=True, separators=(",", ":"))
            namespace = shlex.quote(str(meta.get("namespace") or "default"))
            lines.append(
                ("# " if p.recreate else "")
                + f"kubectl -n {namespace} patch service {shlex.quote(str(meta.get('name')))} "
                f"--type merge -p {shlex.quote(patch)}"
            )
    return "\n".join(lines) + "\n"


@click.command("convert")
@click.option(
    "--from", "source", type=click.Choice(SOURCES), required=True, help="The tool converted from."
)
@filename_option(
    "YAML file or directory (repeatable): the tool's objects, the cluster's Services and "
    "the Secrets its peers use (kubectl get -A -o yaml ...)."
)
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory to write lbroute.yaml, services.yaml, patch-services.sh and report.txt "
    "into (created); default: YAML on stdout, the report on stderr.",
)
@click.option(
    "--namespace",
    default="lbroute",
    show_default=True,
    help="Namespace of the objects written (where lbroute is installed).",
)
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Exit 0 even when some settings could not be converted (they are in the report); "
    "an output that fails the checks or moves an address still exits 1.",
)
def convert_command(
    source: str, paths: tuple[Path, ...], out_dir: Path | None, namespace: str, allow_partial: bool
) -> None:
    """Convert a MetalLB or PureLB configuration into lbroute's, keeping every address.

    Writes ServiceGroups, Peers, NodeAgents and Secrets, a patch per Service (annotations
    renamed, its current address pinned) and a report of what was converted, what could
    not be and why, and which Services must be recreated. Checks its own output as
    lbroute validate would, and that allocating the patched Services moves no address.
    """
    from lbroute.convert import convert

    manifests = read_manifests(paths)
    for error in manifests.errors:
        click.echo(f"error: {error}", err=True)
    if manifests.errors:
        fail("a file could not be read: nothing converted")
    try:
        result = convert(manifests.objects, source, namespace=namespace)
    except LbrouteError as exc:
        fail(str(exc))
    report = result.report.text()
    patches = _patch_documents(result)
    if out_dir is None:
        click.echo(_stream([*result.objects, *patches]), nl=False)
    else:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(out_dir / "lbroute.yaml", _stream(list(result.objects)), mode=0o600)
            write_atomic(out_dir / "services.yaml", _stream(patches), mode=0o644)
            write_atomic(out_dir / "patch-services.sh", _script(result), mode=0o755)
            write_atomic(out_dir / "report.txt", report, mode=0o644)
        except OSError as exc:
            fail(f"cannot write into {quote(str(out_dir))}: {exc.strerror or exc}")
    click.echo(report, err=True, nl=False)
    refused = len(result.report.refused)
    if result.report.unsafe:
        fail(
            "the converted configuration fails lbroute's checks or moves an address: do not "
            "apply it; see Check above"
        )
    if refused and not allow_partial:
        fail(
            f"{refused} settings could not be converted (see above); fix them in the input, "
            "or pass --allow-partial to accept the output without them"
        )
    where = f"written to {out_dir}" if out_dir is not None else "written to stdout"
    click.echo(
        f"OK: {len(result.objects)} objects and {len(patches)} Service patches {where}; "
        "0 addresses moved",
        err=True,
    )


COMMANDS = (convert_command,)
