"""An app for ``mesh serve tests.support.serve_app:build`` in subprocess tests.

Short instance intervals (so a survivor would notice a dead instance quickly, which the graceful
shutdown test must beat by far), an ``echo`` command and presence tracked in ``room:tracked``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mesh_server import MeshServer


def build() -> MeshServer:
    server = MeshServer(
        port=0,
        instance_heartbeat_interval=0.2,
        instance_ttl=0.6,
        instance_sweep_interval=0.2,
    )

    @server.command("echo")
    async def echo(ctx: Any) -> Any:
        return ctx.payload

    server.track_presence("room:tracked")
    return server


def build_stuck() -> MeshServer:
    """Like :func:`build`, but a connection's cleanup never ends (a graceful shutdown hangs)."""
    server = build()
    never = asyncio.Event()

    @server.on_disconnection
    async def hang(connection: Any) -> None:
        await never.wait()

    return server
