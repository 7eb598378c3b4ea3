"""The reproductions of issue 8 (items 1, 2, 5) over real sockets, on both backends.

Every frame here is valid JSON a client may send; the connection must survive each of them and
answer every later request.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.integration.features_cluster import ServerCluster, cluster
from tests.support.raw_client import RawClient

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("transport")]

__all__ = ["cluster"]


def nest(depth: int, leaf: str = "1", kind: str = "[") -> str:
    if kind == "[":
        return "[" * depth + leaf + "]" * depth
    return '{"a":' * depth + leaf + "}" * depth


async def start(cluster: ServerCluster) -> str:
    (server,) = await cluster.start(1)
    server.expose_command("echo", lambda ctx: ctx.payload)
    server.track_presence(re.compile(r"room:.+"))
    server.expose_writable_record(re.compile(r"doc:.+"))
    return server.url


async def still_answers(client: RawClient, tag: str) -> None:
    assert (await client.request(f"{tag}-echo", "echo", tag))["payload"] == tag
    noop = await client.request(f"{tag}-noop", "mesh/noop", {})
    assert noop["payload"] is True


async def test_non_string_commands_are_unknown_commands(cluster: ServerCluster) -> None:
    url = await start(cluster)
    async with RawClient.open(url) as client:
        await client.send_raw('{"id":1,"command":{}}')
        first = await client.response(1)
        assert first["error"]["code"] == "ENOTFOUND"
        assert first["command"] == {}
        await client.send_raw('{"id":2,"command":["echo"],"payload":1}')
        assert (await client.response(2))["error"]["code"] == "ENOTFOUND"
        await client.send_raw('{"command":{"x":1}}')  # no id: malformed, not answered
        await still_answers(client, "after")
        assert not [f for f in client.inbox if "id" in f]


async def test_deep_ids_are_malformed_and_leak_nothing(cluster: ServerCluster) -> None:
    url = await start(cluster)
    async with RawClient.open(url) as client:
        # 1000 levels: valid JSON under orjson's limit, far beyond max_id_depth (32).
        await client.send_raw('{"id":' + nest(1000) + ',"command":"mesh/noop"}')
        await still_answers(client, "a")
        await client.send_raw('{"id":' + nest(32) + ',"command":"mesh/noop"}')
        assert (await client.response(json.loads(nest(32))))["payload"] is True


async def test_deep_payloads_are_answered_etoolarge(cluster: ServerCluster) -> None:
    url = await start(cluster)
    async with RawClient.open(url) as client:
        await client.request("join", "mesh/join-room", {"roomName": "room:a"})
        cases = [  # payload texts around a deep value (the stdlib could not even build it)
            ("echo", "{}"),
            ("mesh/publish-record-update", '{{"recordId":"doc:1","newValue":{}}}'),
            ("mesh/publish-presence-state", '{{"roomName":"room:a","state":{}}}'),
            ("mesh/set-my-connection-metadata", '{{"metadata":{}}}'),
        ]
        for i, (command, template) in enumerate(cases):
            for kind in ("[", "{"):
                payload = template.format(nest(1000, kind=kind))
                request_id = f"{i}{kind}"
                await client.send_raw(
                    f'{{"id":"{request_id}","command":"{command}","payload":{payload}}}'
                )
                answer = await client.response(request_id)
                assert answer["command"] == command
                assert answer["error"]["code"] == "ETOOLARGE", answer
                assert answer["error"]["details"] == {"limit": 64}
        # 100 deep echo frames in a row used to leak every in-flight slot (issue 8 item 2).
        deep_echo = '{"id":"deep","command":"echo","payload":' + nest(960) + "}"
        for _ in range(100):
            await client.send_raw(deep_echo)
        for _ in range(100):
            assert (await client.response("deep"))["error"]["code"] == "ETOOLARGE"
        await still_answers(client, "b")
        # Within the limit the value goes through.
        value = json.loads(nest(63, kind="{"))
        ok = await client.request(
            "w", "mesh/publish-record-update", {"recordId": "doc:1", "newValue": value}
        )
        assert ok["payload"] == {"success": True}


@pytest.mark.parametrize(
    "id_text", [str(10**30), str(2**64), str(-(2**63) - 1), "1e400", "1.50", "[1e400, 2E0]"]
)
async def test_ids_are_echoed_verbatim(cluster: ServerCluster, id_text: str) -> None:
    url = await start(cluster)
    async with RawClient.open(url) as client:
        for command in ("echo", "mesh/noop", "no-such-command"):
            await client.send_raw(f'{{"id":{id_text},"command":"{command}"}}')
            raw: Any = await client.ws.recv()
            assert raw.startswith(f'{{"id":{id_text},"command":"{command}",')
