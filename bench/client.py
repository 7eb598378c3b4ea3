"""The load generator: picows + uvloop + orjson, in its own process.

``python -m bench.client WORKLOAD --url URL[,URL…] [options]`` drives the servers of
:mod:`bench.servers` (and the Node floor). It must stay much cheaper per message than any server
under test, so frames are never parsed as JSON on the hot path: responses are recognised by
their leading ``{"id"`` and fan-out sequence numbers are read after a fixed marker.

It talks to the orchestrator (:mod:`bench.suite`) over stdout, one line each: ``START`` when the
measured window opens, ``STOP`` when it closes (the orchestrator samples server CPU and Redis
counters at both), then one JSON object with the results. The storm prints ``IDLE`` once every
connection is open and waits for a line on stdin before closing them (the orchestrator reads the
server's RSS in between).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import orjson
from picows import WSError, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.servers import raise_fd_limit, run_loop

TEXT = WSMsgType.TEXT
ASSIGN_ID = b'{"command":"mesh/assign-id"'


#: The load generator's own CPU use over the measured window (cores busy): near 1.0 means the
#: client, not the server, may be the limit.
CLIENT_CPU: list[float] = []


def signal(word: str) -> None:
    """Tell the orchestrator where the measured window is."""
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


def percentile(ordered: list[int], fraction: float) -> float:
    """The ``fraction`` quantile of sorted nanoseconds, in milliseconds."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] / 1e6


class Client(WSListener):
    """One connection: responses (``{"id"…``) resolve :meth:`request` or go to ``on_response``;
    pushes (no ``id``, e.g. ``mesh/assign-id``) are ignored."""

    def __init__(self) -> None:
        self.transport: WSTransport | None = None
        self.on_response: Callable[[bytes], None] | None = None
        self.waiter: asyncio.Future[bytes] | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not TEXT:
            return
        body: bytes = frame.get_payload_as_bytes()
        if body.startswith(b'{"id"'):
            if self.waiter is not None:
                waiter, self.waiter = self.waiter, None
                waiter.set_result(body)
            elif self.on_response is not None:
                self.on_response(body)

    def send(self, payload: bytes) -> None:
        """Send one text frame."""
        assert self.transport is not None
        self.transport.send(TEXT, payload)

    async def request(self, payload: bytes) -> bytes:
        """Send ``payload`` and wait for the next response frame."""
        self.waiter = asyncio.get_running_loop().create_future()
        self.send(payload)
        return await asyncio.wait_for(self.waiter, 30)

    def close(self) -> None:
        """Drop the connection without a closing handshake (the server sees EOF)."""
        if self.transport is not None:
            self.transport.disconnect(graceful=False)


async def connect(url: str) -> Client:
    """Open one connection to ``url``."""
    _, client = await ws_connect(Client, url, websocket_handshake_timeout=30)
    assert isinstance(client, Client)
    return client


async def connect_many(urls: list[str], count: int) -> list[Client]:
    """Open ``count`` connections spread round-robin over ``urls``, 100 handshakes at a time."""
    clients: list[Client] = []
    for start in range(0, count, 100):
        batch = range(start, min(count, start + 100))
        clients += await asyncio.gather(*(connect(urls[i % len(urls)]) for i in batch))
    return clients


def close_all(clients: list[Client]) -> None:
    """Drop every connection."""
    for client in clients:
        client.close()


#: A window stays open until this many operations completed inside it (at most
#: ``MAX_WINDOW_EXTENSION`` seconds more), so a tiny window on a starved machine still measures
#: something: the second one started inside the window, so its server work is inside it too.
MIN_WINDOW_OPS = 2
MAX_WINDOW_EXTENSION = 60.0


async def measure(
    duration: float, warmup: float, recording: list[bool], completed: Callable[[], int]
) -> float:
    """Sleep through the warm-up, then record for ``duration``; return the window's length.

    ``completed`` counts the operations recorded so far; the window is extended until it reaches
    :data:`MIN_WINDOW_OPS` (throughput is computed over the real length, so this is honest).
    """
    await asyncio.sleep(warmup)
    recording[0] = True
    signal("START")
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.sleep(duration)
    extended_until = time.perf_counter() + MAX_WINDOW_EXTENSION
    # Polled: the workloads count completions in plain callbacks on the hot path, where setting an
    # Event per operation would cost more than this rare, bounded extension.
    while completed() < MIN_WINDOW_OPS and time.perf_counter() < extended_until:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    recording[0] = False
    elapsed = time.perf_counter() - started
    CLIENT_CPU.append((time.process_time() - cpu) / elapsed)
    signal("STOP")
    return elapsed


# ------------------------------------------------------------------ workloads


async def echo(urls: list[str], connections: int, duration: float, warmup: float) -> dict[str, Any]:
    """Each connection sends its next ``echo`` request as soon as the previous one is answered."""
    frame = b'{"id":0,"command":"echo","payload":{"text":"hello"}}'
    latencies: list[int] = []
    recording = [False]
    clients = await connect_many(urls, connections)

    def loop(client: Client) -> None:
        sent_at = 0

        def answered(body: bytes) -> None:
            nonlocal sent_at
            now = time.perf_counter_ns()
            if recording[0]:
                latencies.append(now - sent_at)
            sent_at = now
            client.send(frame)

        client.on_response = answered
        sent_at = time.perf_counter_ns()
        client.send(frame)

    for client in clients:
        loop(client)
    elapsed = await measure(duration, warmup, recording, lambda: len(latencies))
    close_all(clients)
    latencies.sort()
    return {
        "ops": len(latencies),
        "seconds": elapsed,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
    }


class Subscriber(Client):
    """A fan-out subscriber: once subscribed, its n-th push is the n-th publish.

    Subscribers send nothing after subscribing and the publisher starts once all are
    subscribed, so pushes are counted in order instead of parsed (the client's hot path).
    """

    def __init__(self, delivered: Callable[[int], None]) -> None:
        super().__init__()
        self.delivered = delivered
        self.subscribed = False
        self.seen = 0

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self.subscribed:
            if frame.msg_type is TEXT:
                # A server that sends mesh/assign-id late (after an asynchronous registration,
                # racing the subscription's response) must not have it counted as the first
                # delivery; it can only precede that delivery, so only that frame is checked.
                if self.seen == 0 and frame.get_payload_as_bytes().startswith(ASSIGN_ID):
                    return
                self.seen += 1
                self.delivered(self.seen)
        else:
            super().on_ws_frame(transport, frame)

    async def subscribe(self, request: bytes) -> None:
        """Send the subscribe request; count pushes from its response on."""
        response = await self.request(request)
        if b'"error"' in response:
            raise RuntimeError(f"subscription failed: {response!r}")
        self.subscribed = True


def record_requests(record_id: str, mode: str) -> tuple[bytes, Callable[[int], bytes]]:
    """Record fan-out: subscribe in ``mode``; write ``seq`` changes one member (version = seq)."""
    subscribe = orjson.dumps(
        {
            "id": 0,
            "command": "mesh/subscribe-record",
            "payload": {"recordId": record_id, "mode": mode},
        }
    )

    def write(seq: int) -> bytes:
        value = {"seq": seq, "name": "bench", "tags": ["a", "b"], "n": 1.5}
        return orjson.dumps(
            {
                "id": seq,
                "command": "mesh/publish-record-update",
                "payload": {"recordId": record_id, "newValue": value},
            }
        )

    return subscribe, write


#: Per fan-out kind: the subscribe request and the publish request of a sequence number.
FANOUT_KINDS: dict[str, tuple[bytes, Callable[[int], bytes]]] = {
    "channel": (
        b'{"id":0,"command":"mesh/subscribe-channel","payload":{"channel":"bench:fanout"}}',
        lambda seq: b'{"id":1,"command":"publish","payload":%d}' % seq,
    ),
    "room": (
        b'{"id":0,"command":"mesh/join-room","payload":{"roomName":"bench"}}',
        lambda seq: b'{"id":1,"command":"broadcast","payload":%d}' % seq,
    ),
}


async def fanout(
    urls: list[str],
    kind: str,
    subscribers: int,
    window: int,
    duration: float,
    warmup: float,
    record: str,
) -> dict[str, Any]:
    """``window`` publishes in flight; one completes when every subscriber got it."""
    if kind in FANOUT_KINDS:
        subscribe, publish = FANOUT_KINDS[kind]
    else:
        subscribe, publish = record_requests(record, kind)
    counts: dict[int, int] = {}
    sent: dict[int, int] = {}
    latencies: list[int] = []
    recording = [False]
    slots = asyncio.Semaphore(window)

    def delivered(seq: int) -> None:
        got = counts.get(seq, 0) + 1
        if got < subscribers:
            counts[seq] = got
            return
        del counts[seq]
        started = sent.pop(seq)
        if recording[0]:
            latencies.append(time.perf_counter_ns() - started)
        slots.release()

    clients: list[Subscriber] = []
    for start in range(0, subscribers, 100):
        batch = range(start, min(subscribers, start + 100))
        opened = await asyncio.gather(
            *(ws_connect(lambda: Subscriber(delivered), urls[i % len(urls)]) for i in batch)
        )
        clients += [cast(Subscriber, client) for _, client in opened]
        await asyncio.gather(*(c.subscribe(subscribe) for c in clients[start:]))
    publisher = await connect(urls[0])

    async def pump() -> None:
        seq = 0
        while True:
            await slots.acquire()
            seq += 1
            sent[seq] = time.perf_counter_ns()
            publisher.send(publish(seq))

    task = asyncio.create_task(pump())
    elapsed = await measure(duration, warmup, recording, lambda: len(latencies))
    task.cancel()
    close_all([*clients, publisher])
    latencies.sort()
    return {
        "publishes": len(latencies),
        "ops": len(latencies) * subscribers,
        "seconds": elapsed,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
    }


async def writes(
    urls: list[str], writers: int, duration: float, warmup: float, record: str
) -> dict[str, Any]:
    """``writers`` connections over ``urls`` each write one record (a ``merge`` of their counter)
    as soon as their previous write is acknowledged; the final version counts lost writes."""
    acked = errors = 0
    inside = 0  # writes both sent and acknowledged inside the window (their commit is in it)
    latencies: list[int] = []
    recording = [False]
    running = True
    clients = await connect_many(urls, writers)

    async def writer(index: int, client: Client) -> None:
        nonlocal acked, errors, inside
        seq = 0
        while running:
            seq += 1
            frame = orjson.dumps(
                {
                    "id": seq,
                    "command": "mesh/publish-record-update",
                    "payload": {
                        "recordId": record,
                        "newValue": {f"w{index}": seq},
                        "options": {"strategy": "merge"},
                    },
                }
            )
            started, began_inside = time.perf_counter_ns(), recording[0]
            response = await client.request(frame)
            if b'"error"' in response:
                errors += 1
                continue
            acked += 1
            if recording[0]:
                latencies.append(time.perf_counter_ns() - started)
                inside += began_inside

    tasks = [asyncio.create_task(writer(i, c)) for i, c in enumerate(clients)]
    elapsed = await measure(duration, warmup, recording, lambda: inside)
    running = False
    await asyncio.gather(*tasks)
    reader = await connect(urls[0])
    answer = orjson.loads(
        await reader.request(
            orjson.dumps(
                {"id": 0, "command": "mesh/subscribe-record", "payload": {"recordId": record}}
            )
        )
    )
    close_all([*clients, reader])
    latencies.sort()
    version = int(answer["payload"]["version"])
    return {
        "ops": len(latencies),
        "seconds": elapsed,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "acked": acked,
        "errors": errors,
        "version": version,
        "lost": acked - version,
    }


async def wait_for_stdin() -> None:
    """Wait for one line on stdin (the orchestrator's "measured, close now")."""
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def storm(
    url: str,
    connections: int,
    in_flight: int,
    hold: Callable[[], Awaitable[None]] | None = wait_for_stdin,
) -> dict[str, Any]:
    """Open ``connections`` with ``in_flight`` handshakes at a time; then hold them idle until
    ``hold`` returns (``None``: close at once)."""
    slots = asyncio.Semaphore(in_flight)
    handshakes: list[int] = []
    failures = 0

    async def one() -> Client | None:
        nonlocal failures
        async with slots:
            started = time.perf_counter_ns()
            try:
                client = await connect(url)
            except (OSError, TimeoutError, WSError):
                failures += 1
                return None
            handshakes.append(time.perf_counter_ns() - started)
            return client

    signal("START")
    started, cpu = time.perf_counter(), time.process_time()
    opened = await asyncio.gather(*(one() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    CLIENT_CPU.append((time.process_time() - cpu) / elapsed)
    signal("IDLE")
    if hold is not None:
        await hold()
    close_all([client for client in opened if client is not None])
    handshakes.sort()
    return {
        "ops": len(handshakes),
        "seconds": elapsed,
        "p50_ms": percentile(handshakes, 0.5),
        "p99_ms": percentile(handshakes, 0.99),
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.client", description=__doc__)
    parser.add_argument("workload", choices=("echo", "fanout", "writes", "storm"))
    parser.add_argument("--url", required=True, help="comma-separated server URLs")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--kind", default="channel", help="channel, room, full or patch")
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--in-flight", type=int, default=200)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--record", default="bench:record")
    args = parser.parse_args(argv)
    raise_fd_limit()
    urls = args.url.split(",")
    work: Any
    if args.workload == "echo":
        work = echo(urls, args.connections, args.duration, args.warmup)
    elif args.workload == "fanout":
        work = fanout(
            urls, args.kind, args.connections, args.window, args.duration, args.warmup, args.record
        )
    elif args.workload == "writes":
        work = writes(urls, args.connections, args.duration, args.warmup, args.record)
    else:
        work = storm(urls[0], args.connections, args.in_flight)
    result: dict[str, Any] = {}

    async def run() -> None:
        result.update(await work)

    run_loop(run())
    result["client_cpu"] = CLIENT_CPU[-1] if CLIENT_CPU else 0.0
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
