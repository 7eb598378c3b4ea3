"""Redis-specific behaviour of RedisBackend against a real private redis-server."""

from __future__ import annotations

import asyncio
import re
from importlib import resources
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from mesh_sdk.protocol.codec import dumps, loads
from mesh_server.backends.messages import (
    decode_envelope,
    inbox_channel,
    presence_channel,
    record_channel,
)
from mesh_server.backends.redis.scripts import SCRIPT_NAMES, script_source
from tests.support.redis import RedisServer
from tests.support.timing import eventually
from tests.unit.backends.redis.conftest import NS, StartBackend

pytestmark = pytest.mark.redis

HANDSHAKE = {"info", "hello", "client|setinfo", "client", "select"}
"""Inspection and connection set-up commands, not per-operation costs."""
SCRIPT_INTERNAL = {"hget", "hset", "hdel", "publish", "sadd", "srem", "del", "exists"}


async def commandstats(client: aioredis.Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in stats.items()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    changed = {name: calls - before.get(name, 0) for name, calls in after.items()}
    return {name: calls for name, calls in changed.items() if calls and name not in HANDSHAKE}


# ---------------------------------------------------------------------- scripts


def test_every_script_has_a_keys_and_argv_header() -> None:
    lua = resources.files("mesh_server.backends.redis") / "lua"
    names = sorted(p.name.removesuffix(".lua") for p in lua.iterdir() if p.name.endswith(".lua"))
    assert names == sorted([*SCRIPT_NAMES, "lib"])
    for name in SCRIPT_NAMES:
        text = (lua / f"{name}.lua").read_text()
        header = "".join(line for line in text.splitlines(True) if line.startswith("--"))
        assert re.search(r"KEYS\[1\]", header), name
        assert re.search(r"ARGV\[1\] = namespace", header), name
        assert script_source(name).startswith("-- Shared prelude")


async def test_scripts_are_loaded_at_start(start_backend: StartBackend, plain_redis: Any) -> None:
    await start_backend()
    from hashlib import sha1

    shas = [sha1(script_source(name).encode()).hexdigest() for name in SCRIPT_NAMES]
    assert all(await plain_redis.script_exists(*shas))


async def test_script_flush_then_operations_reload(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, inbox = await start_backend()
    await backend.register_connection("c1")
    await plain_redis.script_flush()
    result = await backend.join_room("room", "c1", 60_000)
    assert result.present == ["c1"]
    assert await backend.send_to_connection("c1", b"frame")
    header, body = decode_envelope(await inbox.next(inbox_channel(NS, backend.instance_id)))
    assert (header, body) == ({"t": "send", "c": "c1"}, b"frame")


# ---------------------------------------------------------------------- command costs


async def test_record_update_costs_one_command(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, _ = await start_backend()
    await backend.write_record("r", {"a": 1})  # warm the pool and the record cache
    before = await commandstats(plain_redis)
    write = await backend.write_record("r", {"b": 2}, "merge")
    after = await commandstats(plain_redis)
    assert (write.changed, write.version, write.value) == (True, 2, {"a": 1, "b": 2})
    # The script's own HMGET, HSET and PUBLISH are counted too: no HMGET was sent before it.
    assert delta(before, after) == {"evalsha": 1, "hmget": 1, "hset": 1, "publish": 1}


async def test_unchanged_record_write_reads_once_and_publishes_nothing(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, _ = await start_backend()
    await backend.write_record("r", [1, 2])
    before = await commandstats(plain_redis)
    write = await backend.write_record("r", [1, 2])
    after = await commandstats(plain_redis)
    assert (write.changed, write.version) == (False, 1)
    assert delta(before, after) == {"hmget": 1}


async def test_send_to_connection_is_one_command(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, _ = await start_backend()
    await backend.register_connection("c1")
    await backend.send_to_connection("c1", b"warm")
    before = await commandstats(plain_redis)
    assert await backend.send_to_connection("c1", b"x")
    after = await commandstats(plain_redis)
    costs = delta(before, after)
    assert {name: n for name, n in costs.items() if name not in SCRIPT_INTERNAL} == {"evalsha": 1}
    before = await commandstats(plain_redis)
    assert not await backend.send_to_connection("nobody", b"x")
    assert delta(before, await commandstats(plain_redis)) == {"evalsha": 1, "hget": 1}


async def test_broadcast_is_one_publish(start_backend: StartBackend, plain_redis: Any) -> None:
    backend, inbox = await start_backend()
    before = await commandstats(plain_redis)
    await backend.broadcast(b"hi", room="r", exclude=["a", "b"])
    assert delta(before, await commandstats(plain_redis)) == {"publish": 1}
    header, body = decode_envelope(await inbox.next(NS + "broadcast"))
    assert (header, body) == ({"t": "bc", "r": "r", "x": ["a", "b"]}, b"hi")


# ---------------------------------------------------------------------- pub/sub


async def test_external_publish_on_app_channel_reaches_handler(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, inbox = await start_backend()
    await backend.subscribe("notifications:global")
    await plain_redis.publish("notifications:global", "from redis-cli")
    assert await inbox.next("notifications:global") == b"from redis-cli"


async def test_publish_right_after_subscribe_is_received(start_backend: StartBackend) -> None:
    backend, inbox = await start_backend()
    other, _ = await start_backend()
    for index in range(20):
        channel = f"chan:{index}"
        await backend.subscribe(channel)
        await other.publish_channel(channel, f"m{index}")
        assert await inbox.next(channel) == f"m{index}".encode()


async def test_unsubscribe_is_issued(start_backend: StartBackend, plain_redis: Any) -> None:
    backend, _ = await start_backend()
    await backend.subscribe("chat:1")
    assert b"chat:1" in await plain_redis.pubsub_channels()
    await backend.unsubscribe("chat:1")
    assert b"chat:1" not in await plain_redis.pubsub_channels()
    await backend.unsubscribe("chat:1")  # idempotent


async def test_messages_arrive_in_publication_order(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, inbox = await start_backend()
    await backend.subscribe("ordered")
    for index in range(200):
        await plain_redis.publish("ordered", str(index))
    received = [int(await inbox.next("ordered")) for _ in range(200)]
    assert received == list(range(200))


async def test_failing_handler_does_not_stop_the_reader(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, inbox = await start_backend()
    calls: list[bytes] = []

    def handler(channel: str, data: bytes) -> None:
        calls.append(data)
        if data == b"boom":
            raise RuntimeError("handler bug")
        inbox(channel, data)

    backend._require_subscriber()._handler = handler
    await backend.subscribe("c")
    await plain_redis.publish("c", "boom")
    await plain_redis.publish("c", "ok")
    assert await inbox.next("c") == b"ok"
    assert calls == [b"boom", b"ok"]


# ---------------------------------------------------------------------- event bytes


NASTY = ['a/b"c\\d', "ünï€ode", "tab\tnew\nline\x01", "7:8", "", "1:"]


async def test_presence_events_are_byte_compatible(start_backend: StartBackend) -> None:
    backend, inbox = await start_backend()
    for room in NASTY:
        for conn in NASTY[:3]:
            channel = presence_channel(NS, room)
            await backend.subscribe(channel)
            await backend.join_room(room, conn, 60_000)
            await backend.set_presence_state(room, conn, {"n": 1.5, "e": [], "o": {}, "s": "/"})
            await backend.leave_room(room, conn)
            for kind in ("join", "state", "leave"):
                data = await inbox.next(channel)
                event = loads(data)
                assert (event["type"], event["connectionId"], event["roomName"]) == (
                    kind,
                    conn,
                    room,
                )
                assert isinstance(event["timestamp"], int)
                assert data == dumps(event), data
            assert event["type"] == "leave"


async def test_state_json_is_embedded_verbatim(start_backend: StartBackend) -> None:
    backend, inbox = await start_backend()
    channel = presence_channel(NS, "r")
    await backend.subscribe(channel)
    await backend.join_room("r", "c", 60_000)
    state = {"big": 12345678901234567890, "empty": [], "obj": {}, "f": 1e300, "neg": -0.5}
    await backend.set_presence_state("r", "c", state)
    await inbox.next(channel)  # join
    data = await inbox.next(channel)
    assert dumps(state) in data
    assert loads(data)["state"] == state
    snapshot = await backend.presence_snapshot("r")
    assert snapshot.states == {"c": state}


async def test_record_events_are_byte_compatible(start_backend: StartBackend) -> None:
    backend, inbox = await start_backend()
    record_id = 'doc/"1"'
    channel = record_channel(NS, record_id)
    await backend.subscribe(channel)
    write = await backend.write_record(record_id, {"x": [1, {"y": None}], "ü": True})
    data = await inbox.next(channel)
    assert data == dumps(
        {
            "t": "update",
            "recordId": record_id,
            "version": 1,
            "value": write.value,
            "patch": write.patch,
        }
    )
    assert await backend.delete_record(record_id) == 1
    assert await inbox.next(channel) == dumps({"t": "deleted", "recordId": record_id, "version": 1})
    assert await backend.get_record(record_id) == (None, 0)


# ---------------------------------------------------------------------- presence expiry


async def test_deadline_entries_are_unambiguous(start_backend: StartBackend) -> None:
    backend, inbox = await start_backend()
    pairs = [("1:", "x"), ("1", ":x"), ("12:ab", "c"), ("1", "2:abc")]
    for room, conn in pairs:
        await backend.subscribe(presence_channel(NS, room))
        await backend.join_room(room, conn, 50)
    for room, _ in pairs:
        event = loads(await inbox.next(presence_channel(NS, room)))
        assert event["type"] == "join"

    async def swept() -> bool:
        await backend.sweep_presence()
        return not [
            (room, cid)
            for room, cid in pairs
            if cid in (await backend.presence_snapshot(room)).present
        ]

    await eventually(swept)
    leaves = set()
    for room, _ in pairs:
        leave = loads(await inbox.next(presence_channel(NS, room)))
        assert leave["type"] == "leave"
        leaves.add((leave["roomName"], leave["connectionId"]))
    assert leaves == set(pairs)
    for room, conn in pairs:
        assert await backend.is_in_room(room, conn)  # expiry never ends membership


async def test_concurrent_sweeps_publish_each_expiry_once(start_backend: StartBackend) -> None:
    nodes = [await start_backend() for _ in range(4)]
    watcher, inbox = nodes[0]
    channel = presence_channel(NS, "busy")
    await watcher.subscribe(channel)
    conns = [f"c{i}" for i in range(30)]
    for conn in conns:
        await watcher.join_room("busy", conn, 100)
    counts: list[int] = []

    async def all_swept() -> bool:
        counts.extend(await asyncio.gather(*(node.sweep_presence() for node, _ in nodes)))
        return not (await watcher.presence_snapshot("busy")).present

    await eventually(all_swept)
    assert sum(counts) == len(conns)
    await watcher.publish(channel, b"end")
    events = []
    while (data := await inbox.next(channel)) != b"end":
        events.append(loads(data))
    assert sorted(e["connectionId"] for e in events if e["type"] == "leave") == sorted(conns)
    assert len(events) == 2 * len(conns)


async def test_sweep_handles_more_than_one_batch(start_backend: StartBackend) -> None:
    backend, _ = await start_backend(sweep_batch=3)
    for index in range(10):
        await backend.join_room("r", f"c{index}", 1)

    async def all_gone() -> bool:
        await backend.sweep_presence()
        return not (await backend.presence_snapshot("r")).present

    await eventually(all_gone)


# ---------------------------------------------------------------------- records


async def test_contended_writes_keep_versions_contiguous(start_backend: StartBackend) -> None:
    nodes = [await start_backend() for _ in range(3)]
    watcher, inbox = nodes[0]
    await watcher.subscribe(record_channel(NS, "counter"))

    async def writer(index: int) -> None:
        backend = nodes[index % len(nodes)][0]
        await backend.write_record("counter", {f"k{index}": index}, "merge")

    await asyncio.gather(*(writer(i) for i in range(30)))
    value, version = await watcher.get_record("counter")
    assert version == 30
    assert value == {f"k{i}": i for i in range(30)}
    versions = [
        loads(await inbox.next(record_channel(NS, "counter")))["version"] for _ in range(30)
    ]
    assert versions == list(range(1, 31))


async def test_write_deadline_under_endless_conflicts(
    start_backend: StartBackend, redis_url: str
) -> None:
    from mesh_sdk.protocol.errors import UnavailableError

    backend, _ = await start_backend(operation_timeout=0.2)
    await backend.write_record("r", 1)
    other_writer = redis.Redis.from_url(redis_url)
    attempts: list[Any] = []

    def conflicting(value: Any) -> None:
        # Another writer commits between our read and our commit, every time.
        attempts.append(value)
        other_writer.hincrby(f"{NS}record:r", "n", 1)

    try:
        with pytest.raises(UnavailableError):
            await backend.write_record("r", 2, validate=conflicting)
    finally:
        other_writer.close()
    assert len(attempts) > 1


# ---------------------------------------------------------------------- instances


async def test_heartbeat_reports_lost_registration(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, _ = await start_backend()
    assert await backend.heartbeat(10_000)
    await plain_redis.delete(f"{NS}instance:{backend.instance_id}:hb")
    assert not await backend.heartbeat(10_000)
    assert await backend.heartbeat(10_000)
    await plain_redis.srem(f"{NS}instances", backend.instance_id)
    assert not await backend.heartbeat(10_000)
    assert await plain_redis.pttl(f"{NS}instance:{backend.instance_id}:hb") > 0


async def test_dead_instance_claimed_by_exactly_one(start_backend: StartBackend) -> None:
    dead, _ = await start_backend()
    await dead.register_connection("d1", {"u": 1})
    await dead.join_room("room", "d1", 60_000)
    await dead.heartbeat(1)
    survivors = [await start_backend() for _ in range(3)]
    watcher, inbox = survivors[0]
    await watcher.subscribe(presence_channel(NS, "room"))
    reports: list[Any] = []

    async def claimed() -> bool:
        for result in await asyncio.gather(*(s.sweep_dead_instances() for s, _ in survivors)):
            reports.extend(result)
        return bool(reports)

    await eventually(claimed)
    assert [(r.instance_id, r.connection_ids) for r in reports] == [(dead.instance_id, ["d1"])]
    leave = loads(await inbox.next(presence_channel(NS, "room")))
    assert (leave["type"], leave["connectionId"]) == ("leave", "d1")
    assert await watcher.connection_instance("d1") is None
    assert await watcher.get_connection_metadata("d1") is None
    assert await watcher.room_members("room") == []
    assert not await dead.heartbeat(10_000)  # it must fence itself


async def test_reregister_connections(start_backend: StartBackend, plain_redis: Any) -> None:
    backend, _ = await start_backend()
    await backend.reregister_connections({"a": {"role": "x"}, "b": None})
    assert sorted(await backend.get_all_connection_metadata()) == ["a", "b"]
    assert await backend.get_all_connection_metadata() == {"a": {"role": "x"}, "b": None}
    assert await backend.connection_instance("a") == backend.instance_id


# ---------------------------------------------------------------------- no KEYS


async def test_full_workload_uses_no_keys_or_config(
    start_backend: StartBackend, redis_server: RedisServer
) -> None:
    a, _ = await start_backend()
    b, _ = await start_backend()
    await a.register_connection("c1", {"x": 1})
    await b.register_connection("c2")
    await a.join_room("r", "c1", 60_000)
    await b.join_room("r", "c2", None)
    await a.set_presence_state("r", "c1", {"s": 1}, expire_after_ms=10)
    await a.refresh_presence("c1", [("r", 60_000)])
    await a.sweep_presence()
    await a.presence_snapshot("r")
    await a.set_connection_metadata("c1", {"y": 2}, "deepMerge")
    await a.set_room_metadata("r", {"t": 1}, "merge")
    await a.get_all_room_metadata()
    await a.get_all_connection_metadata()
    await a.all_rooms()
    await a.publish_channel("chan", "m", history=5)
    await a.channel_history("chan", 5)
    await a.write_record("rec", {"v": 1})
    await a.delete_record("rec")
    await a.send_to_connection("c2", b"x")
    await a.broadcast(b"x")
    await a.sweep_dead_instances()
    await a.clear_room("r")
    await b.unregister_connection("c2", [])
    await a.heartbeat(5000)
    stats = redis_server.info_commandstats()
    assert "keys" not in stats
    assert "config" not in stats
    assert "scan" not in stats


# ---------------------------------------------------------------------- declared KEYS

NO_KEY = {"time", "publish"}
ALL_KEYS = {"del", "exists"}
DYNAMIC_KEY = re.compile(rf"^{NS}(conn:[^:]+:rooms|room:[^:]+:(members|presence|states))$")
"""The per-connection and per-room keys scripts documented as dynamic may derive."""


def script_headers() -> dict[str, str]:
    from hashlib import sha1

    lua = resources.files("mesh_server.backends.redis") / "lua"
    return {
        sha1(script_source(name).encode()).hexdigest(): (lua / f"{name}.lua").read_text()
        for name in SCRIPT_NAMES
    }


async def test_scripts_touch_only_declared_keys(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    a, _ = await start_backend()
    b, _ = await start_backend()
    commands: list[dict[str, Any]] = []

    async def workload() -> None:
        await a.register_connection("c1", {"x": 1})
        await b.register_connection("c2")
        await a.join_room("r", "c1", 60_000)
        await a.join_registered("r", "c2", 60_000)
        await b.join_room("u", "c2", None)
        await a.set_presence_state("r", "c1", {"s": 1}, expire_after_ms=1)
        await a.refresh_presence("c1", [("r", 60_000), ("u", 60_000)])
        await a.clear_presence_state("r", "c2")
        await a.leave_room("u", "c2")
        await a.set_connection_metadata("c1", {"y": 2}, "deepMerge")
        await a.publish_channel("chan", "m", history=5)
        await a.write_record("rec", {"v": 1})
        await b.write_record("rec", {"v": 2})
        await a.write_record("rec", {"w": 1}, "merge")
        await a.delete_record("rec")
        await a.send_to_connection("c2", b"x")
        await a.sweep_dead_instances()
        await a.clear_room("r")
        await a.join_room("r", "c1", 1)
        await eventually(lambda: _swept(a))
        await b.unregister_connection("c2", ["r"])
        await a.heartbeat(5000)

    async with plain_redis.monitor() as monitor:

        async def collect() -> None:
            while True:
                entry = await monitor.next_command()
                if entry["command"] == "ECHO done":
                    return
                commands.append(entry)

        collector = asyncio.create_task(collect())
        await asyncio.sleep(0)
        await workload()
        await a._client.echo("done")
        await asyncio.wait_for(collector, 10)

    headers = script_headers()
    declared: set[str] | None = None
    dynamic = False
    checked = 0
    for entry in commands:
        words = entry["command"].split()
        if entry["client_type"] != "lua":
            declared = None
            if words[0].lower() == "evalsha":
                declared = set(words[3 : 3 + int(words[2])])
                dynamic = "Dynamic keys" in headers[words[1]]
            continue
        assert declared is not None, entry
        name = words[0].lower()
        if name in NO_KEY:
            continue
        for key in words[1:] if name in ALL_KEYS else words[1:2]:
            checked += 1
            assert key in declared or (dynamic and DYNAMIC_KEY.match(key)), (key, entry)
    assert checked > 50


async def _swept(backend: Any) -> bool:
    await backend.sweep_presence()
    return "c1" not in (await backend.presence_snapshot("r")).present
