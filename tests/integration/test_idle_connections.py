"""Idle connections hold no task: one server, many open connections (issue 12, idle memory)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from websockets.asyncio.client import connect

from tests.support.raw_client import running_server
from tests.support.timing import eventually

pytestmark = pytest.mark.integration

IDLE = 200


@pytest.mark.native_only  # under ASGI the server's application coroutine waits per connection
async def test_idle_connections_hold_no_task(transport: str) -> None:
    async with running_server() as server, contextlib.AsyncExitStack() as clients:
        baseline = len(asyncio.all_tasks())
        for _ in range(IDLE):
            # No client keepalive: the client side adds no task either.
            await clients.enter_async_context(connect(server.url, ping_interval=None))
        await eventually(lambda: len(server.connections.local()) == IDLE)
        # Handshake and on_connect tasks end once a connection is started; none stays per
        # connection (a few shared ones may come and go).
        await eventually(lambda: len(asyncio.all_tasks()) - baseline < IDLE // 10)
        assert all(c.session.started for c in server.connections.local().values())
