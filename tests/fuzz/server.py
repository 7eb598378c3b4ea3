"""The fuzzed MeshServer, in its own process: ``python -m tests.fuzz.server [--redis-url URL]``.

Every logger (asyncio's and websockets' included) writes to stderr at INFO, so the suite can
read exactly what an operator would see. Prints ``READY <port> <pid>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
from typing import Any

from mesh_server import MeshServer, ValidationError
from tests.fuzz.frames import LIMITS

CHANNELS = re.compile(r"chat:.{1,100}")


def build(redis_url: str | None) -> MeshServer:
    """The server under test: every feature exposed, echo and publish commands."""
    server = MeshServer(
        port=0,
        redis_url=redis_url,
        ping_interval=10.0,
        latency_interval=5.0,
        presence_sweep_interval=0.2,
        client_metadata_writes=True,
        close_timeout=2.0,
        **LIMITS,
    )

    @server.command("echo")
    async def echo(ctx: Any) -> Any:
        return ctx.payload

    @server.command("publish")
    async def publish(ctx: Any) -> Any:
        payload = ctx.payload
        channel = payload.get("channel") if isinstance(payload, dict) else None
        # An application validates what it hands to the server API (which refuses mesh: names).
        if not isinstance(channel, str) or not CHANNELS.fullmatch(channel):
            raise ValidationError('Invalid payload for "publish"')
        await server.publish_to_channel(payload["channel"], payload.get("message"), history=5)
        return True

    server.expose_channel(CHANNELS)
    server.track_presence(re.compile(r"room:.+"))
    server.expose_record(re.compile(r"test:.+"))
    server.expose_writable_record(re.compile(r"doc:.+"))
    return server


async def main(redis_url: str | None) -> None:
    """Serve until terminated."""
    server = build(redis_url)
    await server.start()
    print(f"READY {server.port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    asyncio.run(main(args.redis_url))
