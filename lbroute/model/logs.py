"""Log lines with fields: what a line is about, as JSON fields with ``--log-format json``.

A log call names what it is about with ``extra=about(...)``: the object
(:class:`~lbroute.model.errors.ObjectRef`, which also fills the field of its kind:
``service``, ``group``, ``peer``, ``agent``, ``node``) and named fields
(``address``, ``interface``, ``router``, ``field``...)::

    log.info("%s: assigned %s", ref, text, extra=about(ref, address=text))

The process says once what every line of it is about (:func:`set_context`: the agent
its ``node``). :class:`JsonFormatter` prints one JSON object per line, with ``time``,
``level``, ``logger``, ``message`` and those fields, so a log pipeline can filter on
``service`` or ``node`` without parsing messages; the plain format prints the message
alone, which already names them. Values are text, cut at :data:`MAX_FIELD` characters.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from lbroute.model.errors import ObjectRef

EXTRA: Final = "lbroute_fields"
"""The attribute of a LogRecord that carries the fields (``extra={EXTRA: {...}}``)."""
MAX_FIELD: Final = 512
KIND_FIELDS: Final = {
    "Service": "service",
    "ServiceGroup": "group",
    "Peer": "peer",
    "NodeAgent": "agent",
    "Node": "node",
    "NodeState": "node",
}
"""The field an object of each kind also fills (``namespace/name``; a Node its name)."""

_context: dict[str, str] = {}


def set_context(**fields: object) -> None:
    """Fields every log line of this process carries (the agent's ``node``)."""
    _context.update({k: _text(v) for k, v in fields.items() if v is not None})


def about(ref: ObjectRef | None = None, **fields: object) -> dict[str, dict[str, str]]:
    """``extra=`` for a log call about ``ref`` and ``fields`` (None values left out)."""
    out: dict[str, str] = {}
    if ref is not None:
        out["object"] = _text(ref)
        key = KIND_FIELDS.get(ref.kind)
        if key is not None:
            out[key] = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
    out.update({k: _text(v) for k, v in fields.items() if v is not None})
    return {EXTRA: out}


def fields_of(record: logging.LogRecord) -> dict[str, str]:
    """The fields of a record: the process's, then the call's."""
    own = getattr(record, EXTRA, None)
    return {**_context, **(own if isinstance(own, dict) else {})}


def _text(value: object) -> str:
    return str(value)[:MAX_FIELD]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)
