"""The servers under test, one per process: ``python -m bench.servers KIND [--redis-url URL]``.

Each prints ``READY <port>`` once it listens on 127.0.0.1 and serves until terminated. Every
kind speaks the same Mesh envelope, so one load generator (:mod:`bench.client`) drives them all:

* ``mesh`` — :class:`~mesh_server.MeshServer` on the memory backend, or on Redis with
  ``--redis-url``; ``--transport`` picks an entry of :data:`MESH_TRANSPORTS` (``uvicorn``:
  :meth:`~mesh_server.MeshServer.asgi_app` under uvicorn, see :func:`serve_asgi`). It exposes an
  ``echo`` command behind two middleware (one global, one per command), the channel
  :data:`CHANNEL`, a ``publish`` command (``publish_to_channel``), a ``broadcast`` command
  (``broadcast_room`` to the room ``bench``) and every ``bench:*`` record as writable.
* ``websockets`` / ``picows`` — bare floors on those libraries (uvloop + orjson): echo of the
  envelope, ``mesh/subscribe-channel`` adds the connection to one set and ``publish`` sends one
  pre-encoded ``mesh/subscription-message`` frame to each member. The bare Node ``ws`` floor
  (``bench/node/server.js``) does the same.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from mesh_server import MeshServer

CHANNEL = "bench:fanout"
ROOM = "bench"
SUBSCRIPTION_MESSAGE = "mesh/subscription-message"

#: MeshServer keyword options per transport name: adding a transport row is one line here.
MESH_TRANSPORTS: dict[str, dict[str, Any]] = {
    "websockets": {},
    "picows": {"transport": "picows"},
    "uvicorn": {},
}
ASGI_SERVERS = frozenset({"uvicorn"})
"""Transports of :data:`MESH_TRANSPORTS` that serve the ASGI application instead of listening."""

# Keepalive and latency probes would only add noise to a measured window (an hour, in seconds).
_QUIET = {"ping_interval": 3_600.0, "latency_interval": 3_600.0}


def raise_fd_limit() -> None:
    """Raise RLIMIT_NOFILE to its hard limit (the connection storm opens thousands of sockets)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def fanout_frame(payload: Any) -> bytes:
    """The ``mesh/subscription-message`` frame a bare floor sends for one ``publish``."""
    return orjson.dumps(
        {"command": SUBSCRIPTION_MESSAGE, "payload": {"channel": CHANNEL, "message": str(payload)}}
    )


def bare_response(request: dict[str, Any], subscribe: Callable[[], None]) -> bytes:
    """Answer one request of a bare floor; ``subscribe`` is called for a channel subscription."""
    command = request.get("command")
    if command == "mesh/subscribe-channel":
        subscribe()
        payload: Any = {"success": True, "history": []}
    elif command == "publish":
        payload = True
    else:
        payload = request.get("payload")
    return orjson.dumps({"id": request.get("id"), "command": command, "payload": payload})


def build_mesh(redis_url: str | None, transport: str = "websockets") -> MeshServer:
    """MeshServer with the workloads' commands, channel and records (see the module docstring).

    Args:
        redis_url: Redis backend URL; ``None``: the memory backend.
        transport: A key of :data:`MESH_TRANSPORTS`.

    Returns:
        The server, not started, on a free port of 127.0.0.1.
    """
    from mesh_server import MeshServer

    server = MeshServer(
        port=0,
        redis_url=redis_url,
        **_QUIET,  # type: ignore[arg-type]
        **MESH_TRANSPORTS[transport],
    )

    def authenticate_like(ctx: Any) -> None:
        ctx.user = "bench"

    async def audit(ctx: Any) -> None:
        ctx.audited = True

    server.use_middleware(authenticate_like)
    server.expose_channel(CHANNEL)
    server.expose_writable_record(re.compile(r"bench:.+"))

    @server.command("echo", middlewares=[audit])
    async def echo(ctx: Any) -> Any:
        return ctx.payload

    @server.command("publish")
    async def publish(ctx: Any) -> bool:
        await server.publish_to_channel(CHANNEL, str(ctx.payload))
        return True

    @server.command("broadcast")
    async def broadcast(ctx: Any) -> bool:
        await server.broadcast_room(ROOM, "tick", {"n": ctx.payload})
        return True

    return server


async def serve_mesh(redis_url: str | None, transport: str) -> None:
    """Start :func:`build_mesh` and serve until terminated."""
    server = build_mesh(redis_url, transport)
    if transport in ASGI_SERVERS:
        await serve_asgi(server)
        return
    await server.start()
    print(f"READY {server.port}", flush=True)
    await asyncio.Future()


async def serve_asgi(server: MeshServer) -> None:
    """Serve ``server.asgi_app()`` with uvicorn on a free port (lifespan on, quiet, no deflate).

    uvicorn's keepalive pings are off and its message limit is the server's, like the native
    transport's settings here; uvicorn picks its websockets sans-I/O protocol.
    """
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        server.asgi_app(),
        lifespan="on",
        log_level="warning",
        access_log=False,
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        ws_max_size=server.limits.max_message_size,
        backlog=1024,
    )
    asgi = uvicorn.Server(config)
    serving = asyncio.ensure_future(asgi.serve(sockets=[sock]))
    while not asgi.started:
        if serving.done():
            serving.result()
            return
        await asyncio.sleep(0.01)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    await serving


async def serve_websockets() -> None:
    """Bare websockets floor: ``async for`` + ``send`` per request, ``broadcast()`` fan-out."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.exceptions import ConnectionClosed

    subscribers: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                request = orjson.loads(message)
                if request.get("command") == "publish":
                    broadcast(subscribers, fanout_frame(request.get("payload")).decode())
                response = bare_response(request, lambda: subscribers.add(ws))
                await ws.send(response, text=True)
        except ConnectionClosed:
            pass
        finally:
            subscribers.discard(ws)

    async with serve(
        handler, "127.0.0.1", 0, compression=None, ping_interval=None, backlog=1024
    ) as server:
        print(f"READY {next(iter(server.sockets)).getsockname()[1]}", flush=True)
        await asyncio.Future()


async def serve_picows() -> None:
    """Bare picows floor: a listener per connection, ``send`` to each subscriber in a loop."""
    from picows import (
        WSFrame,
        WSListener,
        WSMsgType,
        WSTransport,
        WSUpgradeRequest,
        ws_create_server,
    )

    subscribers: set[WSTransport] = set()

    class Listener(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type != WSMsgType.TEXT:
                if frame.msg_type == WSMsgType.CLOSE:
                    transport.send_close(frame.get_close_code())
                    transport.disconnect()
                return
            request = orjson.loads(frame.get_payload_as_memoryview())
            if request.get("command") == "publish":
                message = fanout_frame(request.get("payload"))
                for peer in subscribers:
                    peer.send(WSMsgType.TEXT, message)
            response = bare_response(request, lambda: subscribers.add(transport))
            transport.send(WSMsgType.TEXT, response)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            subscribers.discard(transport)

    def factory(request: WSUpgradeRequest) -> WSListener:
        return Listener()

    server = await ws_create_server(factory, "127.0.0.1", 0, backlog=1024)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop (a ``bench`` extra), as every process of the benchmark does."""
    import uvloop

    uvloop.run(main)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.servers", description=__doc__)
    parser.add_argument("kind", choices=("mesh", "websockets", "picows"))
    parser.add_argument("--redis-url")
    parser.add_argument("--transport", choices=sorted(MESH_TRANSPORTS), default="websockets")
    args = parser.parse_args(argv)
    raise_fd_limit()
    if args.kind == "mesh":
        run_loop(serve_mesh(args.redis_url, args.transport))
    elif args.kind == "websockets":
        run_loop(serve_websockets())
    else:
        run_loop(serve_picows())


if __name__ == "__main__":
    main()
