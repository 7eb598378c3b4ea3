"""Prometheus metrics over real sockets: a known workload, then exact scraped counts."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from mesh_sdk.protocol.codec import encode_push
from mesh_sdk.protocol.errors import ConflictError, MeshError, UnavailableError
from mesh_server import MeshServer
from mesh_server.backends.redis import RedisBackend
from tests.integration.features_cluster import ServerCluster, cluster
from tests.support.http import http_get
from tests.support.metrics import Samples, scrape, series, value
from tests.support.raw_client import RawClient, running_server
from tests.support.redis import RedisServer
from tests.support.timing import TIMEOUT, eventually, wait_for

pytestmark = pytest.mark.integration

__all__ = ["cluster"]

ROOT = Path(__file__).resolve().parents[2]
APP = "from mesh_server import MeshServer\n\nserver = MeshServer()\n"
SUB = "mesh/subscribe-channel"
MSG = "mesh/subscription-message"


class TallyClient(RawClient):
    """A raw client that adds up the bytes of every frame it reads."""

    received_bytes = 0

    async def next_frame(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        self.received_bytes += len(data.encode() if isinstance(data, str) else data)
        return json.loads(data)  # type: ignore[no-any-return]


def nonzero(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(labels)): v for labels, v in series(samples, name).items() if v != 0}


class Closes:
    """Waits for the cleanup of connections (``on_disconnection``)."""

    def __init__(self, server: MeshServer) -> None:
        self.codes: list[int | None] = []
        self._changed = asyncio.Event()
        server.on_disconnection(self._closed)

    def _closed(self, connection: Any) -> None:
        self.codes.append(connection.close_code)
        self._changed.set()

    async def wait(self, count: int) -> None:
        while len(self.codes) < count:
            self._changed.clear()
            await wait_for(self._changed.wait())


async def slow_consumer(server: MeshServer) -> tuple[int, int]:
    """Push to a client that stops reading until it is closed with 4001.

    Returns:
        How many pushes were written to it and the size of its ``mesh/assign-id`` frame.
    """
    chunk = "x" * 16_384
    async with connect(server.url, max_queue=1) as ws:
        first = await ws.recv()
        connection = server.connections.get_local(json.loads(first)["payload"])
        assert connection is not None
        ws.transport.pause_reading()  # the kernel buffers fill, then asyncio's
        sent = 0
        while not connection.closed and sent < 5000:
            # The check and the write are one step: send() does not await before writing.
            await server.send(connection, "spam", chunk)
            sent += 1
            await asyncio.sleep(0)
        assert connection.close_code == 4001
        ws.transport.abort()
    return sent, len(first.encode())


async def test_known_workload_scrapes_exact_counts(cluster: ServerCluster) -> None:
    a, b = await cluster.start(
        2,
        rate_limit=0.001,  # no token comes back during the test
        rate_burst=8,
        max_outbound_bytes=256 * 1024,
        max_outbound_frames=200,
    )
    a.expose_command("echo", lambda ctx: ctx.payload)
    for server in (a, b):
        server.expose_channel("news")
    closes = Closes(a)
    url = a.url
    async with (
        TallyClient.open(url) as cmd,
        TallyClient.open(url) as limited,
        TallyClient.open(url) as s1,
        TallyClient.open(url) as s2,
        TallyClient.open(url) as s3,
        TallyClient.open(b.url) as remote,
    ):
        # 5 echo requests and one unknown command.
        for i in range(5):
            assert (await cmd.request(i, "echo", i))["payload"] == i
        assert (await cmd.request(5, "nope"))["error"]["code"] == "ENOTFOUND"
        # 9 requests against a burst of 8: the last one is rate limited.
        for i in range(9):
            await limited.send({"id": i, "command": "echo", "payload": i})
        codes = [(await limited.response(i)).get("error", {}).get("code") for i in range(9)]
        assert codes == [None] * 8 + ["ERATELIMIT"]
        # One publish to 3 subscribers here and one on the other instance.
        for client in (s1, s2, s3, remote):
            assert (await client.call(SUB, {"channel": "news"}))["success"] is True
        await a.publish_to_channel("news", "hello")
        for client in (s1, s2, s3, remote):
            assert (await client.wait_push(MSG))["message"] == "hello"
        # A record write at a stale version.
        await a.publish_record_update("doc:1", {"v": 1})
        with pytest.raises(ConflictError):
            await a.publish_record_update("doc:1", {"v": 2}, expected_version=5)
        # A connection that closes normally, and a slow consumer closed with 4001.
        async with TallyClient.open(url) as short:
            pass
        await closes.wait(1)
        slow_pushes, slow_assign_id = await slow_consumer(a)
        await closes.wait(2)
        assert sorted(c or 0 for c in closes.codes) == [1000, 4001]

        got = scrape(a)
        assert value(got, "mesh_connects_total") == 7
        assert value(got, "mesh_connections") == 5
        assert nonzero(got, "mesh_closes_total") == {(("code", "1000"),): 1, (("code", "4001"),): 1}
        assert nonzero(got, "mesh_commands_total") == {
            (("code", "ok"), ("command", "echo")): 13,
            (("code", "ENOTFOUND"), ("command", "other")): 1,
            (("code", "ok"), ("command", SUB)): 3,
        }
        assert nonzero(got, "mesh_command_duration_seconds_count") == {
            (("command", "echo"),): 13,
            (("command", "other"),): 1,
            (("command", SUB),): 3,
        }
        assert value(got, "mesh_command_duration_seconds_bucket", command="echo", le="+Inf") == 13
        assert value(got, "mesh_rate_limited_total") == 1
        assert value(got, "mesh_pushes_total") == 3 + slow_pushes
        # 7 mesh/assign-id, 6 + 9 + 3 responses, 3 channel messages, the slow consumer's pushes.
        assert value(got, "mesh_frames_written_total") == 7 + 18 + 3 + slow_pushes
        received = sum(c.received_bytes for c in (cmd, limited, s1, s2, s3, short))
        push_size = len(encode_push("spam", "x" * 16_384))
        assert value(got, "mesh_outbound_bytes_total") == (
            received + slow_assign_id + slow_pushes * push_size
        )
        assert value(got, "mesh_slow_consumer_closes_total") == 1
        assert value(got, "mesh_record_conflicts_total") == 1
        for name in (
            "mesh_record_retries_total",
            "mesh_redis_errors_total",
            "mesh_redis_outages_total",
            "mesh_redis_reconnects_total",
            "mesh_presence_expiries_total",
        ):
            assert value(got, name) == 0, name

        # The other server has a registry of its own: only its connection, request and push.
        other = scrape(b)
        assert value(other, "mesh_connects_total") == 1
        assert nonzero(other, "mesh_commands_total") == {(("code", "ok"), ("command", SUB)): 1}
        assert value(other, "mesh_pushes_total") == 1
        assert value(other, "mesh_frames_written_total") == 3
        assert value(other, "mesh_outbound_bytes_total") == remote.received_bytes
        assert value(other, "mesh_record_conflicts_total") == 0


async def test_presence_state_expiry_is_counted(cluster: ServerCluster) -> None:
    (server,) = await cluster.start(1)
    server.track_presence("room:m")
    async with RawClient.open(server.url) as client:
        await client.call("mesh/join-room", {"roomName": "room:m"})
        state = {"roomName": "room:m", "state": "typing", "expireAfter": 50}
        assert await client.call("mesh/publish-presence-state", state) is True
        await eventually(lambda: value(scrape(server), "mesh_presence_expiries_total") == 1)
        assert value(scrape(server), "mesh_connections") == 1


async def test_application_error_codes_are_bounded(cluster: ServerCluster) -> None:
    (server,) = await cluster.start(1)

    def fail(ctx: Any) -> Any:
        raise MeshError("no", code=ctx.payload)

    server.expose_command("fail", fail)
    async with RawClient.open(server.url) as client:
        for code in ("EAPP_ONE", "EAPP_TWO", "EFORBIDDEN"):
            assert (await client.call("fail", code))["code"] == code
        late = "late"
        server.expose_command(late, lambda ctx: None)  # exposed after start: still its own label
        assert await client.call(late) is None
    assert nonzero(scrape(server), "mesh_commands_total") == {
        (("code", "other"), ("command", "fail")): 2,
        (("code", "EFORBIDDEN"), ("command", "fail")): 1,
        (("code", "ok"), ("command", "late")): 1,
    }


@pytest.mark.redis
async def test_redis_outage_and_reconnect_are_counted(own_redis: RedisServer) -> None:
    backend = RedisBackend(
        own_redis.url, operation_timeout=0.5, reconnect_min=0.02, reconnect_max=0.2
    )
    server = MeshServer(port=0, backend=backend, close_timeout=2.0)
    await server.start()
    try:
        own_redis.kill()
        with pytest.raises(UnavailableError):
            await server.publish_to_channel("news", "lost")
        own_redis.start()
        await eventually(lambda: value(scrape(server), "mesh_redis_reconnects_total") == 1)
        await eventually(lambda: backend.health.available)
        got = scrape(server)
        assert value(got, "mesh_redis_outages_total") == 1
        assert value(got, "mesh_redis_errors_total") == backend.stats().errors
        assert backend.stats().errors >= 1
    finally:
        await server.close()


# ------------------------------------------------------------------ the HTTP endpoint


async def test_metrics_endpoint_on_the_websocket_port() -> None:
    async with running_server() as server:
        async with RawClient.open(server.url):
            status, headers, body = await http_get(server.port, "/metrics")
        assert status == 200
        assert headers["content-type"] == CONTENT_TYPE_LATEST
        assert headers["cache-control"] == "no-store"
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert families["mesh_connects"].samples[0].value == 1
        assert families["mesh_connections"].samples[0].value == 1
        # Health endpoints are still answered; other paths stay WebSocket-only.
        assert (await http_get(server.port, "/healthz"))[0] == 200
        assert (await http_get(server.port, "/metricsx"))[0] == 426


async def test_metrics_path_configurable_and_off_switches() -> None:
    async with running_server(metrics_path="/prom", health=False) as server:
        assert (await http_get(server.port, "/prom"))[0] == 200
        assert (await http_get(server.port, "/metrics"))[0] == 426
    for options in ({"metrics_endpoint": False}, {"metrics": False}):
        async with running_server(**options) as server:
            assert (await http_get(server.port, "/metrics"))[0] == 426, options
    with pytest.raises(ValueError, match="health endpoint"):
        MeshServer(port=0, metrics_path="/healthz")
    with pytest.raises(ValueError, match="must start with"):
        MeshServer(port=0, metrics_path="metrics")
    server = MeshServer(port=0)
    server.configure(metrics_endpoint=False)
    server.configure(metrics_endpoint=True, metrics_path="/m")
    with pytest.raises(ValueError, match="health endpoint"):
        server.configure(readiness_path="/m")
    async with server:
        assert (await http_get(server.port, "/m"))[0] == 200


async def test_mesh_serve_metrics_options(tmp_path: Path) -> None:
    (tmp_path / "metrics_app.py").write_text(APP)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mesh_server",
        "serve",
        "metrics_app:server",
        "--port",
        "0",
        "--metrics-path",
        "/prom",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        match = None
        while match is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), TIMEOUT * 2)).decode()
            assert line, "mesh serve exited before listening"
            match = re.search(r"listening on ws://127\.0\.0\.1:(\d+)", line)
        port = int(match[1])
        status, _, body = await http_get(port, "/prom")
        assert status == 200
        assert b"mesh_connects_total 0.0" in body
        assert (await http_get(port, "/metrics"))[0] == 426
    finally:
        proc.kill()
        await proc.wait()
