"""Record writes on Redis: commands sent per update and a burst of concurrent writes.

* **Commands per update** — every command the servers send to Redis is seen through
  ``MONITOR`` (commands run *inside* a Lua script are reported by MONITOR as coming from
  ``lua`` and are not counted: only what crosses the network counts). Commands that name a
  record key (``HMGET``/``EVALSHA`` on ``{ns}record:…``) are the write path; the rest
  (heartbeats, presence sweeps, connection registration) are reported apart. Scenarios: one
  writer with one write in flight; 16 writers on one instance; 16 writers over two instances.
  Every write is a ``merge`` of a per-writer counter, so every write changes the record.
  (``INFO commandstats`` cannot tell these apart: it also counts the calls a script makes.)
* **Burst** — 200 connections (100 per instance, two instances on one Redis) each send one
  write of the same record at once; writes/s = 200 / (last acknowledgement − send), and the
  final version must be 200 (0 lost).

Used by :func:`bench.records.run`; ``python -m bench.records writes`` runs only these.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

from bench.channels import WsClient, open_client

_END = "bench-monitor-end"


async def monitored(
    redis_url: str, action: Callable[[], Awaitable[Any]]
) -> tuple[Any, list[tuple[str, ...]]]:
    """Run ``action`` under ``MONITOR``; return its result and the commands clients sent."""
    client = aioredis.from_url(redis_url)
    seen: list[tuple[str, ...]] = []
    try:
        async with client.monitor() as monitor:
            ready = asyncio.get_running_loop().create_future()

            async def collect() -> None:
                ready.set_result(None)
                while True:
                    entry = await monitor.next_command()
                    if entry.get("client_type") == "lua":
                        continue
                    words = tuple(str(entry["command"]).split())
                    if words[:2] == ("ECHO", _END):
                        return
                    seen.append(words)

            collector = asyncio.create_task(collect())
            await ready
            result = await action()
            await client.echo(_END)
            await asyncio.wait_for(collector, 30)
    finally:
        await client.aclose()
    return result, seen


def classify(commands: list[tuple[str, ...]], namespace: str = "mesh:") -> Counter[str]:
    """Count commands by kind: ``record <CMD>`` when they name a record key, else ``other``."""
    counts: Counter[str] = Counter()
    record_prefix = namespace + "record:"
    for words in commands:
        name = words[0].upper() if words else ""
        if name in ("ECHO", "MONITOR"):
            continue
        # MONITOR quotes arguments: HMGET "key" …; EVALSHA "sha" "numkeys" "key" …
        args = [w.strip('"') for w in words[1:4]]
        if any(arg.startswith(record_prefix) for arg in args):
            counts[f"record {name}"] += 1
        else:
            counts[f"other {name}"] += 1
    return counts


def _write_frame(record_id: str, writer: int, seq: int) -> bytes:
    return orjson.dumps(
        {
            "id": seq,
            "command": "mesh/publish-record-update",
            "payload": {
                "recordId": record_id,
                "newValue": {f"w{writer}": seq},
                "options": {"strategy": "merge"},
            },
        }
    )


async def _connect(urls: list[str], count: int) -> list[WsClient]:
    return list(
        await asyncio.gather(
            *(open_client(urls[i % len(urls)], lambda b, s, e: None) for i in range(count))
        )
    )


def _close(clients: list[WsClient]) -> None:
    for client in clients:
        if client.transport is not None:
            client.transport.close()


async def _final_version(url: str, record_id: str) -> int:
    (reader,) = await _connect([url], 1)
    try:
        answer = orjson.loads(
            await reader.request(
                orjson.dumps(
                    {
                        "id": 0,
                        "command": "mesh/subscribe-record",
                        "payload": {"recordId": record_id},
                    }
                )
            )
        )
    finally:
        _close([reader])
    return int(answer["payload"]["version"])


async def commands_per_update(
    urls: list[str], redis_url: str, *, writers: int, writes_each: int
) -> dict[str, Any]:
    """``writers`` connections spread over ``urls``, each writing ``writes_each`` times in turn."""
    record_id = f"bench:cmd:{uuid.uuid4().hex[:8]}"
    clients = await _connect(urls, writers)
    errors = 0

    async def writer(index: int) -> None:
        nonlocal errors
        for seq in range(1, writes_each + 1):
            response = await clients[index].request(_write_frame(record_id, index, seq))
            errors += b'"error"' in response

    async def all_writers() -> None:
        await asyncio.gather(*(writer(i) for i in range(writers)))

    try:
        _, commands = await monitored(redis_url, all_writers)
    finally:
        _close(clients)
    counts = classify(commands)
    writes = writers * writes_each
    record = sum(n for kind, n in counts.items() if kind.startswith("record "))
    version = await _final_version(urls[0], record_id)
    return {
        "writes": writes,
        "errors": errors,
        "lost": writes - errors - version,
        "per_update": record / writes,
        "commands": dict(sorted(counts.items())),
    }


async def burst(urls: list[str], *, writes: int) -> dict[str, Any]:
    """``writes`` connections over ``urls`` each send one write of one record at once."""
    record_id = f"bench:burst:{uuid.uuid4().hex[:8]}"
    clients = await _connect(urls, writes)
    try:
        frames = [_write_frame(record_id, i, 1) for i in range(writes)]
        started = time.perf_counter()
        responses = await asyncio.gather(
            *(client.request(frame) for client, frame in zip(clients, frames, strict=True))
        )
        elapsed = time.perf_counter() - started
    finally:
        _close(clients)
    errors = sum(b'"error"' in response for response in responses)
    version = await _final_version(urls[0], record_id)
    return {
        "writes": writes,
        "errors": errors,
        "seconds": elapsed,
        "writes_per_s": (writes - errors) / elapsed,
        "version": version,
        "lost": writes - errors - version,
    }


def report(
    run: Callable[[Awaitable[Any]], Any], one: list[str], two: list[str], redis_url: str
) -> None:
    """Print commands per update for the three scenarios, then the burst rounds."""
    scenarios = (
        ("1 writer, 1 instance", one, 1, 200),
        ("16 writers, 1 instance", one, 16, 25),
        ("16 writers, 2 instances", two, 16, 25),
    )
    print("\nRedis commands sent per record update (MONITOR; script-internal calls excluded)")
    print(
        f"{'scenario':<26} {'writes':>7} {'lost':>5} {'errors':>7} {'cmds/update':>12}  breakdown"
    )
    for name, urls, writers, each in scenarios:
        result = run(commands_per_update(urls, redis_url, writers=writers, writes_each=each))
        print(
            f"{name:<26} {result['writes']:>7} {result['lost']:>5} {result['errors']:>7} "
            f"{result['per_update']:>12.2f}  {result['commands']}"
        )
    rounds = [run(burst(two, writes=200)) for _ in range(5)]
    rates = sorted(r["writes_per_s"] for r in rounds)
    print("\nBurst: 200 concurrent writes of one record over 2 instances (Redis), 5 rounds")
    print(f"{'round':<6} {'writes/s':>9} {'seconds':>8} {'version':>8} {'lost':>5} {'errors':>7}")
    for index, r in enumerate(rounds, 1):
        print(
            f"{index:<6} {r['writes_per_s']:>9.0f} {r['seconds']:>8.3f} {r['version']:>8} "
            f"{r['lost']:>5} {r['errors']:>7}"
        )
    print(f"median writes/s: {rates[len(rates) // 2]:.0f}")
