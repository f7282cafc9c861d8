"""``lbroute demo``: the built-in example in a lab of network namespaces (lbroute.demo).

Checks what the lab needs before it starts (root, the ``ip``, ``bird`` and ``vtysh``
tools, the example's files), so that a missing one is one line instead of a half-built
lab.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lbroute.cli.output import fail


@click.command()
@click.option("--example", type=click.Path(path_type=Path, file_okay=False),
              default=Path("examples/lab"), show_default=True,
              help="Directory with cluster.yaml and services.yaml.")  # fmt: skip
def demo(example: Path) -> None:
    """Run the demo lab (needs root): two nodes, an upstream router, the example.

    Builds network namespaces, runs BIRD, FRR and the agent, adds the example Services,
    prints what the upstream router learned, hands a local address over from one node to
    the other, and removes everything again.
    """
    import os
    import shutil

    from lbroute.demo import run_demo

    if os.geteuid() != 0:
        fail("the demo creates network namespaces and needs root (sudo make demo)")
    for tool in ("ip", "bird", "vtysh"):
        if shutil.which(tool) is None:
            fail(f"{tool} is not installed; run make install (or make demo) first")
    for name in ("cluster.yaml", "services.yaml"):
        if not (example / name).is_file():
            fail(f"{example / name} not found; run from the repository root or pass --example")
    sys.exit(run_demo(example))


COMMANDS = (demo,)
