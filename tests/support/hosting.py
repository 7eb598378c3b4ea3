"""Start a MeshServer on one of its built-in transports (``websockets`` or ``picows``).

Integration tests written once run on each: the ``transport`` fixture
(``tests/integration/conftest.py``) sets :data:`KIND` for the test, and every server helper
(``running_server``, the feature ``cluster``, the SDK ``mesh``) starts its servers through
:func:`hosted`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mesh_server import MeshServer

TRANSPORTS = ("websockets", "picows")
KIND = "websockets"
"""The transport of the running test (set by the ``transport`` fixture)."""


@asynccontextmanager
async def hosted(kind: str | None = None, **options: Any) -> AsyncIterator[MeshServer]:
    """A started MeshServer on 127.0.0.1 (``port`` 0: any) on ``kind`` (default :data:`KIND`)."""
    options.setdefault("port", 0)
    options.setdefault("transport", kind or KIND)
    server = MeshServer(**options)
    await server.start()
    try:
        yield server
    finally:
        await server.close()
