"""Structured logging through stdlib :mod:`logging`: formatters, ``mesh serve`` setup, field names.

The server logs through ``logging.getLogger("mesh_server")`` (and children) and attaches its
structured fields to records with ``extra=``, so any handler an application installs sees them
as record attributes. :func:`configure_logging` installs one handler on the root logger with
one of two formatters (``mesh serve --log-format``):

* ``json`` (:class:`mesh_server.jsonlogs.JsonFormatter`, imported only when used): one JSON
  object per line with ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, every
  structured field of the record and, for a real server bug, ``traceback``.
* ``text`` (:class:`TextFormatter`): ``time level logger: message`` followed by the fields as
  ``key=value`` (values other than text as JSON), and the traceback on the following lines.

Field names (the ``FIELD_*`` constants) are stable: log pipelines may key on them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import IO, Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import orjson

__all__ = [
    "FIELD_CLOSE_CODE",
    "FIELD_CODE",
    "FIELD_COMMAND",
    "FIELD_CONNECTION_ID",
    "FIELD_DURATION_MS",
    "FIELD_INSTANCE_ID",
    "FIELD_PEER",
    "FIELD_REQUEST_ID",
    "LOG_FORMATS",
    "LogFormat",
    "TextFormatter",
    "configure_logging",
    "format_fields",
    "record_fields",
    "redact_url",
]

FIELD_INSTANCE_ID: Final = "instance_id"
"""The server instance (protocol.md §13)."""
FIELD_CONNECTION_ID: Final = "connection_id"
"""The connection (protocol.md §5.2)."""
FIELD_COMMAND: Final = "command"
"""The command name of a request."""
FIELD_REQUEST_ID: Final = "request_id"
"""The request id as the client sent it (JSON text)."""
FIELD_CODE: Final = "code"
"""A request's outcome: ``"ok"`` or the error code (protocol.md §4)."""
FIELD_DURATION_MS: Final = "duration_ms"
"""Time from the start of the pipeline to the encoded response, in milliseconds (float)."""
FIELD_CLOSE_CODE: Final = "close_code"
"""The WebSocket close code of a connection (protocol.md §16)."""
FIELD_PEER: Final = "peer"
"""The client's ``host:port``."""

LogFormat = Literal["json", "text"]
"""A ``--log-format`` value."""
LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("json", "text")

# The attributes every LogRecord has; anything else on a record came from ``extra=``.
_RESERVED: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The attributes ``extra=`` put on ``record`` (everything not a standard attribute)."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _RESERVED and not key.startswith("_")
    }


class TextFormatter(logging.Formatter):
    """Readable lines: ``time level logger: message key=value …`` (then any traceback)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Format the record, appending its structured fields as ``key=value`` pairs."""
        text = super().format(record)
        fields = record_fields(record)
        if not fields:
            return text
        line, newline, rest = text.partition("\n")
        return f"{line} {format_fields(fields)}{newline}{rest}"


def configure_logging(
    level: str | int = "info", log_format: LogFormat = "text", stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record to ``stream`` (default stderr) in ``log_format`` (``mesh serve``).

    Replaces the root logger's handlers, so calling it again reconfigures rather than
    duplicating lines.

    Args:
        level: A level name (``"debug"``, ``"info"``, …, any case) or number.
        log_format: ``"json"`` or ``"text"``.
        stream: Where to write (default: ``sys.stderr``).

    Returns:
        The installed handler.

    Raises:
        ValueError: An unknown level or format.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r} (expected json or text)")
    if isinstance(level, str):
        number = logging.getLevelNamesMapping().get(level.upper())
        if number is None:
            raise ValueError(f"unknown log level {level!r}")
        level = number
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if log_format == "json":
        from mesh_server.jsonlogs import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def redact_url(url: str) -> str:
    """Return ``url`` without its password (``redis://user:secret@host`` → ``redis://user@host``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def format_fields(fields: Mapping[str, Any]) -> str:
    """Render ``fields`` as ``key=value`` pairs; values other than text are written as JSON."""
    return " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()
