"""The ASGI adapter: Mesh as an ASGI 3 application (uvicorn, FastAPI, Starlette).

:meth:`MeshServer.asgi_app() <mesh_server.MeshServer.asgi_app>` returns an :class:`AsgiApp` on an
:class:`AsgiTransport`; the ASGI server owns the socket, the HTTP parser and the WebSocket
framing, and the adapter meets the seam (:mod:`mesh_server.transport.base`) on top:

* ``lifespan``: ``startup`` starts the server, ``shutdown`` closes it (protocol.md §5.3). Mounted
  apps get no lifespan events from FastAPI or Starlette: pass ``server.lifespan`` to the outer
  app instead (``FastAPI(lifespan=server.lifespan)``). Until the server is started every request
  is answered ``503``.
* ``websocket``: the scope becomes an :class:`~mesh_server.transport.base.UpgradeRequest` (full
  ``path``, query, headers, cookies, client) for the ``authenticate`` hook; a refusal is sent with
  its status through the "WebSocket Denial Response" extension when the ASGI server offers it
  (uvicorn does), else as ``websocket.close`` before accept, which the server answers ``403``.
  The handshake, hooks included, is bounded by the open timeout. Then one
  :class:`~mesh_server.transport.asgi_connection.AsgiConnection` per socket.
* ``http``: the core's ``on_http`` hook (health endpoints) sees the path relative to the mount
  point (``root_path`` stripped); anything it does not answer gets ``404``.

What differs from the native adapter, because ASGI does not expose it: no listen backlog, no
permessage-deflate choice and no frame-size limit before a message is read (both are the ASGI
server's options: run uvicorn with ``--ws-per-message-deflate false`` and ``--ws-max-size`` at
most the server's ``max_message_size``); the outbound bound counts what ``send()`` has not
accepted (see :mod:`~mesh_server.transport.asgi_connection`); and uvicorn's own shutdown closes
open WebSockets with ``1012`` before the lifespan shutdown runs (each still gets the full cleanup
of protocol.md §5.3).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from websockets.datastructures import Headers

from mesh_server.transport.asgi_connection import AsgiConnection, Receive, Scope, Send
from mesh_server.transport.base import (
    Accept,
    HttpResponse,
    TransportHooks,
    UpgradeDecision,
    UpgradeRequest,
)

__all__ = ["AsgiApp", "AsgiConnection", "AsgiTransport"]

_log = logging.getLogger("mesh_server.transport.asgi")

_DENIAL = "websocket.http.response"
_NOT_STARTED = HttpResponse.text(503, "Service Unavailable: the Mesh server is not serving")


def _request(scope: Scope, path: str) -> UpgradeRequest:
    headers = Headers(
        [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
    )
    client = scope.get("client")
    return UpgradeRequest(
        path,
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        peer=(str(client[0]), int(client[1])) if client else None,
        method=scope.get("method", "GET"),
    )


def _route_path(scope: Scope) -> str:
    # The path below the mount point: Starlette keeps the full path and extends root_path.
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def _headers(answer: HttpResponse) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", answer.content_type.encode("latin-1")),
        (b"content-length", str(len(answer.body)).encode("ascii")),
        *(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in answer.headers
        ),
    ]


class AsgiTransport:
    """The seam's transport for ASGI servers: no listener, requests come from :class:`AsgiApp`.

    Args:
        max_message_size: Inbound message limit in bytes (larger → close 1009, protocol.md §2).
        open_timeout: Seconds allowed for the opening handshake, hooks included (``None``: no
            limit).
        close_timeout: Seconds queued frames may take to leave before a close drops them, and
            :meth:`close` waits for each connection.
        port: The port the ASGI server listens on, as configured (informational: the ASGI
            server owns the socket).
    """

    def __init__(
        self,
        *,
        max_message_size: int,
        open_timeout: float | None = 10.0,
        close_timeout: float = 10.0,
        port: int = 0,
    ) -> None:
        self.max_message_size = max_message_size
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.live: set[AsgiConnection] = set()
        """Connections from ``websocket.accept`` to disconnect."""
        self._port = port
        self._hooks: TransportHooks | None = None
        self._deciding: set[asyncio.Task[UpgradeDecision]] = set()
        self._text_of: bytes | None = None
        self._text = ""
        self._warned = False
        self._stopped = False

    async def start(self, hooks: TransportHooks) -> None:
        """Route requests to ``hooks`` from now on."""
        self._hooks = hooks

    @property
    def port(self) -> int:
        """The configured port of the ASGI server."""
        return self._port

    async def close(self) -> None:
        """Refuse new requests, close open connections with 1001 and wait for them."""
        self._hooks = None
        self._stopped = True
        connections = list(self.live)
        for connection in connections:
            connection.start_close(1001, "server shutdown")
        if connections:
            await asyncio.wait(
                [asyncio.ensure_future(c.wait_closed()) for c in connections],
                timeout=self.close_timeout,
            )
        for task in list(self._deciding):  # handshakes in progress: stop waiting for hooks
            task.cancel()

    def text(self, frame: bytes) -> str:
        """Return ``frame`` as ``str`` for ``websocket.send``, decoded once per fan-out."""
        if frame is not self._text_of:
            self._text_of = frame
            self._text = frame.decode()
        return self._text

    def hooks_or_warn(self) -> TransportHooks | None:
        """The core's hooks, or ``None`` while the server is not started (logged once) or closed."""
        hooks = self._hooks
        if hooks is None and not self._warned and not self._stopped:
            self._warned = True
            _log.error(
                "request refused: the Mesh server is not started (run the app with ASGI lifespan "
                "events, or pass server.lifespan to FastAPI/Starlette when mounting it)"
            )
        return hooks

    # ------------------------------------------------------------------ websocket scope

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run one ``websocket`` scope: handshake (protocol.md §5.1), then the connection."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        hooks = self.hooks_or_warn()
        if hooks is None:
            await self._deny(scope, send, _NOT_STARTED)
            return
        request = _request(scope, scope["path"])
        decision = await self._decide(hooks, request)
        if isinstance(decision, HttpResponse):
            await self._deny(scope, send, decision)
            return
        await send({"type": "websocket.accept"})
        connection = AsgiConnection(self, request, decision.value, receive, send)
        self.live.add(connection)
        reader = asyncio.ensure_future(connection.read())
        try:
            try:
                await hooks.on_connect(connection)
            except Exception:
                _log.exception("connection handler failed")
                connection.start_close(1011, "internal error")
            await connection.wait_closed()
        finally:
            reader.cancel()
            await connection.finish()
            self.live.discard(connection)

    async def _decide(self, hooks: TransportHooks, request: UpgradeRequest) -> UpgradeDecision:
        try:
            decision = hooks.on_upgrade(request)
        except Exception:
            _log.exception("upgrade hook failed")
            return HttpResponse.text(500, "Internal Server Error")
        if isinstance(decision, Accept | HttpResponse):
            return decision
        task = asyncio.ensure_future(decision)
        self._deciding.add(task)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # arrives together with the decision (python/cpython#86296).
            async with asyncio.timeout(self.open_timeout):
                return await task
        except TimeoutError:
            _log.debug("opening handshake timed out")
            return HttpResponse.text(503, "Service Unavailable")
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return HttpResponse.text(503, "Service Unavailable")  # close() stopped the hook
        except Exception:
            _log.exception("upgrade hook failed")
            return HttpResponse.text(500, "Internal Server Error")
        finally:
            self._deciding.discard(task)

    async def _deny(self, scope: Scope, send: Send, answer: HttpResponse) -> None:
        if _DENIAL in scope.get("extensions", {}):
            start = {"type": "websocket.http.response.start", "status": answer.status}
            await send({**start, "headers": _headers(answer)})
            await send({"type": "websocket.http.response.body", "body": answer.body})
        else:  # ASGI without the extension can only refuse with 403
            await send({"type": "websocket.close"})

    # ------------------------------------------------------------------ http scope

    async def http(self, scope: Scope, send: Send) -> None:
        """Answer a plain request: the core's ``on_http`` hook, else ``404``."""
        hooks = self.hooks_or_warn()
        answer = (
            _NOT_STARTED if hooks is None else hooks.on_http(_request(scope, _route_path(scope)))
        )
        if answer is None:
            answer = HttpResponse.text(404, "Not Found")
        start = {"type": "http.response.start", "status": answer.status}
        await send({**start, "headers": _headers(answer)})
        await send({"type": "http.response.body", "body": answer.body})


class AsgiApp:
    """The ASGI 3 application: ``lifespan``, ``websocket`` and ``http`` scopes.

    Args:
        transport: The transport the server was given.
        startup: Awaited on ``lifespan.startup`` (starts the server).
        shutdown: Awaited on ``lifespan.shutdown`` (closes the server).
    """

    def __init__(
        self,
        transport: AsgiTransport,
        startup: Callable[[], Awaitable[None]],
        shutdown: Callable[[], Awaitable[None]],
    ) -> None:
        self.transport = transport
        self._startup = startup
        self._shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI scope."""
        kind = scope["type"]
        if kind == "websocket":
            await self.transport.websocket(scope, receive, send)
        elif kind == "http":
            await self.transport.http(scope, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            startup = message["type"] == "lifespan.startup"
            step = "startup" if startup else "shutdown"
            run = self._startup if startup else self._shutdown
            try:
                await run()
            except Exception as exc:
                _log.exception("Mesh server %s failed", step)
                await send({"type": f"lifespan.{step}.failed", "message": str(exc)})
                return
            await send({"type": f"lifespan.{step}.complete"})
            if step == "shutdown":
                return
