"""``lbroute demo``: the built-in example in a lab of network namespaces (lbroute.demo).

Checks what the lab needs before it starts (the example's files, root, the ``ip``,
``bird`` and ``vtysh`` tools), so that a missing one is one line instead of a half-built
lab. The demo checks the upstream router's table against what examples/lab announces,
so ``--example`` takes examples/lab or a copy of it: a directory without its Nodes and
Services is refused, naming what is missing.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import click

from lbroute.cli.output import fail


@click.command()
@click.option("--example", type=click.Path(path_type=Path, file_okay=False),
              default=Path("examples/lab"), show_default=True,
              help="examples/lab or a copy of it (cluster.yaml and services.yaml): the "
                   "demo checks the upstream's table against what it announces.")  # fmt: skip
def demo(example: Path) -> None:
    """Run the demo lab (needs root): two nodes, an upstream router, the example.

    Builds network namespaces, runs BIRD, FRR and the agent, adds the example Services,
    prints what the upstream router learned, hands a local address over from one node to
    the other, and removes everything again.
    """
    import os
    import shutil

    from lbroute.demo import run_demo

    missing = _missing(example)
    if missing:
        fail(
            f"--example {example}: the demo runs only on examples/lab or a copy of it "
            f"(its verdict expects what that example announces); {missing}"
        )
    if os.geteuid() != 0:
        fail("the demo creates network namespaces and needs root (sudo make demo)")
    for tool in ("ip", "bird", "vtysh"):
        if shutil.which(tool) is None:
            fail(f"{tool} is not installed; run make install (or make demo) first")
    sys.exit(run_demo(example))


def _missing(example: Path) -> str:
    """What ``example`` lacks of examples/lab, in one phrase; empty when nothing."""
    import yaml

    from lbroute.demo import EXPECTED, NODES, REMOVED

    docs: dict[str, list[dict[str, object]]] = {}
    for name in ("cluster.yaml", "services.yaml"):
        path = example / name
        if not path.is_file():
            where = " (run from the repository root)" if example == Path("examples/lab") else ""
            return f"{path} not found{where}"
        try:
            loaded = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            return f"{path} cannot be read: {str(exc).splitlines()[0]}"
        docs[name] = [d for d in loaded if isinstance(d, dict)]
    nodes = {_name(d) for d in docs["cluster.yaml"] if d.get("kind") == "Node"}
    needs = [f"Node {spec.name}" for spec in NODES if spec.name not in nodes]
    services = {
        _name(d): _addresses(d) for d in docs["services.yaml"] if d.get("kind") == "Service"
    }
    if REMOVED not in services:
        needs.append(f"Service {REMOVED}")
    held = [a for addresses in services.values() for a in addresses]
    for prefix in EXPECTED:
        network = ipaddress.ip_network(prefix)
        if not any(a in network for a in held):
            needs.append(f"a Service address in {prefix}")
    if not needs:
        return ""
    return (
        f"it needs, in cluster.yaml, the Nodes {' and '.join(s.name for s in NODES)}, and in "
        f"services.yaml, {REMOVED} and a Service address in each of {', '.join(EXPECTED)}; "
        f"missing: {', '.join(needs)}"
    )


def _name(doc: dict[str, object]) -> str:
    """``name`` of a Node, ``namespace/name`` of a Service (namespace ``default``)."""
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        return ""
    name = str(meta.get("name", ""))
    return name if doc.get("kind") == "Node" else f"{meta.get('namespace', 'default')}/{name}"


def _addresses(
    doc: dict[str, object],
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses in a Service document's ``status.loadBalancer.ingress``."""
    status = doc.get("status")
    lb = status.get("loadBalancer") if isinstance(status, dict) else None
    ingress = lb.get("ingress") if isinstance(lb, dict) else None
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for entry in ingress if isinstance(ingress, list) else []:
        try:
            found.append(ipaddress.ip_address(str(entry.get("ip"))))
        except (AttributeError, ValueError):
            continue
    return found


COMMANDS = (demo,)
