"""``mesh serve`` as a real subprocess: SIGTERM, forced exit, JSON logs (issue 11 items 2, 5).

The instance under test runs ``mesh serve tests.support.serve_app:…`` on the test's private
Redis; an SDK client on another instance of the same Redis watches its presence.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mesh_sdk.client import MeshClient
from mesh_sdk.subscriptions.presence import PresenceUpdate
from mesh_server.runner import FORCED_EXIT_CODE
from tests.support.raw_client import running_server
from tests.support.timing import TIMEOUT

pytestmark = [pytest.mark.redis, pytest.mark.integration, pytest.mark.usefixtures("transport")]

ROOT = Path(__file__).resolve().parents[2]
ROOM = "room:tracked"
CLOSE_GOING_AWAY = 1001


@dataclass
class Served:
    """A ``mesh serve`` subprocess whose JSON log lines are collected as they come."""

    proc: asyncio.subprocess.Process
    lines: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def pump(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            record = json.loads(raw)  # every line is one JSON object (--log-format json)
            async with self.changed:
                self.lines.append(record)
                self.changed.notify_all()

    async def line(self, message: str, timeout: float = TIMEOUT * 2) -> dict[str, Any]:
        """The first log record whose message starts with ``message`` (waiting for it)."""

        def find() -> dict[str, Any] | None:
            return next((r for r in self.lines if r["message"].startswith(message)), None)

        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(find), timeout)
        found = find()
        assert found is not None
        return found

    @property
    def url(self) -> str:
        return str(next(r["listen"] for r in self.lines if "listen" in r))


@asynccontextmanager
async def mesh_serve(redis_url: str, target: str = "build", *args: str) -> AsyncIterator[Served]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mesh_server",
        "serve",
        f"tests.support.serve_app:{target}",
        "--port",
        "0",
        "--redis-url",
        redis_url,
        "--log-format",
        "json",
        "--log-level",
        "debug",
        *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    served = Served(proc)
    pump = asyncio.ensure_future(served.pump())
    try:
        await served.line("Mesh server listening on")
        yield served
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.wait_for(pump, TIMEOUT)


async def test_sigterm_leaves_at_once_closes_1001_and_exits_0(redis_url: str) -> None:
    loop = asyncio.get_running_loop()
    leaves: dict[str, float] = {}
    left = asyncio.Event()

    def on_update(update: PresenceUpdate) -> None:
        if update.type == "leave":
            leaves[update.connection_id] = loop.time()
            left.set()

    async with (
        mesh_serve(redis_url, "build", "--shutdown-timeout", "5") as served,
        # The survivor's own heartbeat/sweep are slow: only the graceful path can be this fast.
        running_server(redis_url=redis_url, instance_sweep_interval=60.0) as survivor,
    ):
        survivor.track_presence(ROOM)
        victim = MeshClient(served.url, should_reconnect=False)
        watcher = MeshClient(survivor.url, should_reconnect=False)
        closed: asyncio.Future[int | None] = loop.create_future()
        victim.on("disconnect", lambda code, reason: closed.done() or closed.set_result(code))
        await asyncio.wait_for(victim.connect(), TIMEOUT)
        await asyncio.wait_for(watcher.connect(), TIMEOUT)
        try:
            assert await victim.command("echo", "hello") == "hello"
            await victim.join_room(ROOM)
            presence = await watcher.subscribe_presence(ROOM, on_update=on_update)
            assert victim.connection_id in presence.present
            victim_id = victim.connection_id
            sent_at = loop.time()
            served.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(left.wait(), TIMEOUT)
            elapsed = leaves[str(victim_id)] - sent_at
            print(
                f"presence leave seen on the other instance {elapsed * 1000:.1f} ms after SIGTERM"
            )
            # The lapsed-heartbeat path would take the 600 ms TTL plus a 60 s sweep interval.
            assert elapsed < TIMEOUT
            assert await asyncio.wait_for(closed, TIMEOUT) == CLOSE_GOING_AWAY
            assert await asyncio.wait_for(served.proc.wait(), TIMEOUT) == 0
        finally:
            await victim.close()
            await watcher.close()
        # Deregistered: no routing entry of the victim and no instance left behind.
        assert victim_id not in await survivor.backend.get_all_connection_metadata()
    await served.line("Mesh server closed")
    assert (await served.line("SIGTERM received"))["instance_id"]


async def test_second_signal_forces_exit(redis_url: str) -> None:
    # build_stuck's disconnection hook never returns, so the graceful shutdown cannot finish.
    async with mesh_serve(redis_url, "build_stuck", "--shutdown-timeout", "600") as served:
        client = MeshClient(served.url, should_reconnect=False)
        await asyncio.wait_for(client.connect(), TIMEOUT)
        try:
            served.proc.send_signal(signal.SIGTERM)
            await served.line("Mesh server shutting down")
            served.proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(served.proc.wait(), TIMEOUT) == FORCED_EXIT_CODE
        finally:
            await client.close()
        await served.line("SIGTERM again")


async def test_json_log_lines_carry_the_structured_fields(redis_url: str) -> None:
    async with mesh_serve(redis_url) as served:
        start = await served.line("Mesh server listening on")
        instance = start["instance_id"]
        assert start["level"] == "INFO"
        assert start["logger"] == "mesh_server"
        assert start["transport"] == "websockets"
        assert start["backend"] == redis_url
        assert start["contract"] == "none"
        assert start["limits"]["max_message_size"] == 1024 * 1024
        assert start["limits"]["shutdown_timeout"] == 10.0
        client = MeshClient(served.url, should_reconnect=False)
        await asyncio.wait_for(client.connect(), TIMEOUT)
        connection_id = client.connection_id
        assert await client.command("echo", {"n": 1}) == {"n": 1}
        with pytest.raises(Exception, match="missing"):
            await client.command("missing", {})
        await client.close()
        closed = await served.line(f"connection {connection_id} closed")
        served.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(served.proc.wait(), TIMEOUT) == 0
    opened = await served.line(f"connection {connection_id} opened")
    assert opened["connection_id"] == connection_id
    assert opened["instance_id"] == instance
    assert opened["peer"].startswith("127.0.0.1:")
    assert closed["close_code"] == 1000
    outcomes = {
        r["command"]: r
        for r in served.lines
        if r.get("connection_id") == connection_id and "duration_ms" in r
    }
    assert outcomes["echo"]["code"] == "ok"
    assert outcomes["missing"]["code"] == "ENOTFOUND"
    for record in outcomes.values():
        assert record["instance_id"] == instance
        assert record["level"] == "DEBUG"
        assert isinstance(record["duration_ms"], float)
        assert record["duration_ms"] >= 0
        assert record["time"].endswith("+00:00")
