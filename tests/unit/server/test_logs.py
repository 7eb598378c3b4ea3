"""mesh_server.logs: JSON and text formatters, configure_logging, URL redaction, startup fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from mesh_server import MeshServer
from mesh_server._core.lifecycle import startup_fields
from mesh_server.jsonlogs import JsonFormatter
from mesh_server.logs import (
    FIELD_CODE,
    FIELD_CONNECTION_ID,
    FIELD_DURATION_MS,
    TextFormatter,
    configure_logging,
    redact_url,
)


def record(
    message: str = "command %r done",
    *args: object,
    level: int = logging.INFO,
    exc: BaseException | None = None,
    **fields: object,
) -> logging.LogRecord:
    logger = logging.getLogger("mesh_server.test")
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logger.makeRecord(
        logger.name, level, __file__, 1, message, args or ("echo",), exc_info, extra=fields
    )


def failure() -> BaseException:
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        return exc


def test_json_line_has_the_standard_keys_and_the_fields() -> None:
    line = JsonFormatter().format(
        record(**{FIELD_CONNECTION_ID: "conn-1", FIELD_CODE: "ok", FIELD_DURATION_MS: 1.5})
    )
    assert "\n" not in line
    data = json.loads(line)
    assert data.pop("time").endswith("+00:00")
    assert data == {
        "level": "INFO",
        "logger": "mesh_server.test",
        "message": "command 'echo' done",
        "connection_id": "conn-1",
        "code": "ok",
        "duration_ms": 1.5,
    }


def test_json_traceback_only_with_exc_info_and_unencodable_values_as_text() -> None:
    plain = json.loads(JsonFormatter().format(record(level=logging.ERROR)))
    assert "traceback" not in plain
    data = json.loads(JsonFormatter().format(record(exc=failure(), peer=object())))
    assert data["traceback"].startswith("Traceback")
    assert "RuntimeError: boom" in data["traceback"]
    assert data["peer"].startswith("<object object")


def test_text_line_appends_fields_then_the_traceback() -> None:
    formatter = TextFormatter()
    assert formatter.format(record()).endswith("INFO mesh_server.test: command 'echo' done")
    line = formatter.format(record(code="ok", limits={"a": None}))
    assert line.endswith("command 'echo' done code=ok limits={\"a\":null}")
    first, *rest = formatter.format(record(exc=failure(), code="ESERVER")).split("\n")
    assert first.endswith("done code=ESERVER")
    assert rest[0].startswith("Traceback")


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_configure_logging_replaces_handlers_and_sets_the_level(
    root_logger: logging.Logger,
) -> None:
    first = io.StringIO()
    configure_logging("debug", "text", first)
    out = io.StringIO()
    handler = configure_logging("WARNING", "json", out)
    assert root_logger.handlers == [handler]
    assert root_logger.level == logging.WARNING
    log = logging.getLogger("mesh_server.test")
    log.info("hidden")
    log.warning("shown", extra={"code": "E"})
    assert first.getvalue() == ""
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["shown"]
    configure_logging(logging.DEBUG, "text", out)
    assert root_logger.level == logging.DEBUG


@pytest.mark.parametrize(("level", "fmt"), [("loud", "text"), ("info", "xml")])
def test_configure_logging_rejects_unknown_values(
    root_logger: logging.Logger, level: str, fmt: str
) -> None:
    with pytest.raises(ValueError, match="unknown log"):
        configure_logging(level, fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:secret@cache:6380/1", "redis://cache:6380/1"),
        ("rediss://user:secret@cache/2?x=1", "rediss://user@cache/2?x=1"),
        ("redis://u:p@[::1]:7000", "redis://u@[::1]:7000"),
    ],
)
def test_redact_url_drops_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_startup_fields_name_transport_backend_contract_and_limits() -> None:
    server = MeshServer(port=0, max_connections=10, rate_limit=5.0, shutdown_timeout=3.0)
    fields = startup_fields(server._core)
    assert fields["transport"] == "none"  # before start
    assert fields["backend"] == "memory"
    assert fields["contract"] == "none"
    assert fields["listen"] == "ws://127.0.0.1:0"
    limits = fields["limits"]
    assert (limits["max_connections"], limits["rate_limit"]) == (10, 5.0)
    assert limits["shutdown_timeout"] == 3.0
    redis = MeshServer(redis_url="redis://:pw@example:6379/0")
    assert startup_fields(redis._core)["backend"] == "redis://example:6379/0"


async def test_startup_line_of_a_started_server(caplog: pytest.LogCaptureFixture) -> None:
    server = MeshServer(port=0)
    with caplog.at_level(logging.INFO, logger="mesh_server"):
        async with server:
            url = server.url
    (line,) = [r for r in caplog.records if r.getMessage().startswith("Mesh server listening")]
    assert line.getMessage() == f"Mesh server listening on {url}"
    assert line.__dict__["transport"] == "websockets"
    assert line.__dict__["backend"] == "memory"
    assert line.__dict__["instance_id"] == server.instance_id
