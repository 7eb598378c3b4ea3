"""The metrics facade: the no-op one, the Prometheus one, bounded labels, registries."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from prometheus_client import CollectorRegistry

from mesh_sdk.protocol.errors import ConflictError
from mesh_server import MeshServer
from mesh_server.backends.base import BackendStats
from mesh_server.backends.memory import MemoryBackend, MemoryHub
from mesh_server.backends.redis.health import Health
from mesh_server.metrics import (
    NO_METRICS,
    OTHER,
    close_label,
    result_label,
)
from mesh_server.metrics_export import create_metrics
from mesh_server.prometheus import PrometheusMetrics
from tests.support.metrics import scrape, value
from tests.support.timing import TIMEOUT


def test_create_metrics_picks_prometheus_unless_turned_off() -> None:
    assert create_metrics(enabled=False) is NO_METRICS
    assert not NO_METRICS.enabled
    assert NO_METRICS.exposition() is None
    metrics = create_metrics()
    assert isinstance(metrics, PrometheusMetrics)
    assert metrics.enabled


def test_labels_are_bounded() -> None:
    assert close_label(4001) == "4001"
    assert close_label(1000) == "1000"
    assert close_label(None) == "1006"
    assert close_label(4999) == OTHER
    assert result_label("ok") == "ok"
    assert result_label("ECONFLICT") == "ECONFLICT"
    assert result_label("EMYAPP") == OTHER


def test_each_server_has_its_own_registry_unless_given_one() -> None:
    # Two servers in one process would clash on one registry ("Duplicated timeseries").
    first, second = MeshServer(port=0), MeshServer(port=0)
    assert isinstance(first.metrics, PrometheusMetrics)
    assert isinstance(second.metrics, PrometheusMetrics)
    assert first.metrics.registry is not second.metrics.registry
    registry = CollectorRegistry()
    given = MeshServer(port=0, metrics_registry=registry)
    assert isinstance(given.metrics, PrometheusMetrics)
    assert given.metrics.registry is registry
    given.metrics.connection_opened()
    assert registry.get_sample_value("mesh_connects_total") == 1
    assert MeshServer(port=0, metrics=False).metrics is NO_METRICS
    with pytest.raises(ValueError, match="Duplicated"):
        MeshServer(port=0, metrics_registry=registry)  # a shared registry takes one server


def test_prometheus_counts_every_call() -> None:
    metrics = PrometheusMetrics()
    metrics.bind_commands(["echo", "mesh/join-room"])
    metrics.connection_opened()
    metrics.connection_opened()
    metrics.connection_closed(4001)
    metrics.connection_closed(4321)
    metrics.command("echo", "ok", 0.002)
    metrics.command("echo", "ok", 0.2)
    metrics.command("echo", "EMYAPP", 0.001)
    metrics.command(OTHER, "ENOTFOUND", 0.0001)
    metrics.rate_limited()
    metrics.pushed()
    metrics.written(10)
    metrics.written(32)
    metrics.slow_consumer()
    metrics.presence_expired(0)
    metrics.presence_expired(3)
    got = scrape(metrics)
    assert value(got, "mesh_connects_total") == 2
    assert value(got, "mesh_connections") == 0
    assert value(got, "mesh_closes_total", code="4001") == 1
    assert value(got, "mesh_closes_total", code=OTHER) == 1
    assert value(got, "mesh_commands_total", command="echo", code="ok") == 2
    assert value(got, "mesh_commands_total", command="echo", code=OTHER) == 1
    assert value(got, "mesh_commands_total", command=OTHER, code="ENOTFOUND") == 1
    # Bound at start: present (at zero) before the first request.
    assert (
        "mesh_commands_total",
        frozenset({("command", "mesh/join-room"), ("code", "ok")}),
    ) in got
    assert value(got, "mesh_command_duration_seconds_count", command="echo") == 3
    assert value(got, "mesh_command_duration_seconds_bucket", command="echo", le="0.0025") == 2
    assert value(got, "mesh_command_duration_seconds_sum", command="echo") == pytest.approx(0.203)
    assert value(got, "mesh_rate_limited_total") == 1
    assert value(got, "mesh_pushes_total") == 1
    assert value(got, "mesh_frames_written_total") == 2
    assert value(got, "mesh_outbound_bytes_total") == 42
    assert value(got, "mesh_slow_consumer_closes_total") == 1
    assert value(got, "mesh_presence_expiries_total") == 3


def test_backend_counters_are_read_at_scrape_time() -> None:
    metrics = PrometheusMetrics()
    assert value(scrape(metrics), "mesh_redis_errors_total") == 0  # no backend watched yet
    stats = BackendStats()
    metrics.watch_backend(lambda: stats)
    stats.errors, stats.outages, stats.reconnects = 5, 2, 1
    stats.record_conflicts, stats.record_retries = 3, 4
    got = scrape(metrics)
    assert value(got, "mesh_redis_errors_total") == 5
    assert value(got, "mesh_redis_outages_total") == 2
    assert value(got, "mesh_redis_reconnects_total") == 1
    assert value(got, "mesh_record_conflicts_total") == 3
    assert value(got, "mesh_record_retries_total") == 4


async def test_memory_backend_counts_conflicts_and_retries() -> None:
    hub = MemoryHub()
    backend, other = MemoryBackend("mesh:", hub=hub), MemoryBackend("mesh:", hub=hub)
    await backend.start("inst", lambda channel, data: None)
    await other.start("other", lambda channel, data: None)
    try:
        await backend.write_record("r", 1)
        with pytest.raises(ConflictError):
            await backend.write_record("r", 2, expected_version=7)
        calls = 0

        async def bump(current: int) -> int:
            nonlocal calls
            calls += 1
            if calls == 1:
                await other.write_record("r", 10)  # another instance: the update runs again
            return current + 1

        write = await backend.update_record("r", bump)
        assert (write.value, calls) == (11, 2)
        assert backend.stats() == BackendStats(record_conflicts=1, record_retries=1)
        assert other.stats() == BackendStats()
    finally:
        await other.close()
        await backend.close()


def test_health_errors_are_cumulative() -> None:
    health = Health(clock=lambda: 0.0)
    health.failed("a")
    health.failed("b")
    health.succeeded()
    health.failed("c")
    assert (health.errors, health.outages, health.failures) == (3, 2, 1)


_WITHOUT_PROMETHEUS = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.modules["prometheus_client"] = None  # importing it raises ImportError
    from websockets.asyncio.client import connect
    from mesh_server import MeshServer
    from mesh_server.metrics import NO_METRICS
    from mesh_server.metrics_export import create_metrics

    async def main():
        server = MeshServer(port=0)
        server.expose_command("echo", lambda ctx: ctx.payload)
        async with server:
            async with connect(server.url) as ws:
                await ws.recv()
                await ws.send('{"id": 1, "command": "echo", "payload": 7}')
                answer = json.loads(await ws.recv())
        try:
            create_metrics(registry=object())
            refused = False
        except RuntimeError:
            refused = True
        print(json.dumps({
            "answer": answer["payload"],
            "no_op": server.metrics is NO_METRICS,
            "exposition": server.metrics.exposition(),
            "imported": "mesh_server.prometheus" in sys.modules,
            "refused": refused,
        }))

    asyncio.run(main())
    """
)


def test_without_prometheus_client_metrics_are_a_no_op() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PROMETHEUS],
        capture_output=True,
        text=True,
        timeout=6 * TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "answer": 7,
        "no_op": True,
        "exposition": None,
        "imported": False,
        "refused": True,
    }
