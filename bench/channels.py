"""Fan-out: one publish → many subscribers (channels, room broadcasts) vs a bare ``broadcast()``.

Variants (each server in its own subprocess; all subscribers and the publisher in one client
subprocess, so the client never shares a CPU with the server under test):

* ``bare`` — websockets (asyncio API) + orjson: a control message makes the server call
  ``websockets.asyncio.server.broadcast`` with the same ``mesh/subscription-message`` frame
  Mesh sends. The floor of any framework on websockets.
* ``mesh-memory`` / ``mesh-redis`` — MeshServer, subscribers use ``mesh/subscribe-channel``; an
  application command ``publish`` calls ``publish_to_channel``.
* ``room-redis-2`` — two MeshServer instances on one Redis; subscribers split over both join a
  room; ``publish`` on instance 1 calls ``broadcast_room`` (one backend message, §13.2).

The client keeps ``--window`` publishes in flight: a publish completes when every subscriber
got it; deliveries/s counts completed publishes × subscribers; latency is publish → last
delivery (p50/p99). Run ``python -m bench channels`` (or ``python -m bench.channels run``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlsplit

from bench.common import ROOT, RedisProcess, ServerProcess, python
from bench.loadgen import RawWsProtocol

VARIANTS = ("bare", "mesh-memory", "mesh-redis", "room-redis-2")
CHANNEL = "bench:fanout"
QUIET = {"ping_interval": 3_600.0, "latency_interval": 3_600.0}  # seconds


# ------------------------------------------------------------------ servers under test


async def serve_bare(port: int) -> None:
    """The baseline: websockets ``broadcast()`` of one pre-encoded frame per publish."""
    import orjson
    from websockets.asyncio.server import ServerConnection, broadcast, serve
    from websockets.exceptions import ConnectionClosed

    subscribers: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                request = orjson.loads(message)
                if request.get("command") == "subscribe":
                    subscribers.add(ws)
                else:
                    frame = orjson.dumps(
                        {
                            "command": "mesh/subscription-message",
                            "payload": {"channel": CHANNEL, "message": str(request["payload"])},
                        }
                    ).decode()
                    broadcast(subscribers, frame)
                await ws.send(orjson.dumps({"id": request.get("id"), "payload": True}).decode())
        except ConnectionClosed:
            pass
        finally:
            subscribers.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None) as server:
        print(f"READY {next(iter(server.sockets)).getsockname()[1]}", flush=True)
        await asyncio.Future()


async def serve_mesh(port: int, redis_url: str | None, mode: str) -> None:
    """MeshServer exposing the channel and a ``publish`` command (channel or room broadcast)."""
    from mesh_server import MeshServer

    server = MeshServer(port=port, redis_url=redis_url, **QUIET)  # type: ignore[arg-type]
    server.expose_channel(CHANNEL)

    @server.command("publish")
    async def publish(ctx: Any) -> bool:
        if mode == "room":
            await server.broadcast_room("bench", "tick", {"n": ctx.payload})
        else:
            await server.publish_to_channel(CHANNEL, str(ctx.payload))
        return True

    await server.start()
    print(f"READY {server.port}", flush=True)
    await asyncio.Future()


def serve(kind: str, port: int, redis_url: str | None, mode: str) -> None:
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
        runner(serve_mesh(port, redis_url, mode))


# ------------------------------------------------------------------ fan-out client


class WsClient(RawWsProtocol):
    """A bare WebSocket client: responses to :meth:`request` go to its waiter, the rest to
    ``on_frame`` (parsed in place: the client must stay much cheaper than the server)."""

    def __init__(
        self, host: str, path: str, on_frame: Callable[[bytearray, int, int], None]
    ) -> None:
        super().__init__(host, path)
        self.on_frame = on_frame
        self.response: asyncio.Future[bytes] | None = None

    def on_text(self, buffer: bytearray, start: int, end: int) -> None:
        if self.response is not None and buffer.startswith(b'{"id"', start):
            waiter, self.response = self.response, None
            waiter.set_result(bytes(buffer[start:end]))
        else:
            self.on_frame(buffer, start, end)

    def send(self, payload: bytes) -> None:
        self.send_frame(payload)

    async def request(self, payload: bytes) -> bytes:
        """Send a request and wait for the next frame starting with ``{"id"``."""
        self.response = asyncio.get_running_loop().create_future()
        self.send(payload)
        return await asyncio.wait_for(self.response, 30)


async def open_client(url: str, on_frame: Callable[[bytearray, int, int], None]) -> WsClient:
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        lambda: WsClient(f"{host}:{port}", split.path or "/", on_frame), host, port
    )
    await conn.ready
    return conn


async def fanout(
    *,
    urls: list[str],
    publish_url: str,
    subscribers: int,
    setup: bytes | None,
    publish: Callable[[int], bytes],
    extract: Callable[[bytearray, int, int], int | None],
    duration: float,
    warmup: float,
    window: int,
) -> dict[str, Any]:
    """Drive ``window`` publishes in flight against ``subscribers`` connections."""
    counts: dict[int, int] = {}
    sent: dict[int, int] = {}
    latencies: list[int] = []
    completed = 0
    recording = False
    slots = asyncio.Semaphore(window)

    def on_frame(buffer: bytearray, start: int, end: int) -> None:
        nonlocal completed
        seq = extract(buffer, start, end)
        if seq is None or seq not in sent:
            return
        got = counts.get(seq, 0) + 1
        if got < subscribers:
            counts[seq] = got
            return
        del counts[seq]
        started = sent.pop(seq)
        if recording:
            latencies.append(time.monotonic_ns() - started)
            completed += 1
        slots.release()

    conns: list[WsClient] = []
    for batch in range(0, subscribers, 100):
        conns += await asyncio.gather(
            *(
                open_client(urls[i % len(urls)], on_frame)
                for i in range(batch, min(subscribers, batch + 100))
            )
        )
    if setup is not None:
        for batch in range(0, subscribers, 100):
            await asyncio.gather(*(conn.request(setup) for conn in conns[batch : batch + 100]))
    publisher = await open_client(publish_url, lambda buffer, start, end: None)

    async def pump() -> None:
        seq = 0
        while True:
            await slots.acquire()
            seq += 1
            sent[seq] = time.monotonic_ns()
            publisher.send(publish(seq))

    task = asyncio.create_task(pump())
    await asyncio.sleep(warmup)
    recording = True
    started = time.perf_counter()
    cpu_started = time.process_time()
    await asyncio.sleep(duration)
    recording = False
    elapsed = time.perf_counter() - started
    client_cpu = (time.process_time() - cpu_started) / elapsed
    task.cancel()
    for conn in [*conns, publisher]:
        if conn.transport is not None:
            conn.transport.close()
    latencies.sort()
    if not latencies:
        raise RuntimeError("no publish completed")
    return {
        "publishes": completed,
        "deliveries_per_s": completed * subscribers / elapsed,
        "publishes_per_s": completed / elapsed,
        "p50_ms": latencies[len(latencies) // 2] / 1e6,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1e6,
        "mean_ms": statistics.fmean(latencies) / 1e6,
        "client_cpu": client_cpu,
    }


def number_after(marker: bytes) -> Callable[[bytearray, int, int], int | None]:
    """Return a parser of the integer following the last ``marker`` of a frame (no JSON)."""
    size = len(marker)

    def extract(buffer: bytearray, start: int, end: int) -> int | None:
        at = buffer.rfind(marker, start, end)
        if at < 0:
            return None
        at += size
        stop = at
        while stop < end and 48 <= buffer[stop] <= 57:
            stop += 1
        return int(buffer[at:stop]) if stop > at else None

    return extract


_channel_seq = number_after(b'"message":"')
_room_seq = number_after(b'"n":')


def client_main(args: argparse.Namespace) -> None:
    """The client subprocess: subscribers + publisher; prints one JSON result line."""
    import orjson

    if args.kind == "bare":
        setup: bytes | None = b'{"id":0,"command":"subscribe","payload":{}}'
        extract = _channel_seq
    elif args.kind.startswith("room"):
        setup = orjson.dumps(
            {"id": 0, "command": "mesh/join-room", "payload": {"roomName": "bench"}}
        )
        extract = _room_seq
    else:
        setup = orjson.dumps(
            {"id": 0, "command": "mesh/subscribe-channel", "payload": {"channel": CHANNEL}}
        )
        extract = _channel_seq

    def publish(seq: int) -> bytes:
        return b'{"id":1,"command":"publish","payload":%d}' % seq

    runner = _runner()
    result = runner(
        fanout(
            urls=args.url.split(","),
            publish_url=args.url.split(",")[0],
            subscribers=args.subscribers,
            setup=setup,
            publish=publish,
            extract=extract,
            duration=args.duration,
            warmup=args.warmup,
            window=args.window,
        )
    )
    print(json.dumps(result), flush=True)


def _runner() -> Callable[[Any], Any]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run
    return uvloop.run


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the processes ``pids`` (Linux ``/proc``)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run_client(
    module: str, kind: str, servers: list[ServerProcess], **options: Any
) -> dict[str, Any]:
    """Run ``python -m <module> client`` against ``servers`` and return its JSON result.

    Adds ``server_cpu``: the servers' CPU use over the whole client run (cores busy).
    """
    args = [python(), "-m", module, "client", kind, "--url", ",".join(s.url for s in servers)]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    pids = [s.proc.pid for s in servers if s.proc is not None]
    cpu, wall = cpu_seconds(pids), time.perf_counter()
    out = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["server_cpu"] = (cpu_seconds(pids) - cpu) / (time.perf_counter() - wall)
    return result


# ------------------------------------------------------------------ workload


def print_rows(title: str, rows: dict[str, list[dict[str, Any]]], baseline: str | None) -> None:
    """Print deliveries/s and publish → last-delivery latency (medians over repetitions)."""

    def median(runs: list[dict[str, Any]], key: str) -> float:
        values = sorted(run[key] for run in runs)
        return float(values[len(values) // 2])

    base = median(rows[baseline], "deliveries_per_s") if baseline in rows else None
    base_p99 = median(rows[baseline], "p99_ms") if baseline in rows else None
    print(f"\n{title}")
    header = (
        f"{'variant':<16} {'deliveries/s':>13} {'publishes/s':>12} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'vs bare':>8} {'p99/bare':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, runs in rows.items():
        dps = median(runs, "deliveries_per_s")
        p99 = median(runs, "p99_ms")
        ratio = f"{dps / base:.0%}" if base else "-"
        p99_ratio = f"{p99 / base_p99:.2f}x" if base_p99 else "-"
        print(
            f"{name:<16} {dps:>13.0f} {median(runs, 'publishes_per_s'):>12.1f} "
            f"{median(runs, 'p50_ms'):>8.2f} {p99:>8.2f} {ratio:>8} {p99_ratio:>9}"
        )
    per_run = ", ".join(
        f"{name}: " + "/".join(f"{r['deliveries_per_s']:.0f}" for r in runs)
        for name, runs in rows.items()
    )
    print(f"(medians; deliveries/s per run: {per_run})")


def run(
    *,
    connections: int | None = None,
    subscribers: int = 1000,
    duration: float = 5.0,
    repetitions: int = 3,
    warmup: float = 1.0,
    window: int = 4,
    variants: tuple[str, ...] = VARIANTS,
) -> dict[str, list[dict[str, Any]]]:
    """Measure each variant ``repetitions`` times in rotating order and print the table.

    ``connections`` (the command benchmark's option under ``python -m bench``) is ignored:
    the fan-out size is ``subscribers``.
    """
    del connections
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    with ExitStack() as stack:
        redis = (
            stack.enter_context(RedisProcess())
            if any("redis" in name for name in variants)
            else None
        )
        for rep in range(repetitions):
            order = list(variants[rep % len(variants) :] + variants[: rep % len(variants)])
            for name in order:
                result = _run_variant(name, redis, subscribers, duration, warmup, window)
                rows[name].append(result)
                print(
                    f"  run {rep + 1}/{repetitions} {name:<14} "
                    f"{result['deliveries_per_s']:>10.0f} deliveries/s "
                    f"p50 {result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms "
                    f"(cpu: server {result['server_cpu']:.0%}, client {result['client_cpu']:.0%})",
                    flush=True,
                )
    print_rows(
        f"Channel fan-out: 1 publish -> {subscribers} subscribers, window {window}, "
        f"{duration:g} s x {repetitions}",
        rows,
        baseline="bare",
    )
    return rows


def _run_variant(
    name: str,
    redis: RedisProcess | None,
    subscribers: int,
    duration: float,
    warmup: float,
    window: int,
) -> dict[str, Any]:
    options = {
        "subscribers": subscribers,
        "duration": duration,
        "warmup": warmup,
        "window": window,
    }
    with ExitStack() as stack:
        if name == "bare":
            servers = [stack.enter_context(ServerProcess("bench.channels", "bare", "--port", "0"))]
        elif name == "mesh-memory":
            servers = [stack.enter_context(ServerProcess("bench.channels", "mesh", "--port", "0"))]
        else:
            assert redis is not None
            count = 2 if name.startswith("room") else 1
            mode = "room" if name.startswith("room") else "channel"
            servers = [
                stack.enter_context(
                    ServerProcess(
                        "bench.channels",
                        "mesh",
                        "--port",
                        "0",
                        "--redis-url",
                        redis.url,
                        "--mode",
                        mode,
                    )
                )
                for _ in range(count)
            ]
        kind = "room" if name.startswith("room") else ("bare" if name == "bare" else "channel")
        return run_client("bench.channels", kind, servers, **options)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI flags of ``run``."""
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--variants", default=",".join(VARIANTS))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument("kind", choices=("bare", "mesh"))
    serve_parser.add_argument("--port", type=int, default=0)
    serve_parser.add_argument("--redis-url")
    serve_parser.add_argument("--mode", choices=("channel", "room"), default="channel")
    client_parser = sub.add_parser("client")
    client_parser.add_argument("kind", choices=("bare", "channel", "room"))
    client_parser.add_argument("--url", required=True)
    client_parser.add_argument("--subscribers", type=int, default=1000)
    client_parser.add_argument("--duration", type=float, default=5.0)
    client_parser.add_argument("--warmup", type=float, default=1.0)
    client_parser.add_argument("--window", type=int, default=4)
    run_parser = sub.add_parser("run")
    add_arguments(run_parser)
    args = parser.parse_args(argv)
    if args.action == "serve":
        serve(args.kind, args.port, args.redis_url, args.mode)
    elif args.action == "client":
        client_main(args)
    else:
        run(
            subscribers=args.subscribers,
            duration=args.duration,
            repetitions=args.repetitions,
            warmup=args.warmup,
            window=args.window,
            variants=tuple(v for v in args.variants.split(",") if v),
        )


if __name__ == "__main__":
    main(sys.argv[1:])
