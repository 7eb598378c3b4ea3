"""RedisBackend options: durations in seconds, the former ``*_ms`` names refused at once."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from mesh_server.backends.redis import RedisBackend
from tests.unit.backends.redis.conftest import NS, StartBackend

URL = "redis://127.0.0.1:1"  # never contacted: construction does not connect


@pytest.mark.parametrize(
    "option",
    [
        "operation_timeout_ms",
        "instance_ttl_ms",
        "claim_ttl_ms",
        "reconnect_min_ms",
        "reconnect_max_ms",
        "record_retry_base_ms",
        "record_retry_max_ms",
    ],
)
def test_former_ms_options_are_type_errors(option: str) -> None:
    with pytest.raises(TypeError, match=f"{option} → {option.removesuffix('_ms')}"):
        RedisBackend(URL, **{option: 1000})


@pytest.mark.parametrize(
    "options",
    [
        {"operation_timeout": 0},
        {"instance_ttl": -1.0},
        {"claim_ttl": 0.0},
        {"reconnect_min": 0},
        {"reconnect_max": -0.5},
        {"record_retry_base": -0.001},
        {"record_retry_base": 0.5, "record_retry_max": 0.1},
    ],
)
def test_bad_durations_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        RedisBackend(URL, **options)


async def test_instance_ttl_in_seconds_is_the_heartbeat_px(
    start_backend: StartBackend, plain_redis: aioredis.Redis
) -> None:
    backend, _ = await start_backend(instance_ttl=7.5)
    pttl = await plain_redis.pttl(f"{NS}instance:{backend.instance_id}:hb")
    assert 7_000 < pttl <= 7_500
    assert await backend.heartbeat(2_500)  # the Backend operation itself takes ms
    assert 2_000 < await plain_redis.pttl(f"{NS}instance:{backend.instance_id}:hb") <= 2_500
