"""The ``lbroute`` command: a thin click group; each command hands off to a library.

One module per concern, each a click command (or two that share their work) listed in
its ``COMMANDS``:

- :mod:`~lbroute.cli.render`: ``render`` and ``validate``, from manifests;
- :mod:`~lbroute.cli.run`: ``agent`` and ``allocator``, the long-running parts;
- :mod:`~lbroute.cli.status`: ``status``, the agent's status on this node;
- :mod:`~lbroute.cli.drain`: ``drain`` and ``undrain``, this node by hand;
- :mod:`~lbroute.cli.inspect`: ``inspect`` (``status``, ``services``, ``pools``, ``why``),
  the cluster from a workstation; also the ``kubectl-lbroute`` script (``kubectl lbroute``);
- :mod:`~lbroute.cli.allocate`: ``allocate``, one allocation pass over manifests;
- :mod:`~lbroute.cli.convert`: ``convert``, MetalLB's or PureLB's configuration as
  lbroute's;
- :mod:`~lbroute.cli.demo`: ``demo``, the example in a lab;

below them :mod:`~lbroute.cli.options` (options several commands take, declared once)
and :mod:`~lbroute.cli.output` (messages and exit codes). A new command is a new module
whose ``COMMANDS`` is added to the list at the end of this one. The group itself only
sets up logging (``--log-format``, ``-v``, ``--log-level``; passwords and keys
redacted from every line), the one place lbroute configures it.

Exit codes: 0 ok, 1 invalid input or an invalid configuration (a message, never a
traceback), 2 usage. Commands import what they run (the agent, the allocator, the
Kubernetes client) only when they run.
"""

from __future__ import annotations

import logging
import sys

import click

from lbroute import __version__
from lbroute.cli import allocate, convert, demo, drain, inspect, render, run, status
from lbroute.model.logs import JsonFormatter
from lbroute.model.secrets import RedactSecrets

LEVELS = ("debug", "info", "warning", "error")


def _setup_logging(fmt: str, verbose: int, levels: tuple[str, ...] = ()) -> None:
    """Log lines to stderr, plain or one JSON object each (with the fields of
    lbroute.model.logs); the level from ``-v``, or ``--log-level`` (``LEVEL`` for all,
    ``LOGGER=LEVEL`` for one logger and those below it)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())  # whatever logs it, no password leaves in a log line
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    for level in levels:
        name, _, value = level.rpartition("=")
        logging.getLogger(name or None).setLevel(value.upper())


def _log_level(
    _ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    for level in value:
        name, _, given = level.rpartition("=")
        bad_name = "=" in level and not (name and all(name.split(".")))
        if given.lower() not in LEVELS or bad_name:
            raise click.BadParameter(
                f"{level!r}: expected LEVEL or LOGGER=LEVEL, LEVEL one of {', '.join(LEVELS)} "
                "(for example info, or nodeagent.local=debug)"
            )
    return value


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
@click.option(
    "--log-level",
    "log_levels",
    multiple=True,
    envvar="LBROUTE_LOG_LEVEL",
    callback=_log_level,
    metavar="[LOGGER=]LEVEL",
    help="Log level for all (info) or one logger and those below it (nodeagent.local=debug); "
    "repeatable, overrides -v; $LBROUTE_LOG_LEVEL, separated by spaces, when not given.",
)
def main(log_format: str, verbose: int, log_levels: tuple[str, ...]) -> None:
    """lbroute: LoadBalancer Services on bare metal, announced by BIRD 2 or FRR."""
    _setup_logging(log_format, verbose, log_levels)


for _module in (render, run, status, drain, inspect, allocate, convert, demo):
    for _command in _module.COMMANDS:
        main.add_command(_command)
