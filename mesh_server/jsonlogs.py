"""The ``--log-format json`` formatter (python-json-logger), imported only when it is used.

Kept apart from :mod:`mesh_server.logs` so that importing the server does not import a JSON
logging library it may never use.
"""

from __future__ import annotations

from pythonjsonlogger.orjson import OrjsonFormatter

__all__ = ["JsonFormatter"]


class JsonFormatter(OrjsonFormatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` and the fields.

    ``time`` is ISO 8601 in UTC. A record logged with ``exc_info`` also carries ``traceback``
    (the formatted exception). Values that JSON cannot represent are written as their ``str()``.
    """

    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            timestamp="time",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "traceback"},
            json_default=str,
        )
