"""The exact bytes of every built-in's responses, and of the SDK's built-in requests.

JSON member order and absent-vs-null members are not semantic, but the JavaScript client, logs
and captures see them: built-in handlers return typed models, and these tests pin that what goes
on the wire is byte for byte what the untyped handlers sent (protocol.md §7).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from mesh_sdk import MeshClient
from mesh_server import MeshServer
from tests.support.raw_client import RawClient, running_server
from tests.support.timing import TIMEOUT, wait_for

pytestmark = pytest.mark.integration


class WireClient:
    """Sends requests with sequential ids and returns each response frame as text."""

    def __init__(self, raw: RawClient) -> None:
        self.raw = raw
        self.next_id = 0

    async def text(self, command: str, payload: Any) -> str:
        self.next_id += 1
        await self.raw.send_raw(
            json.dumps({"id": self.next_id, "command": command, "payload": payload})
        )
        prefix = f'{{"id":{self.next_id},'
        while True:
            data = await asyncio.wait_for(self.raw.ws.recv(), TIMEOUT)
            text = data if isinstance(data, str) else data.decode()
            if text.startswith(prefix):
                return text[len(prefix) :]


@asynccontextmanager
async def wire(server: MeshServer) -> AsyncIterator[WireClient]:
    async with RawClient.open(server.url) as raw:
        yield WireClient(raw)


def _configure(server: MeshServer) -> None:
    server.expose_channel(re.compile(r"chat:.+"), lambda conn, name: name != "chat:secret")
    server.track_presence("lobby")
    server.track_presence("guarded", guard=lambda conn, room: False)
    server.expose_record("doc:read")
    server.expose_writable_record(re.compile(r"doc:.+"), lambda conn, rid: rid != "doc:locked")


async def test_metadata_and_noop_responses() -> None:
    async with running_server(
        client_metadata_writes=True,
        metadata_read_guard=lambda conn, target: target != "conn-hidden",
        metadata_write_guard=lambda conn, value: value != "refused",
    ) as server:
        _configure(server)
        async with wire(server) as client:
            cases = [
                ("mesh/noop", {}, '"command":"mesh/noop","payload":true}'),
                (
                    "mesh/get-my-connection-metadata",
                    {},
                    '"command":"mesh/get-my-connection-metadata","payload":{"metadata":null}}',
                ),
                (
                    "mesh/set-my-connection-metadata",
                    {"metadata": {"a": 1}},
                    '"command":"mesh/set-my-connection-metadata","payload":{"success":true}}',
                ),
                (
                    "mesh/set-my-connection-metadata",
                    {"metadata": {"b": 2}, "options": {"strategy": "merge"}},
                    '"command":"mesh/set-my-connection-metadata","payload":{"success":true}}',
                ),
                (
                    "mesh/set-my-connection-metadata",
                    {"metadata": {"c": 3}, "options": {"strategy": None}},
                    '"command":"mesh/set-my-connection-metadata","payload":{"success":true}}',
                ),
                (
                    "mesh/get-my-connection-metadata",
                    {},
                    '"command":"mesh/get-my-connection-metadata","payload":{"metadata":{"c":3}}}',
                ),
                (
                    "mesh/set-my-connection-metadata",
                    {"metadata": "refused"},
                    '"command":"mesh/set-my-connection-metadata","payload":{"success":false}}',
                ),
                (
                    "mesh/get-connection-metadata",
                    {"connectionId": client.raw.connection_id},
                    '"command":"mesh/get-connection-metadata","payload":{"metadata":{"c":3}}}',
                ),
                (
                    "mesh/get-connection-metadata",
                    {"connectionId": "conn-hidden"},
                    '"command":"mesh/get-connection-metadata","payload":{"metadata":null}}',
                ),
                (
                    "mesh/contract-info",
                    {},
                    '"command":"mesh/contract-info",'
                    '"payload":{"name":null,"fingerprint":null,"commands":[]}}',
                ),
            ]
            for command, payload, expected in cases:
                assert await client.text(command, payload) == expected, (command, payload)


async def test_channel_room_and_presence_responses() -> None:
    async with running_server() as server:
        _configure(server)
        await server.publish_to_channel("chat:a", "m1", history=5)
        await server.publish_to_channel("chat:a", {"n": 2}, history=5)
        await server.rooms.set_metadata("lobby", {"topic": "x"})
        async with wire(server) as client:
            cid = client.raw.connection_id
            cases = [
                (
                    "mesh/subscribe-channel",
                    {"channel": "chat:a"},
                    '"command":"mesh/subscribe-channel","payload":{"success":true,"history":[]}}',
                ),
                (
                    "mesh/subscribe-channel",
                    {"channel": "chat:a", "historyLimit": 5},
                    '"command":"mesh/subscribe-channel",'
                    '"payload":{"success":true,"history":["{\\"n\\":2}","m1"]}}',
                ),
                (
                    "mesh/subscribe-channel",
                    {"channel": "chat:secret", "historyLimit": 5},
                    '"command":"mesh/subscribe-channel","payload":{"success":false,"history":[]}}',
                ),
                (
                    "mesh/get-channel-history",
                    {"channel": "chat:a", "limit": 1},
                    '"command":"mesh/get-channel-history",'
                    '"payload":{"success":true,"history":["{\\"n\\":2}"]}}',
                ),
                (
                    "mesh/get-channel-history",
                    {"channel": "chat:secret"},
                    '"command":"mesh/get-channel-history","payload":{"success":false,"history":[]}}',
                ),
                (
                    "mesh/unsubscribe-channel",
                    {"channel": "chat:a"},
                    '"command":"mesh/unsubscribe-channel","payload":true}',
                ),
                (
                    "mesh/unsubscribe-channel",
                    {"channel": "chat:a"},
                    '"command":"mesh/unsubscribe-channel","payload":false}',
                ),
                (
                    "mesh/join-room",
                    {"roomName": "plain"},
                    '"command":"mesh/join-room","payload":{"success":true,"present":[]}}',
                ),
                (
                    "mesh/join-room",
                    {"roomName": "lobby"},
                    f'"command":"mesh/join-room","payload":{{"success":true,"present":["{cid}"]}}}}',
                ),
                (
                    "mesh/join-room",
                    {"roomName": "guarded"},
                    '"command":"mesh/join-room","payload":{"success":true,"present":[]}}',
                ),
                (
                    "mesh/get-room-metadata",
                    {"roomName": "lobby"},
                    '"command":"mesh/get-room-metadata","payload":{"metadata":{"topic":"x"}}}',
                ),
                (
                    "mesh/get-room-metadata",
                    {"roomName": "plain"},
                    '"command":"mesh/get-room-metadata","payload":{"metadata":null}}',
                ),
                (
                    "mesh/subscribe-presence",
                    {"roomName": "lobby"},
                    '"command":"mesh/subscribe-presence",'
                    f'"payload":{{"success":true,"present":["{cid}"],"states":{{}}}}}}',
                ),
                (
                    "mesh/subscribe-presence",
                    {"roomName": "plain"},
                    '"command":"mesh/subscribe-presence","payload":{"success":false,"present":[]}}',
                ),
                (
                    "mesh/publish-presence-state",
                    {"roomName": "lobby", "state": {"mood": "ok"}, "expireAfter": 0},
                    '"command":"mesh/publish-presence-state","payload":true}',
                ),
                (
                    "mesh/publish-presence-state",
                    {"roomName": "lobby", "state": "quiet", "silent": True},
                    '"command":"mesh/publish-presence-state","payload":true}',
                ),
                (
                    "mesh/publish-presence-state",
                    {"roomName": "plain", "state": 1},
                    '"command":"mesh/publish-presence-state","payload":false}',
                ),
                (
                    "mesh/get-presence-state",
                    {"roomName": "lobby"},
                    '"command":"mesh/get-presence-state",'
                    f'"payload":{{"success":true,"present":["{cid}"],'
                    f'"states":{{"{cid}":"quiet"}}}}}}',
                ),
                (
                    "mesh/get-presence-state",
                    {"roomName": "guarded"},
                    '"command":"mesh/get-presence-state","payload":{"success":false,"present":[]}}',
                ),
                (
                    "mesh/clear-presence-state",
                    {"roomName": "lobby"},
                    '"command":"mesh/clear-presence-state","payload":true}',
                ),
                (
                    "mesh/clear-presence-state",
                    {"roomName": "guarded"},
                    '"command":"mesh/clear-presence-state","payload":false}',
                ),
                (
                    "mesh/unsubscribe-presence",
                    {"roomName": "lobby"},
                    '"command":"mesh/unsubscribe-presence","payload":true}',
                ),
                (
                    "mesh/unsubscribe-presence",
                    {"roomName": "lobby"},
                    '"command":"mesh/unsubscribe-presence","payload":false}',
                ),
                (
                    "mesh/leave-room",
                    {"roomName": "lobby"},
                    '"command":"mesh/leave-room","payload":{"success":true}}',
                ),
            ]
            for command, payload, expected in cases:
                assert await client.text(command, payload) == expected, (command, payload)


async def test_record_responses() -> None:
    async with running_server() as server:
        _configure(server)
        async with wire(server) as client:
            cases = [
                (
                    "mesh/subscribe-record",
                    {"recordId": "doc:1"},
                    '"command":"mesh/subscribe-record",'
                    '"payload":{"success":true,"record":null,"version":0}}',
                ),
                (
                    "mesh/publish-record-update",
                    {"recordId": "doc:1", "newValue": {"a": 1}},
                    '"command":"mesh/publish-record-update","payload":{"success":true}}',
                ),
                (
                    "mesh/publish-record-update",
                    {
                        "recordId": "doc:1",
                        "newValue": {"b": 2},
                        "options": {"strategy": "merge"},
                        "expectedVersion": 1,
                    },
                    '"command":"mesh/publish-record-update","payload":{"success":true}}',
                ),
                (
                    "mesh/publish-record-update",
                    {"recordId": "doc:1", "newValue": None, "options": {}},
                    '"command":"mesh/publish-record-update","payload":{"success":true}}',
                ),
                (
                    "mesh/subscribe-record",
                    {"recordId": "doc:1", "mode": "patch"},
                    '"command":"mesh/subscribe-record",'
                    '"payload":{"success":true,"record":null,"version":3}}',
                ),
                (
                    "mesh/subscribe-record",
                    {"recordId": "doc:read", "mode": None},
                    '"command":"mesh/subscribe-record",'
                    '"payload":{"success":true,"record":null,"version":0}}',
                ),
                (
                    "mesh/subscribe-record",
                    {"recordId": "other"},
                    '"command":"mesh/subscribe-record","payload":{"success":false}}',
                ),
                (
                    "mesh/unsubscribe-record",
                    {"recordId": "doc:1"},
                    '"command":"mesh/unsubscribe-record","payload":true}',
                ),
                (
                    "mesh/unsubscribe-record",
                    {"recordId": "doc:1"},
                    '"command":"mesh/unsubscribe-record","payload":false}',
                ),
            ]
            for command, payload, expected in cases:
                assert await client.text(command, payload) == expected, (command, payload)


async def test_error_responses() -> None:
    async with running_server() as server:
        _configure(server)
        async with wire(server) as client:
            cases = [
                (
                    "mesh/join-room",
                    {},
                    '"command":"mesh/join-room","payload":{"error":"Invalid payload for '
                    '\\"mesh/join-room\\"","code":"EVALIDATION","name":"ValidationError"},'
                    '"error":{"error":"Invalid payload for \\"mesh/join-room\\"",'
                    '"code":"EVALIDATION","name":"ValidationError","details":[{"path":"",'
                    '"message":"\'roomName\' is a required property"}]}}',
                ),
                (
                    "mesh/publish-presence-state",
                    {"roomName": "lobby", "state": None},
                    '"command":"mesh/publish-presence-state","payload":{"error":"Invalid payload '
                    'for \\"mesh/publish-presence-state\\"","code":"EVALIDATION",'
                    '"name":"ValidationError"},"error":{"error":"Invalid payload for '
                    '\\"mesh/publish-presence-state\\"","code":"EVALIDATION",'
                    '"name":"ValidationError","details":['
                    + ",".join(
                        '{"path":"/state","message":"Input should be a valid ' + kind + '"}'
                        for kind in ("dictionary", "list", "string", "integer", "number", "boolean")
                    )
                    + "]}}",
                ),
                (
                    "mesh/publish-record-update",
                    {"recordId": "doc:locked", "newValue": 1},
                    '"command":"mesh/publish-record-update","payload":{"error":"Record '
                    '\\"doc:locked\\" is not writable by this connection.","code":"EFORBIDDEN",'
                    '"name":"ForbiddenError"},"error":{"error":"Record \\"doc:locked\\" is not '
                    'writable by this connection.","code":"EFORBIDDEN","name":"ForbiddenError"}}',
                ),
                (
                    "mesh/set-my-connection-metadata",
                    {"metadata": 1},
                    '"command":"mesh/set-my-connection-metadata","payload":{"error":"Command '
                    '\\"mesh/set-my-connection-metadata\\" not found","code":"ENOTFOUND",'
                    '"name":"CommandError"},"error":{"error":"Command '
                    '\\"mesh/set-my-connection-metadata\\" not found","code":"ENOTFOUND",'
                    '"name":"CommandError"}}',
                ),
            ]
            for command, payload, expected in cases:
                assert await client.text(command, payload) == expected, (command, payload)


# ------------------------------------------------------------------ SDK requests


@asynccontextmanager
async def recording_server(answers: dict[str, Any]) -> AsyncIterator[tuple[str, list[str]]]:
    """A bare WebSocket server that records every request frame and answers from ``answers``."""
    frames: list[str] = []

    async def handle(ws: ServerConnection) -> None:
        await ws.send('{"command":"mesh/assign-id","payload":"conn-wire"}')
        async for data in ws:
            text = data if isinstance(data, str) else data.decode()
            frame = json.loads(text)
            if frame.get("command") in ("ping", "pong"):
                continue
            frames.append(text)
            answer = {"id": frame["id"], "command": frame["command"]}
            await ws.send(json.dumps({**answer, "payload": answers[frame["command"]]}))

    async with serve(handle, "127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}", frames


async def test_sdk_builtin_requests() -> None:
    answers = {
        "mesh/get-my-connection-metadata": {"metadata": None},
        "mesh/get-connection-metadata": {"metadata": None},
        "mesh/get-room-metadata": {"metadata": None},
        "mesh/set-my-connection-metadata": {"success": True},
        "mesh/subscribe-channel": {"success": True, "history": []},
        "mesh/unsubscribe-channel": True,
        "mesh/get-channel-history": {"success": True, "history": []},
        "mesh/join-room": {"success": True, "present": []},
        "mesh/leave-room": {"success": True},
        "mesh/subscribe-presence": {"success": True, "present": [], "states": {}},
        "mesh/unsubscribe-presence": True,
        "mesh/publish-presence-state": True,
        "mesh/clear-presence-state": True,
        "mesh/get-presence-state": {"success": True, "present": [], "states": {}},
        "mesh/subscribe-record": {"success": True, "record": None, "version": 0},
        "mesh/unsubscribe-record": True,
        "mesh/publish-record-update": {"success": True},
    }
    async with recording_server(answers) as (url, frames):
        client = MeshClient(url)
        await wait_for(client.connect())
        try:
            await client.get_connection_metadata()
            await client.get_connection_metadata("conn-x")
            await client.get_room_metadata("r")
            await client.set_connection_metadata({"a": 1})
            await client.set_connection_metadata([1], "merge")
            await client.subscribe_channel("c")
            await client.subscribe_channel("c", history_limit=3)
            await client.unsubscribe_channel("c")
            await client.get_channel_history("c")
            await client.get_channel_history("c", 7)
            await client.join_room("r")
            await client.subscribe_presence("r")
            await client.publish_presence_state("r", {"s": 1})
            await client.publish_presence_state("r", "x", expire_after=0.5, silent=True)
            await client.get_presence_state("r")
            await client.clear_presence_state("r")
            await client.unsubscribe_presence("r")
            await client.leave_room("r")
            await client.subscribe_record("d")
            await client.subscribe_record("e", mode="patch")
            await client.publish_record_update("d", {"v": 1})
            await client.publish_record_update("d", None, "deepMerge", expected_version=0)
            await client.unsubscribe_record("d")
        finally:
            await wait_for(client.close())
    payloads = [re.sub(r'^\{"id":\d+,', "", frame) for frame in frames]
    assert payloads == [
        '"command":"mesh/get-my-connection-metadata","payload":{}}',
        '"command":"mesh/get-connection-metadata","payload":{"connectionId":"conn-x"}}',
        '"command":"mesh/get-room-metadata","payload":{"roomName":"r"}}',
        '"command":"mesh/set-my-connection-metadata","payload":{"metadata":{"a":1}}}',
        '"command":"mesh/set-my-connection-metadata",'
        '"payload":{"metadata":[1],"options":{"strategy":"merge"}}}',
        '"command":"mesh/subscribe-channel","payload":{"channel":"c"}}',
        '"command":"mesh/subscribe-channel","payload":{"channel":"c","historyLimit":3}}',
        '"command":"mesh/unsubscribe-channel","payload":{"channel":"c"}}',
        '"command":"mesh/get-channel-history","payload":{"channel":"c","limit":50}}',
        '"command":"mesh/get-channel-history","payload":{"channel":"c","limit":7}}',
        '"command":"mesh/join-room","payload":{"roomName":"r"}}',
        '"command":"mesh/subscribe-presence","payload":{"roomName":"r"}}',
        '"command":"mesh/publish-presence-state","payload":{"roomName":"r","state":{"s":1}}}',
        '"command":"mesh/publish-presence-state",'
        '"payload":{"roomName":"r","state":"x","expireAfter":500,"silent":true}}',
        '"command":"mesh/get-presence-state","payload":{"roomName":"r"}}',
        '"command":"mesh/clear-presence-state","payload":{"roomName":"r"}}',
        '"command":"mesh/unsubscribe-presence","payload":{"roomName":"r"}}',
        '"command":"mesh/leave-room","payload":{"roomName":"r"}}',
        '"command":"mesh/subscribe-record","payload":{"recordId":"d","mode":"full"}}',
        '"command":"mesh/subscribe-record","payload":{"recordId":"e","mode":"patch"}}',
        '"command":"mesh/publish-record-update","payload":{"recordId":"d","newValue":{"v":1}}}',
        '"command":"mesh/publish-record-update","payload":{"recordId":"d","newValue":null,'
        '"options":{"strategy":"deepMerge"},"expectedVersion":0}}',
        '"command":"mesh/unsubscribe-record","payload":{"recordId":"d"}}',
    ]
