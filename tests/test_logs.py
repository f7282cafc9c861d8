"""Log lines with fields (lbroute.model.logs): with ``--log-format json`` what a line is
about comes out as JSON fields a log pipeline can filter on, not only in the message."""

from __future__ import annotations

import json
import logging

import pytest

from lbroute.model import logs
from lbroute.model.errors import ObjectRef
from lbroute.model.logs import JsonFormatter, about, set_context

WEB = ObjectRef(kind="Service", namespace="default", name="web")


def _line(message: str, *args: object, **kwargs: object) -> dict[str, object]:
    record = logging.getLogger("lbroute.test").makeRecord(
        "lbroute.test", logging.INFO, __file__, 1, message, args, None,
        extra=kwargs.get("extra"),  # type: ignore[arg-type]
    )  # fmt: skip
    out = json.loads(JsonFormatter().format(record))
    assert isinstance(out, dict)
    return out


@pytest.fixture(autouse=True)
def _no_context() -> None:
    logs._context.clear()


def test_a_line_about_a_service_carries_it_and_its_fields() -> None:
    line = _line("%s: assigned %s", WEB, "192.0.2.10", extra=about(WEB, address="192.0.2.10"))
    assert line["message"] == "Service default/web: assigned 192.0.2.10"
    assert line["service"] == "default/web"
    assert line["object"] == "Service default/web"
    assert line["address"] == "192.0.2.10"
    assert line["level"] == "info" and line["logger"] == "lbroute.test"


@pytest.mark.parametrize(
    ("kind", "namespace", "field", "value"),
    [
        ("ServiceGroup", "lbroute", "group", "lbroute/web"),
        ("Peer", "lbroute", "peer", "lbroute/web"),
        ("NodeAgent", "lbroute", "agent", "lbroute/web"),
        ("Node", "", "node", "web"),
    ],
)
def test_each_kind_fills_its_own_field(kind: str, namespace: str, field: str, value: str) -> None:
    ref = ObjectRef(kind=kind, namespace=namespace, name="web")
    assert _line("x", extra=about(ref))[field] == value


def test_the_process_context_is_on_every_line_and_a_call_may_say_more() -> None:
    set_context(node="node-a", router=None)
    assert _line("plain")["node"] == "node-a"
    assert "router" not in _line("plain"), "None values are left out"
    line = _line("x", extra=about(interface="eth0", field=None))
    assert (line["node"], line["interface"]) == ("node-a", "eth0")
    assert "field" not in line


def test_fields_never_replace_the_line_s_own_keys_and_are_bounded() -> None:
    line = _line("the message", extra=about(message="forged", level="forged", big="x" * 5000))
    assert (line["message"], line["level"]) == ("the message", "info")
    assert len(str(line["big"])) == logs.MAX_FIELD


def test_the_cli_s_json_format_prints_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    from lbroute.cli import _setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        _setup_logging("json", 1)
        logging.getLogger("allocator.writer").info(
            "%s: released %s", WEB, "192.0.2.10", extra=about(WEB, address="192.0.2.10")
        )
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["service"] == "default/web" and line["address"] == "192.0.2.10"


def test_log_levels_per_run_and_per_logger() -> None:
    from lbroute.cli import _setup_logging

    root = logging.getLogger()
    local = logging.getLogger("nodeagent.local")
    saved = root.handlers[:], root.level, local.level
    try:
        _setup_logging("plain", 0, ("error", "nodeagent.local=debug"))
        assert root.level == logging.ERROR
        assert logging.getLogger("nodeagent.local.runner").getEffectiveLevel() == logging.DEBUG
        assert logging.getLogger("allocator").getEffectiveLevel() == logging.ERROR
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        local.setLevel(saved[2])


@pytest.mark.parametrize("bad", ["loud", "nodeagent..local=debug", "=debug", "x=verbose"])
def test_a_bad_log_level_is_a_usage_error_saying_what_is_valid(bad: str) -> None:
    from click.testing import CliRunner

    from lbroute.cli import main

    result = CliRunner().invoke(main, ["--log-level", bad, "status", "--help"])
    assert result.exit_code == 2
    assert "expected LEVEL or LOGGER=LEVEL, LEVEL one of debug, info, warning, error" in (
        result.output
    )
