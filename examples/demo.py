"""``make demo``: an example Mesh server on the embedded backend and a client tour of its features.

Runs a server on a free loopback port (memory backend, no Redis needed), then two SDK clients
that show commands, middleware, errors, latency, channels with history, rooms with presence and
records; prints what happens and exits. With ``DEMO_SERVE=1`` it serves until Ctrl-C instead and
prints the ``ws://`` URL (port ``DEMO_PORT``, default 8080), for trying it from another client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator
from typing import Any

from mesh_sdk import MeshClient
from mesh_server import ForbiddenError, MeshError, MeshServer

TIMEOUT = 5.0


def build_server(port: int = 0, **options: Any) -> MeshServer:
    """The example application: a few commands, a chat channel, rooms with presence, records."""
    server = MeshServer(port=port, latency_interval=0.3, **options)

    def reject_banned(ctx: Any) -> None:
        # Global middleware: runs before every command, built-ins included (protocol.md §3.4).
        if ctx.command == "mesh/join-room" and ctx.payload.roomName == "room:vip":
            raise ForbiddenError("VIP room: members only")

    server.use_middleware(reject_banned)

    @server.command("echo")
    async def echo(ctx: Any) -> Any:
        return ctx.payload

    @server.command("add")
    def add(ctx: Any) -> Any:
        numbers = ctx.payload.get("numbers", []) if isinstance(ctx.payload, dict) else []
        return {"sum": sum(n for n in numbers if isinstance(n, int | float))}

    @server.command("fail")
    async def fail(ctx: Any) -> Any:
        raise MeshError("this command always fails", code="EDEMO", name="DemoError")

    @server.command("crash")
    async def crash(ctx: Any) -> Any:
        raise RuntimeError("a bug: its text stays in the server log")

    @server.command("chat:send")
    async def chat_send(ctx: Any) -> Any:
        text = str(ctx.payload.get("text", "")) if isinstance(ctx.payload, dict) else ""
        await server.publish_to_channel("chat:lobby", f"{ctx.connection.id[:10]}: {text}", 10)
        return True

    server.expose_channel(re.compile(r"chat:[a-z]+"))
    server.track_presence(re.compile(r"room:.+"))
    server.expose_writable_record(re.compile(r"doc:[a-z0-9]+"))
    return server


def say(text: str) -> None:
    print(text, flush=True)


async def next_item(iterator: AsyncIterator[Any]) -> Any:
    return await asyncio.wait_for(anext(iterator), TIMEOUT)


async def tour(url: str, server: MeshServer) -> None:
    alice = MeshClient(url)
    bob = MeshClient(url)
    await alice.connect()
    await bob.connect()
    say(f"alice connected as {alice.connection_id}")
    say(f"bob   connected as {bob.connection_id}")

    say("\n-- commands")
    say(f"echo {{'hello': 'mesh'}} -> {await alice.command('echo', {'hello': 'mesh'})}")
    say(f"add [1, 2, 39]         -> {await alice.command('add', {'numbers': [1, 2, 39]})}")

    say("\n-- errors")
    for name in ("fail", "crash", "no-such-command"):
        try:
            await alice.command(name, {})
        except MeshError as exc:
            say(f"{name:<16} -> {exc.code} ({exc.name}): {exc.message}")
    try:
        await alice.command("mesh/join-room", {})
    except MeshError as exc:
        say(f"join-room {{}}     -> {exc.code}: {exc.details}")
    try:
        await alice.join_room("room:vip")
    except MeshError as exc:
        say(f"join room:vip    -> {exc.code} ({exc.name}): {exc.message}")

    say("\n-- latency (measured by the server, pushed to the client)")
    for _ in range(100):
        if alice.latency is not None:
            break
        await asyncio.sleep(0.05)
    say(f"alice round trip: {alice.latency} s")

    say("\n-- channels with history")
    await alice.command("chat:send", {"text": "first!"})
    sub = await bob.subscribe_channel("chat:lobby", history_limit=5)
    say(f"bob subscribed; history (newest first): {sub.history}")
    messages = sub.messages()
    await alice.command("chat:send", {"text": "hello bob"})
    say(f"bob received: {await next_item(messages)!r}")

    say("\n-- rooms and presence")
    room = await alice.join_room("room:lobby")
    presence = await alice.subscribe_presence("room:lobby")
    updates = presence.updates()
    say(f"alice joined room:lobby; present: {room.present}")
    await bob.join_room("room:lobby")
    update = await next_item(updates)
    say(f"alice sees: {update.type} {update.connection_id}")
    await bob.publish_presence_state("room:lobby", {"typing": True})
    update = await next_item(updates)
    say(f"alice sees: {update.type} {update.connection_id} {update.state}")
    await server.broadcast_room("room:lobby", "announcement", "welcome to the lobby")
    say(f"members (server side): {sorted(await server.get_room_members('room:lobby'))}")

    say("\n-- records")
    record = await alice.subscribe_record("doc:1", mode="patch")
    changes = record.changes()
    change = await next_item(changes)  # every consumer starts from the state held
    say(f"alice subscribed to doc:1 (patch mode): v{change.version} = {change.value}")
    await bob.publish_record_update("doc:1", {"title": "Hello", "items": [1]})
    change = await next_item(changes)
    say(f"alice: doc:1 v{change.version} = {change.value}")
    await bob.publish_record_update("doc:1", {"title": "Hello, Mesh"}, strategy="merge")
    change = await next_item(changes)
    say(f"alice: doc:1 v{change.version} = {change.value} (patch {change.patch})")

    say("\n-- goodbye")
    await bob.close()
    update = await next_item(updates)
    say(f"alice sees: {update.type} {update.connection_id}")
    await alice.close()


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if os.environ.get("DEMO_SERVE") == "1":
        server = build_server(port=int(os.environ.get("DEMO_PORT", "8080")))
        async with server:
            say(f"Mesh demo server listening on {server.url} (Ctrl-C to stop)")
            await server.serve_forever()
        return
    # The "crash" command's traceback would be logged here; keep the tour's output readable.
    logging.getLogger("mesh_server").setLevel(logging.CRITICAL)
    server = build_server()
    async with server:
        say(f"Mesh demo server on {server.url} (embedded memory backend)\n")
        await tour(server.url, server)
    say("\ndemo finished")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
