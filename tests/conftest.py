"""Shared fixtures: private Redis servers and backend factories."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server shared by the session; tests flush it via ``redis_url``."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's private Redis, flushed before the test."""
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A private redis-server for this test alone (it may kill and restart it)."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
