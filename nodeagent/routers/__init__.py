"""The routing daemons: the one place lbroute runs ``bird``, ``birdc``, ``vtysh`` and
``frr-reload.py``.

:func:`check_config` feeds a rendered configuration to the router's real parser and
reports the verdict with the offending lines, so nothing reaches a running router that
its parser rejects. A :class:`RouterDriver` (:class:`BirdDriver`, :class:`FrrDriver`;
:func:`make_driver` picks one) makes a configuration the running one: parse it, write
it atomically, load it, and when the router refuses it, put the previous file back and
keep (or re-apply) the previous configuration. A refusal is a returned
:class:`ApplyResult`, never an exception; its :class:`Outcome` tells a rejected text from
one the router took but does not run exactly, and from a router that did not answer.

Inside, one module per concern::

    driver        the interface (RouterDriver, ApplyResult, Outcome, Session), the file
                  handling and redaction every driver shares
    check         the parsers as a check (check_config, ParseResult) and finding a tool
    bird          BirdDriver, and the parsers of birdc's replies
    frr           FrrDriver
    frr_sessions  the parsers of vtysh's JSON session reports
    frr_delta     the FRR text delta: pure functions on configuration text
    process       running one tool: the only module here that imports subprocess
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lbroute.model.api import Mode, Router
from lbroute.model.errors import RouterError
from nodeagent.routers.bird import BirdDriver
from nodeagent.routers.check import check_config
from nodeagent.routers.driver import ApplyResult, Outcome, RouterDriver, Session
from nodeagent.routers.frr import FrrDriver

__all__ = [
    "ApplyResult",
    "BirdDriver",
    "FrrDriver",
    "Outcome",
    "RouterDriver",
    "Session",
    "check_config",
    "make_driver",
]


def make_driver(
    router: Router,
    *,
    config_path: Path,
    socket_path: Path,
    mode: Mode = Mode.MANAGED,
    include_path: Path | None = None,
    reload_command: Sequence[str] = (),
    replace_host_config: bool = True,
) -> RouterDriver:
    """The driver for ``router``; for FRR ``socket_path`` is the vty socket directory.
    ``replace_host_config``: see :class:`BirdDriver`."""
    if router is Router.BIRD:
        return BirdDriver(
            config_path,
            socket_path,
            mode=mode,
            include_path=include_path,
            reload_command=reload_command,
            replace_host_config=replace_host_config,
        )
    if mode is Mode.INCLUDE:
        raise RouterError("include mode is for BIRD 2; FRR has no include directive")
    return FrrDriver(config_path, socket_path)
