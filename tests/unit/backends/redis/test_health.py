"""Outage bookkeeping and the neutral EUNAVAILABLE text of the Redis backend (issue 8, 6–7)."""

from __future__ import annotations

import logging

import pytest
from redis import exceptions as redis_errors

from mesh_sdk.protocol.errors import UnavailableError
from mesh_server.backends.redis.errors import UNAVAILABLE_MESSAGE, unavailable_on_failure
from mesh_server.backends.redis.health import Health


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_when_an_outage_starts_and_one_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    health = Health(clock, logging.getLogger("test.health"))
    caplog.set_level(logging.DEBUG, logger="test.health")
    health.succeeded()
    assert health.available
    for n in range(50):
        health.failed(f"join room failed #{n}")
    assert not health.available
    clock.now = 135.5
    health.succeeded()
    health.succeeded()
    assert health.available
    assert [r.getMessage() for r in caplog.records] == [
        "Redis backend outage started: join room failed #0",
        "Redis backend outage ended after 35.5 s (50 failed operations)",
    ]
    health.failed("again")
    assert health.outages == 2


async def test_clients_get_a_neutral_message_and_the_log_the_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = Health(Clock(), logging.getLogger("test.health"))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UnavailableError) as raised:
        async with unavailable_on_failure(1.0, "join room", health):
            raise redis_errors.ConnectionError("refused")
    assert raised.value.message == UNAVAILABLE_MESSAGE == "service temporarily unavailable"
    assert "join room" not in str(raised.value)
    assert raised.value.__notes__ == ["Redis backend: join room failed (ConnectionError: refused)"]
    assert isinstance(raised.value.__cause__, redis_errors.ConnectionError)
    messages = [r.getMessage() for r in caplog.records]
    assert (
        "Redis backend outage started: Redis backend: join room failed (ConnectionError: refused)"
        in messages
    )
    assert all(r.exc_info is None for r in caplog.records)


async def test_programming_errors_are_not_outages() -> None:
    health = Health(Clock(), logging.getLogger("test.health"))
    with pytest.raises(redis_errors.ResponseError):
        async with unavailable_on_failure(1.0, "script", health):
            raise redis_errors.ResponseError("ERR user_script:1: boom")
    assert health.available
