"""Record fan-out and concurrent writes (protocol.md §11).

Workloads (servers in subprocesses, clients in another subprocess, see :mod:`bench.channels`):

* **fan-out** — one writer updates a small object (``mesh/publish-record-update``, ``--window``
  writes in flight), ``--subscribers`` connections subscribed in ``full`` or ``patch`` mode on
  one instance, memory and Redis: updates/s, deliveries/s, write → last delivery p50/p99.
* **concurrent writes** — ``--writers`` connections split over two instances on one Redis write
  one record (``merge`` of a per-writer counter) as fast as they are acknowledged; the final
  version must equal the number of acknowledged writes (0 lost).
* **write path** — Redis commands sent per update (1 writer; 16 writers on one instance; 16
  writers over two instances) and a burst of 200 concurrent writes over two instances, see
  :mod:`bench.record_writes`.

Run ``python -m bench records`` (or ``python -m bench.records run``);
``python -m bench.records writes`` runs only the write-path measurements (~10 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import uuid
from contextlib import ExitStack
from typing import Any

from bench import record_writes
from bench.channels import (
    QUIET,
    WsClient,
    number_after,
    open_client,
    print_rows,
    run_client,
)
from bench.channels import fanout as run_fanout
from bench.common import RedisProcess, ServerProcess

FANOUT_VARIANTS = ("memory-full", "memory-patch", "redis-full", "redis-patch")


# ------------------------------------------------------------------ server under test


async def serve_mesh(port: int, redis_url: str | None) -> None:
    """MeshServer with every ``bench:*`` record writable."""
    from mesh_server import MeshServer

    server = MeshServer(port=port, redis_url=redis_url, **QUIET)  # type: ignore[arg-type]
    server.expose_writable_record(re.compile(r"bench:.+"))
    await server.start()
    print(f"READY {server.port}", flush=True)
    await asyncio.Future()


def serve(port: int, redis_url: str | None) -> None:
    """Run one server until terminated."""
    _runner()(serve_mesh(port, redis_url))


def _runner() -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run
    return uvloop.run


# ------------------------------------------------------------------ clients


def fanout_client(args: argparse.Namespace) -> None:
    """Subscribers in ``args.kind`` mode + one writer; prints one JSON result line."""
    import orjson

    record_id = args.record
    setup = orjson.dumps(
        {
            "id": 0,
            "command": "mesh/subscribe-record",
            "payload": {"recordId": record_id, "mode": args.kind},
        }
    )

    def write(seq: int) -> bytes:
        # Each write changes one member: a one-operation patch, version == seq.
        return orjson.dumps(
            {
                "id": seq,
                "command": "mesh/publish-record-update",
                "payload": {
                    "recordId": record_id,
                    "newValue": {"seq": seq, "name": "bench", "tags": ["a", "b"], "n": 1.5},
                },
            }
        )

    urls = args.url.split(",")
    result = _runner()(
        run_fanout(
            urls=urls,
            publish_url=urls[0],
            subscribers=args.subscribers,
            setup=setup,
            publish=write,
            extract=number_after(b'"version":'),
            duration=args.duration,
            warmup=args.warmup,
            window=args.window,
        )
    )
    result["updates_per_s"] = result["publishes_per_s"]
    print(json.dumps(result), flush=True)


async def concurrent_writes(
    urls: list[str], writers: int, duration: float, record_id: str
) -> dict[str, Any]:
    """Writers spread over ``urls`` write one record until ``duration`` ends."""
    import orjson

    acked = 0
    errors = 0
    running = True

    class Writer:
        def __init__(self, index: int) -> None:
            self.index = index
            self.count = 0
            self.conn: WsClient | None = None

        def frame(self) -> bytes:
            self.count += 1
            return orjson.dumps(
                {
                    "id": self.count,
                    "command": "mesh/publish-record-update",
                    "payload": {
                        "recordId": record_id,
                        "newValue": {f"w{self.index}": self.count},
                        "options": {"strategy": "merge"},
                    },
                }
            )

    async def loop(writer: Writer) -> None:
        nonlocal acked, errors
        writer.conn = await open_client(urls[writer.index % len(urls)], lambda b, s, e: None)
        while running:
            response = await writer.conn.request(writer.frame())
            if b'"error"' in response:
                errors += 1
            else:
                acked += 1

    pool = [Writer(index) for index in range(writers)]
    tasks = [asyncio.create_task(loop(writer)) for writer in pool]
    started = time.perf_counter()
    await asyncio.sleep(duration)
    running = False
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    reader = await open_client(urls[0], lambda b, s, e: None)
    answer = orjson.loads(
        await reader.request(
            orjson.dumps(
                {"id": 0, "command": "mesh/subscribe-record", "payload": {"recordId": record_id}}
            )
        )
    )
    for writer in pool:
        if writer.conn is not None and writer.conn.transport is not None:
            writer.conn.transport.close()
    version = answer["payload"]["version"]
    return {
        "writes": acked,
        "errors": errors,
        "writes_per_s": acked / elapsed,
        "version": version,
        "lost": acked - version,
    }


def writes_client(args: argparse.Namespace) -> None:
    """The concurrent-writes client subprocess; prints one JSON result line."""
    result = _runner()(
        concurrent_writes(args.url.split(","), args.writers, args.duration, args.record)
    )
    print(json.dumps(result), flush=True)


# ------------------------------------------------------------------ workload


def run(
    *,
    connections: int | None = None,
    subscribers: int = 1000,
    writers: int = 20,
    duration: float = 5.0,
    repetitions: int = 3,
    warmup: float = 1.0,
    window: int = 4,
    variants: tuple[str, ...] = FANOUT_VARIANTS,
) -> None:
    """Run the three record workloads and print their tables.

    ``connections`` (the command benchmark's option under ``python -m bench``) is ignored:
    the fan-out size is ``subscribers``.
    """
    del connections
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    with RedisProcess() as redis:
        for rep in range(repetitions):
            order = list(variants[rep % len(variants) :] + variants[: rep % len(variants)])
            for name in order:
                backend, mode = name.split("-")
                extra = ["--redis-url", redis.url] if backend == "redis" else []
                with ServerProcess("bench.records", "mesh", "--port", "0", *extra) as server:
                    result = run_client(
                        "bench.records",
                        mode,
                        [server],
                        subscribers=subscribers,
                        duration=duration,
                        warmup=warmup,
                        window=window,
                        record=f"bench:fan:{uuid.uuid4().hex[:8]}",
                    )
                rows[name].append(result)
                print(
                    f"  run {rep + 1}/{repetitions} {name:<13} "
                    f"{result['updates_per_s']:>7.0f} updates/s "
                    f"{result['deliveries_per_s']:>9.0f} deliveries/s "
                    f"p50 {result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms "
                    f"(cpu: server {result['server_cpu']:.0%}, client {result['client_cpu']:.0%})",
                    flush=True,
                )
        print_rows(
            f"Record fan-out: 1 writer -> {subscribers} subscribers, window {window}, "
            f"{duration:g} s x {repetitions} (publishes/s = updates/s)",
            rows,
            baseline=None,
        )
        write_runs = []
        for _ in range(repetitions):
            with ExitStack() as stack:
                servers = [
                    stack.enter_context(
                        ServerProcess(
                            "bench.records", "mesh", "--port", "0", "--redis-url", redis.url
                        )
                    )
                    for _ in range(2)
                ]
                result = run_client(
                    "bench.records",
                    "writes",
                    servers,
                    writers=writers,
                    duration=duration,
                    record=f"bench:w:{uuid.uuid4().hex[:8]}",
                )
            write_runs.append(result)
        print(f"\nConcurrent writes: {writers} writers over 2 instances (Redis), one record")
        print(f"{'run':<5} {'writes/s':>10} {'acked':>8} {'version':>8} {'lost':>5} {'errors':>7}")
        for index, result in enumerate(write_runs, 1):
            print(
                f"{index:<5} {result['writes_per_s']:>10.0f} {result['writes']:>8} "
                f"{result['version']:>8} {result['lost']:>5} {result['errors']:>7}"
            )
        write_path(redis)


def write_path(redis: RedisProcess) -> None:
    """Commands per update and the 200-write burst, on two fresh Redis instances."""
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                ServerProcess("bench.records", "mesh", "--port", "0", "--redis-url", redis.url)
            )
            for _ in range(2)
        ]
        record_writes.report(_runner(), [servers[0].url], [s.url for s in servers], redis.url)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument("kind", choices=("mesh",))
    serve_parser.add_argument("--port", type=int, default=0)
    serve_parser.add_argument("--redis-url")
    client_parser = sub.add_parser("client")
    client_parser.add_argument("kind", choices=("full", "patch", "writes"))
    client_parser.add_argument("--url", required=True)
    client_parser.add_argument("--record", required=True)
    client_parser.add_argument("--subscribers", type=int, default=1000)
    client_parser.add_argument("--writers", type=int, default=20)
    client_parser.add_argument("--duration", type=float, default=5.0)
    client_parser.add_argument("--warmup", type=float, default=1.0)
    client_parser.add_argument("--window", type=int, default=4)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--subscribers", type=int, default=1000)
    run_parser.add_argument("--writers", type=int, default=20)
    run_parser.add_argument("--duration", type=float, default=5.0)
    run_parser.add_argument("--repetitions", type=int, default=3)
    run_parser.add_argument("--warmup", type=float, default=1.0)
    run_parser.add_argument("--window", type=int, default=4)
    run_parser.add_argument("--variants", default=",".join(FANOUT_VARIANTS))
    sub.add_parser("writes")
    args = parser.parse_args(argv)
    if args.action == "writes":
        with RedisProcess() as redis:
            write_path(redis)
    elif args.action == "serve":
        serve(args.port, args.redis_url)
    elif args.action == "client":
        if args.kind == "writes":
            writes_client(args)
        else:
            fanout_client(args)
    else:
        run(
            subscribers=args.subscribers,
            writers=args.writers,
            duration=args.duration,
            repetitions=args.repetitions,
            warmup=args.warmup,
            window=args.window,
            variants=tuple(v for v in args.variants.split(",") if v),
        )


if __name__ == "__main__":
    main(sys.argv[1:])
