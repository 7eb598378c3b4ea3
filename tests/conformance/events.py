"""Helpers to check the events backends publish (layouts of mesh_server.backends.messages)."""

from __future__ import annotations

import time
from typing import Any

from mesh_server.backends.messages import presence_channel
from tests.conformance.conftest import NAMESPACE, Node

_ABSENT: Any = object()


def is_presence_event(
    event: Any, kind: str, connection_id: str, room: str, state: Any = _ABSENT
) -> bool:
    """Check one ``mesh/presence-update`` payload, including its wall-clock ms timestamp."""
    expected = {"type", "connectionId", "roomName", "timestamp"}
    if kind == "state":
        expected.add("state")
    assert isinstance(event, dict), event
    assert set(event) == expected, event
    timestamp = event["timestamp"]
    assert isinstance(timestamp, int), event
    assert not isinstance(timestamp, bool), event
    assert abs(timestamp - time.time() * 1000) < 60_000, event
    matches = (event["type"], event["connectionId"], event["roomName"]) == (
        kind,
        connection_id,
        room,
    )
    if kind == "state" and state is not _ABSENT:
        matches = matches and event["state"] == state
    return matches


def summary(events: list[Any]) -> list[tuple[Any, ...]]:
    """Reduce presence events to ``(type, connectionId[, state])`` after checking their shape."""
    result: list[tuple[Any, ...]] = []
    for event in events:
        assert is_presence_event(
            event, event.get("type"), event.get("connectionId"), event.get("roomName")
        )
        if event["type"] == "state":
            result.append(("state", event["connectionId"], event["state"]))
        else:
            result.append((event["type"], event["connectionId"]))
    return result


async def watch_presence(node: Node, room: str) -> str:
    """Subscribe ``node`` to the room's presence channel and return the channel name."""
    channel = presence_channel(NAMESPACE, room)
    await node.backend.subscribe(channel)
    return channel


async def presence_events(node: Node, room: str) -> list[tuple[Any, ...]]:
    """Everything published on the room's presence channel so far, summarized."""
    channel = presence_channel(NAMESPACE, room)
    return summary(await node.recorder.drain_json(node.backend, channel))
