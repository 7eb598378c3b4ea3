"""Hub: local room index and dispatch of backend messages (protocol.md §13.2)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mesh_server.backends.messages import encode_envelope, inbox_channel
from mesh_server.hub import Hub


class FakeConnection:
    def __init__(self, connection_id: str) -> None:
        self.id = connection_id
        self.frames: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)


@pytest.fixture
def hub() -> Hub:
    h = Hub("ns:", "inst1", logging.getLogger("test.hub"))
    for cid in ("a", "b", "c"):
        h.add(FakeConnection(cid))  # type: ignore[arg-type]
    return h


def frames(hub: Hub) -> dict[str, list[bytes]]:
    return {cid: list(conn.frames) for cid, conn in hub.connections.items()}  # type: ignore[attr-defined]


def test_deliver_same_bytes_to_each(hub: Hub) -> None:
    frame = b'{"command":"x","payload":1}'
    hub.deliver(["a", "c", "zz"], frame)
    got = frames(hub)
    assert got == {"a": [frame], "b": [], "c": [frame]}
    assert got["a"][0] is got["c"][0]  # encoded once


def test_room_index(hub: Hub) -> None:
    hub.index_join("r1", "a")
    hub.index_join("r1", "b")
    hub.index_join("r2", "a")
    hub.index_join("r1", "not-local")  # only local connections are indexed
    assert hub.local_room_members("r1") == {"a", "b"}
    assert hub.local_rooms_of("a") == {"r1", "r2"}
    hub.index_leave("r1", "a")
    hub.index_leave("r1", "a")  # idempotent
    hub.index_leave("nope", "a")
    assert hub.local_room_members("r1") == {"b"}
    hub.index_clear("r1")
    assert hub.local_room_members("r1") == set()
    assert hub.local_rooms_of("b") == set()
    hub.index_leave("r2", "a")
    assert hub.rooms == {}
    hub.index_join("r3", "c")
    hub.remove("c")
    assert hub.rooms == {}
    assert "c" not in hub.connections
    hub.remove("c")


def test_inbox_send_and_room_control(hub: Hub) -> None:
    inbox = inbox_channel("ns:", "inst1")
    hub.on_message(inbox, encode_envelope({"t": "send", "c": "b"}, b"FRAME"))
    hub.on_message(inbox, encode_envelope({"t": "send", "c": "gone"}, b"FRAME"))
    assert frames(hub)["b"] == [b"FRAME"]
    hub.on_message(inbox, encode_envelope({"t": "room", "op": "join", "r": "r", "c": "a"}))
    assert hub.local_room_members("r") == {"a"}
    hub.on_message(inbox, encode_envelope({"t": "room", "op": "leave", "r": "r", "c": "a"}))
    assert hub.local_room_members("r") == set()
    hub.on_message(inbox, encode_envelope({"t": "room", "op": "join", "r": 5, "c": "a"}))
    hub.on_message(inbox, encode_envelope({"t": "room", "op": "other", "r": "r", "c": "a"}))
    assert hub.rooms == {}


def test_broadcast_envelopes(hub: Hub) -> None:
    channel = "ns:broadcast"
    hub.index_join("room", "a")
    hub.index_join("room", "b")
    hub.on_message(channel, encode_envelope({"t": "bc", "r": None, "x": ["b"]}, b"ALL"))
    hub.on_message(channel, encode_envelope({"t": "bc", "r": "room", "x": []}, b"ROOM"))
    hub.on_message(channel, encode_envelope({"t": "bc", "r": "room", "x": ["a"]}, b"ROOMX"))
    hub.on_message(channel, encode_envelope({"t": "bc", "r": "empty"}, b"NONE"))
    assert frames(hub) == {"a": [b"ALL", b"ROOM"], "b": [b"ROOM", b"ROOMX"], "c": [b"ALL"]}
    hub.on_message(channel, encode_envelope({"t": "clear", "r": "room"}))
    assert hub.local_room_members("room") == set()
    hub.on_message(channel, encode_envelope({"t": "clear", "r": None}))


def test_unknown_and_malformed_messages_are_logged(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="test.hub"):
        hub.on_message("ns:broadcast", encode_envelope({"t": "weird"}))
        hub.on_message(inbox_channel("ns:", "inst1"), encode_envelope({"t": "weird"}))
        hub.on_message("ns:broadcast", b"no newline")
        hub.on_message("ns:broadcast", b"[1]\nbody")
        hub.on_message("ns:unrouted", b"x")
    text = caplog.text
    assert "unknown broadcast message type" in text
    assert "unknown inbox message type" in text
    assert text.count("failed to handle a backend message") == 2
    assert "no route" in text


def test_routes_longest_prefix_wins(hub: Hub) -> None:
    seen: list[tuple[str, str]] = []

    def route(name: str) -> Any:
        return lambda channel, data: seen.append((name, channel))

    hub.add_routes({"": route("app"), "ns:presence:": route("presence")})
    hub.add_routes({"ns:presence:special:": route("special")})
    with pytest.raises(ValueError, match="twice"):
        hub.add_routes({"": route("again")})
    hub.on_message("chat:room1", b"m")
    hub.on_message("ns:presence:lobby", b"{}")
    hub.on_message("ns:presence:special:x", b"{}")
    assert seen == [
        ("app", "chat:room1"),
        ("presence", "ns:presence:lobby"),
        ("special", "ns:presence:special:x"),
    ]
