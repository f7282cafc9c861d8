"""The ``lbroute`` command: a thin click group; each command hands off to a library.

One module per concern, each a click command (or two that share their work) listed in
its ``COMMANDS``:

- :mod:`~lbroute.cli.render`: ``render`` and ``validate``, from manifests;
- :mod:`~lbroute.cli.run`: ``agent`` and ``allocator``, the long-running parts;
- :mod:`~lbroute.cli.status`: ``status``, the agent's status on this node;
- :mod:`~lbroute.cli.allocate`: ``allocate``, one allocation pass over manifests;
- :mod:`~lbroute.cli.convert`: ``convert``, MetalLB's or PureLB's configuration as
  lbroute's;
- :mod:`~lbroute.cli.demo`: ``demo``, the example in a lab;

below them :mod:`~lbroute.cli.options` (options several commands take, declared once)
and :mod:`~lbroute.cli.output` (messages and exit codes). A new command is a new module
whose ``COMMANDS`` is added to the list at the end of this one. The group itself only
sets up logging (``--log-format``, ``-v``; passwords and keys redacted from every line),
the one place lbroute configures it.

Exit codes: 0 ok, 1 invalid input or an invalid configuration (a message, never a
traceback), 2 usage. Commands import what they run (the agent, the allocator, the
Kubernetes client) only when they run.
"""

from __future__ import annotations

import json
import logging
import sys

import click

from lbroute import __version__
from lbroute.cli import allocate, convert, demo, render, run, status
from lbroute.model.secrets import RedactSecrets


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
    handler.addFilter(RedactSecrets())  # whatever logs it, no password leaves in a log line
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


for _module in (render, run, status, allocate, convert, demo):
    for _command in _module.COMMANDS:
        main.add_command(_command)
