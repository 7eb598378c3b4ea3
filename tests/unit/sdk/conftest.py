from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from mesh_sdk.client import MeshClient
from tests.support.timing import TIMEOUT
from tests.unit.sdk.fake_server import FakeServer


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    async with FakeServer() as server:
        yield server


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., MeshClient]]:
    clients: list[MeshClient] = []

    def factory(url: str, **options: Any) -> MeshClient:
        options.setdefault("reconnect_base_delay", 0.005)
        options.setdefault("reconnect_max_delay", 0.02)
        options.setdefault("command_timeout", TIMEOUT)
        options.setdefault("open_timeout", TIMEOUT)
        client = MeshClient(url, **options)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()
