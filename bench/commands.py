"""Command throughput: a bare websockets echo server vs MeshServer with an ``echo`` command.

Variants (each in its own subprocess):

* ``bare`` — websockets (asyncio API) + uvloop + orjson: ``async for msg in ws`` → decode →
  encode the response envelope → ``await ws.send``. The floor any framework on websockets pays.
* ``mesh-memory`` — MeshServer, embedded memory backend, ``echo`` command behind a middleware
  chain of 2 (one global sync, one per-command async).
* ``mesh-redis`` — the same on the Redis backend (a private redis-server started here).

Run ``python -m bench commands`` (or ``python -m bench.commands run``) for the table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bench.common import RedisProcess, Row, ServerProcess, print_table, run_loadgen

VARIANTS = ("bare", "mesh-memory", "mesh-redis")


# ------------------------------------------------------------------ servers under test


async def serve_bare(port: int) -> None:
    """The baseline: an idiomatic websockets + orjson echo of the Mesh response envelope."""
    import orjson
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def handler(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                request = orjson.loads(message)
                response = {
                    "id": request.get("id"),
                    "command": request.get("command"),
                    "payload": request.get("payload"),
                }
                await ws.send(orjson.dumps(response), text=True)
        except ConnectionClosed:
            pass

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None) as server:
        print(f"READY {next(iter(server.sockets)).getsockname()[1]}", flush=True)
        await asyncio.Future()


async def serve_mesh(port: int, redis_url: str | None) -> None:
    """MeshServer with an ``echo`` command behind two middleware."""
    from mesh_server import MeshServer

    server = MeshServer(
        port=port,
        redis_url=redis_url,
        ping_interval=3_600_000,
        latency_interval=3_600_000,
    )

    def authenticate_like(ctx: Any) -> None:
        ctx.user = "bench"

    async def audit(ctx: Any) -> None:
        ctx.audited = True

    server.use_middleware(authenticate_like)

    @server.command("echo", middlewares=[audit])
    async def echo(ctx: Any) -> Any:
        return ctx.payload

    await server.start()
    print(f"READY {server.port}", flush=True)
    await asyncio.Future()


def serve(kind: str, port: int, redis_url: str | None) -> None:
    """Run one server under test until terminated."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    else:
        runner = uvloop.run
    if kind == "bare":
        runner(serve_bare(port))
    else:
        runner(serve_mesh(port, redis_url))


# ------------------------------------------------------------------ workload


def run(
    *,
    connections: int = 100,
    duration: float = 5.0,
    repetitions: int = 3,
    warmup: float = 1.0,
    variants: tuple[str, ...] = VARIANTS,
) -> list[Row]:
    """Measure each variant ``repetitions`` times in rotating order and print the table."""
    rows = {name: Row(name) for name in variants}
    redis: RedisProcess | None = RedisProcess().__enter__() if "mesh-redis" in variants else None
    try:
        for rep in range(repetitions):
            order = list(variants[rep % len(variants) :] + variants[: rep % len(variants)])
            for name in order:
                extra = ["--redis-url", redis.url] if name == "mesh-redis" and redis else []
                with ServerProcess("bench.commands", name, "--port", "0", *extra) as proc:
                    result = run_loadgen(
                        proc.url, connections=connections, duration=duration, warmup=warmup
                    )
                rows[name].runs.append(result)
                print(
                    f"  run {rep + 1}/{repetitions} {name:<12} {result['rps']:>9.0f} req/s "
                    f"p50 {result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms",
                    flush=True,
                )
    finally:
        if redis is not None:
            redis.__exit__(None, None, None)
    ordered = [rows[name] for name in variants]
    print_table(
        f"Command throughput: {connections} connections, sequential requests, "
        f"{duration:g} s x {repetitions}",
        ordered,
        baseline="bare",
    )
    return ordered


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI flags shared with ``python -m bench``."""
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--variants", default=",".join(VARIANTS))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument("kind", choices=VARIANTS)
    serve_parser.add_argument("--port", type=int, default=0)
    serve_parser.add_argument("--redis-url")
    run_parser = sub.add_parser("run")
    add_arguments(run_parser)
    args = parser.parse_args(argv)
    if args.action == "serve":
        serve(args.kind, args.port, args.redis_url)
        return
    run(
        connections=args.connections,
        duration=args.duration,
        repetitions=args.repetitions,
        warmup=args.warmup,
        variants=tuple(v for v in args.variants.split(",") if v),
    )


if __name__ == "__main__":
    main(sys.argv[1:])
