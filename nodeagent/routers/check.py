"""The routers' own parsers as a check: nothing reaches a running router that its
parser rejects.

:func:`check_config` feeds a rendered configuration to the router's real parser
(``bird -p -c``, ``vtysh --dryrun -f``) in a temporary directory and reports the
parser's verdict as a :class:`ParseResult`, with the offending line and the lines
around it when the parser names one; passwords and keys in what it says and in those
lines are redacted (:func:`lbroute.model.secrets.redact`), wherever it is shown.
``lbroute validate``, the golden tests and both drivers use it. :func:`tool` finds a
router's tool, or says how to install it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lbroute.model.api import Mode, Router
from lbroute.model.errors import RouterToolMissing
from lbroute.model.secrets import redact
from nodeagent.routers.process import run

PARSE_TIMEOUT = 30.0


@dataclass(frozen=True, kw_only=True)
class ParseResult:
    ok: bool
    output: str
    """What the parser said."""
    line: int | None = None
    """Offending line in the checked text, when the parser names one."""
    context: str = ""
    """The offending line with a few lines around it, numbered."""

    def describe(self) -> str:
        if self.ok:
            return "OK"
        text = self.output.strip() or "rejected"
        return f"{text}\n{self.context}" if self.context else text


def tool(name: str, *fallbacks: str) -> str:
    for candidate in (name, *fallbacks):
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    raise RouterToolMissing(
        f"{name} not found; install the router (Debian: apt-get install bird2 frr "
        "frr-pythontools) or put it on PATH"
    )


def check_config(router: Router, text: str, mode: Mode = Mode.MANAGED) -> ParseResult:
    """Run the real parser of ``router`` on ``text``."""
    if router is Router.BIRD:
        return _check_bird(text, mode)
    return _check_frr(text)


def _check_bird(text: str, mode: Mode) -> ParseResult:
    bird = tool("bird", "/usr/sbin/bird")
    with tempfile.TemporaryDirectory(prefix="lbroute-check-") as tmp:
        conf = Path(tmp) / "lbroute.conf"
        conf.write_text(text, encoding="utf-8")
        main = conf
        if mode is Mode.INCLUDE:
            # An include fragment needs a host configuration around it.
            main = Path(tmp) / "host.conf"
            main.write_text(
                f'router id 192.0.2.1;\nprotocol device {{}}\ninclude "{conf}";\n',
                encoding="utf-8",
            )
        proc = run([bird, "-p", "-c", str(main)], PARSE_TIMEOUT)
        output = proc.output.replace(str(conf), "<config>")
        output = output.replace(str(main), "<host config>")
    if proc.returncode == 0:
        return ParseResult(ok=True, output=redact(output))
    m = re.search(r"<config>:(\d+):", output)
    return _rejected(output, text, int(m.group(1)) if m else None)


def _check_frr(text: str) -> ParseResult:
    vtysh = tool("vtysh", "/usr/bin/vtysh")
    with tempfile.TemporaryDirectory(prefix="lbroute-check-") as tmp:
        conf = Path(tmp) / "frr.conf"
        conf.write_text(text, encoding="utf-8")
        proc = run([vtysh, "--dryrun", "-f", str(conf)], PARSE_TIMEOUT)
    output = proc.output.replace(str(conf), "<config>")
    if proc.returncode == 0 and "% " not in output:
        return ParseResult(ok=True, output=redact(output))
    m = re.search(r"line (\d+):", output)
    return _rejected(output, text, int(m.group(1)) if m else None)


def _rejected(output: str, text: str, line: int | None) -> ParseResult:
    """The parser's refusal, what it said and the lines around ``line`` redacted."""
    return ParseResult(
        ok=False, output=redact(output), line=line, context=redact(context(text, line))
    )


def context(text: str, line: int | None, around: int = 2) -> str:
    """Line ``line`` of ``text`` marked with ``>``, with ``around`` lines either side,
    numbered; "" when there is no line."""
    if line is None:
        return ""
    lines = text.splitlines()
    lo, hi = max(1, line - around), min(len(lines), line + around)
    return "\n".join(
        f"{'>' if n == line else ' '} {n:5d} | {lines[n - 1]}" for n in range(lo, hi + 1)
    )
