"""Start a MeshServer on one of its transports: websockets, picows, or ASGI under uvicorn.

Integration tests written once run on each: the ``transport`` fixture
(``tests/integration/conftest.py``) sets :data:`KIND` for the test, and every server helper
(``running_server``, the feature ``cluster``, the SDK ``mesh``) starts its servers through
:func:`hosted`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from mesh_server import MeshServer
from tests.support.timing import TIMEOUT, eventually

TRANSPORTS = ("websockets", "picows", "asgi")
LISTENING = frozenset({"websockets", "picows"})
"""The built-in transports that listen themselves (``MeshServer(transport=kind)``)."""
KIND = "websockets"
"""The transport of the running test (set by the ``transport`` fixture)."""


def bind(port: int = 0) -> socket.socket:
    """A listening-ready TCP socket on 127.0.0.1 (``port`` 0: a free one), reusable at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@asynccontextmanager
async def uvicorn_serving(app: Any, sock: socket.socket, **config: Any) -> AsyncIterator[None]:
    """Serve the ASGI ``app`` with uvicorn on ``sock`` (lifespan on) until the block exits."""
    options: dict[str, Any] = {
        "lifespan": "on",
        "log_config": None,
        "access_log": False,
        "ws_per_message_deflate": False,
        **config,
    }
    server = uvicorn.Server(uvicorn.Config(app, **options))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started or task.done())
        if task.done():
            task.result()
            raise RuntimeError("uvicorn exited during startup")
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 2 * TIMEOUT)


@asynccontextmanager
async def hosted(
    kind: str | None = None, setup: Callable[[MeshServer], None] | None = None, **options: Any
) -> AsyncIterator[MeshServer]:
    """A started MeshServer on 127.0.0.1 (``port`` 0: any) on ``kind`` (default :data:`KIND`).

    ``setup`` configures the server before it starts (clients may connect at once after).
    ``asgi``: the server's :meth:`~MeshServer.asgi_app` under uvicorn, whose lifespan starts and
    closes it; ``server.url`` is uvicorn's address.
    """
    kind = kind or KIND
    options.setdefault("port", 0)
    if kind in LISTENING:
        options.setdefault("transport", kind)
        server = MeshServer(**options)
        if setup is not None:
            setup(server)
        await server.start()
        try:
            yield server
        finally:
            await server.close()
        return
    sock = bind(options["port"])
    options["port"] = sock.getsockname()[1]
    server = MeshServer(**options)
    if setup is not None:
        setup(server)
    async with uvicorn_serving(server.asgi_app(), sock):
        try:
            yield server
        finally:
            await server.close()
