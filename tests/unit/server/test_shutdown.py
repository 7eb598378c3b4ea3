"""Graceful shutdown: MeshServer.close() within shutdown_timeout, and serve_until_signalled."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import pytest

from mesh_server import MeshServer
from mesh_server.runner import serve_until_signalled
from mesh_server.shutdown import ShutdownDeadline
from tests.support.raw_client import RawClient, running_server
from tests.support.timing import TIMEOUT, eventually, wait_for


def test_shutdown_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="shutdown_timeout"):
        MeshServer(shutdown_timeout=0)


async def test_close_says_1001_and_removes_presence_before_returning() -> None:
    async with running_server() as server:
        server.track_presence("room:a")
        async with RawClient.open(server.url) as client:
            assert client.connection_id is not None
            joined = await client.call("mesh/join-room", {"roomName": "room:a"})
            assert joined["success"] is True
            await server.close()
            # close() returned: the cleanup (§5.3) already ran, nothing of the client is left.
            assert await server.get_room_members("room:a") == []
            assert await server.backend.get_all_connection_metadata() == {}
            assert await client.wait_closed() == 1001


async def test_close_gives_up_on_a_stuck_cleanup_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()
    async with running_server(shutdown_timeout=0.2) as server:

        @server.on_disconnection
        async def stuck(connection: Any) -> None:
            await release.wait()

        async with RawClient.open(server.url) as client:
            with caplog.at_level(logging.WARNING, logger="mesh_server"):
                # Without the deadline this would wait for the hook forever.
                await wait_for(server.close())
            assert await client.wait_closed() == 1001
        assert "connection cleanups still running at the deadline" in caplog.text
        assert not server.started
        release.set()


async def test_close_before_start_and_twice_returns_at_once() -> None:
    server = MeshServer(port=0)
    await server.close()
    await server.close()
    assert not server.started


async def test_sigterm_in_process_shuts_down_and_returns() -> None:
    server = MeshServer(port=0, close_timeout=2.0)
    task = asyncio.ensure_future(serve_until_signalled(server))
    await eventually(lambda: server.started or task.done())
    assert not task.done()
    async with RawClient.open(server.url) as client:
        os.kill(os.getpid(), signal.SIGTERM)
        assert await client.wait_closed() == 1001
    await asyncio.wait_for(task, TIMEOUT)
    assert not server.started
    # The handlers are removed again: the loop's default handling is back.
    loop = asyncio.get_running_loop()
    assert not loop.remove_signal_handler(signal.SIGTERM)


async def test_deadline_cancels_an_overrunning_step_and_logs_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("mesh_server.test")
    deadline = ShutdownDeadline(0.05, log, "inst-1")
    assert 0 < deadline.remaining() <= 0.05
    assert deadline.remaining(reserve=1.0) == 0.0
    never = asyncio.Event()
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def fails() -> None:
        raise RuntimeError("broken step")

    with caplog.at_level(logging.WARNING, logger="mesh_server.test"):
        await wait_for(deadline.step(hangs(), "a hanging step"))
        # Once the time is up a step is cancelled before it runs: a failure needs time left.
        await wait_for(ShutdownDeadline(TIMEOUT, log, "inst-1").step(fails(), "a failing step"))
    assert cancelled.is_set()
    assert deadline.remaining() == 0.0
    messages = [(r.getMessage(), r.__dict__["instance_id"]) for r in caplog.records]
    assert messages == [
        ("shutdown: a hanging step did not finish by the deadline", "inst-1"),
        ("shutdown: a failing step failed", "inst-1"),
    ]
    assert caplog.records[1].exc_info is not None
