"""A MeshServer in its own process for tests that kill it: ``python -m tests.support.server_proc``.

Prints ``READY <port> <instance_id>`` once listening, then serves until terminated. Options
select the Redis URL, namespace and short multi-instance intervals.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from mesh_server import MeshServer


def build(args: argparse.Namespace) -> MeshServer:
    server = MeshServer(
        port=0,
        redis_url=args.redis_url,
        namespace=args.namespace,
        ping_interval=args.ping_interval,
        instance_heartbeat_interval=args.heartbeat,
        instance_ttl=args.ttl,
        instance_sweep_interval=args.sweep,
    )

    @server.command("echo")
    async def echo(ctx: Any) -> Any:
        return ctx.payload

    @server.command("set-meta")
    async def set_meta(ctx: Any) -> Any:
        await server.connections.set_metadata(ctx.connection, ctx.payload)
        return True

    server.track_presence("room:tracked")
    return server


async def main(args: argparse.Namespace) -> None:
    server = build(args)
    await server.start()
    print(f"READY {server.port} {server.instance_id}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--namespace", default="mesh:")
    # Durations in seconds, as MeshServer takes them.
    parser.add_argument("--ping-interval", type=float, default=30.0)
    parser.add_argument("--heartbeat", type=float, default=0.2)
    parser.add_argument("--ttl", type=float, default=0.6)
    parser.add_argument("--sweep", type=float, default=0.2)
    asyncio.run(main(parser.parse_args()))
