"""The benchmark's code runs (tiny sizes, no assertion about speed): it cannot rot unnoticed.

Every load-generator workload runs in-process against the MeshServer the benchmark uses, and
one orchestrated point per kind of probe (CPU + Redis counters, RSS after a storm) runs through
the harness's subprocesses exactly as ``make bench`` does, down to the printed table.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from bench import client, suite
from bench.harness import bare, external, mesh
from bench.servers import build_mesh
from bench.suite import Mode, Workload, render, run_workload, workloads
from mesh_server import MeshServer
from tests.support.timing import wait_for

pytestmark = pytest.mark.integration

TINY = {"duration": 0.05, "warmup": 0.0}


@asynccontextmanager
async def started(redis_url: str | None, count: int = 1) -> AsyncIterator[list[str]]:
    async with AsyncExitStack() as stack:
        servers: list[MeshServer] = []
        for _ in range(count):
            server = build_mesh(redis_url)
            await server.start()
            stack.push_async_callback(server.close)
            servers.append(server)
        yield [f"ws://127.0.0.1:{s.port}/" for s in servers]


async def test_echo_and_storm_on_the_memory_backend() -> None:
    async with started(None) as urls:
        echo = await wait_for(client.echo(urls, 3, **TINY))
        storm = await wait_for(client.storm(urls[0], 20, 5, hold=None))

    assert echo["ops"] > 0
    assert 0 < echo["p50_ms"] <= echo["p99_ms"]
    assert (storm["ops"], storm["failures"]) == (20, 0)


@pytest.mark.parametrize("kind", ["channel", "full", "patch"])
async def test_fanout_completes_publishes_to_every_subscriber(kind: str) -> None:
    async with started(None) as urls:
        result = await wait_for(client.fanout(urls, kind, 4, 2, record="bench:t", **TINY))

    assert result["publishes"] > 0
    assert result["ops"] == result["publishes"] * 4


@pytest.mark.redis
async def test_room_fanout_and_concurrent_writes_over_two_instances(redis_url: str) -> None:
    async with started(redis_url, count=2) as urls:
        room = await wait_for(client.fanout(urls, "room", 4, 2, record="", **TINY))
        writes = await wait_for(client.writes(urls, 6, record="bench:w", **TINY))

    assert room["publishes"] > 0
    assert writes["acked"] > 0
    assert (writes["errors"], writes["lost"]) == (0, 0)


@pytest.mark.redis
@pytest.mark.slow
def test_harness_points_and_table() -> None:
    mode = Mode("test", duration=0.05, warmup=0.0, repetitions=1)
    echo = Workload(
        "echo", ("echo", "--connections", "2"), "req", (bare("picows"), mesh("memory", "uvicorn"))
    )
    writes = Workload(
        "writes", ("writes", "--connections", "4"), "write", (mesh("redis", "websockets", 2),)
    )
    storm = Workload(
        "storm", ("storm", "--connections", "20", "--in-flight", "5"), "conn",
        (bare("websockets"),), timed=False,
    )  # fmt: skip
    results = [(w, run_workload(w, mode, log=lambda line: None)) for w in (echo, writes, storm)]

    (echo_run,) = results[0][1]["bare picows"]
    (asgi_run,) = results[0][1]["mesh memory (uvicorn)"]
    assert asgi_run["ops"] > 0
    (write_run,) = results[1][1]["mesh redis (websockets) ×2"]
    (storm_run,) = results[2][1]["bare websockets"]
    assert echo_run["ops"] > 0
    assert echo_run["cpu_s"] >= 0
    assert write_run["redis_calls"] > 0
    assert write_run["lost"] == 0
    assert storm_run["ops"] == 20
    table = render(results)
    assert "write/s" in table
    assert "/write (" in table
    assert "KB/conn" in table


def test_external_kind_from_name_and_command() -> None:
    single = external("original = node  '/srv/my server.mjs' 0")
    double = external("original=node server.mjs", instances=2)

    assert (single.name, single.argv) == ("original", ("node", "/srv/my server.mjs", "0"))
    assert single.redis
    assert single.external
    assert (double.name, double.instances) == ("original ×2", 2)


@pytest.mark.parametrize("spec", ["no-equals-sign", "=cmd", "name=", "name=   "])
def test_malformed_external_kind_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="NAME=CMD"):
        external(spec)
    with pytest.raises(SystemExit):
        suite.main(["--external", spec])


def test_external_kinds_join_every_workload_with_mesh_rows() -> None:
    groups = workloads(None, ["original=node server.mjs"])

    for group in groups:
        names = [v.name for v in group.variants]
        if any(name.startswith("mesh ") for name in names):
            two = any(v.instances == 2 for v in group.variants)
            assert ("original ×2" if two else "original") in names, group.title


@pytest.mark.redis
@pytest.mark.slow
def test_external_kind_point_and_original_column() -> None:
    mode = Mode("test", duration=0.05, warmup=0.0, repetitions=1)
    # Any command that prints READY <port> and takes --redis-url will do: the bare picows floor.
    stand_in = external(f"original={sys.executable} -m bench.servers picows")
    echo = Workload("echo", ("echo", "--connections", "2"), "req", (bare("picows"), stand_in))

    runs = run_workload(echo, mode, log=lambda line: None)
    table = render([(echo, runs)])

    (run,) = runs["original"]
    assert run["ops"] > 0
    assert "÷ original" in table.splitlines()[0]
    original_row = next(line for line in table.splitlines() if line.startswith("  original"))
    assert " 1.00 " in original_row
