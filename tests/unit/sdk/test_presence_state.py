from __future__ import annotations

from typing import Any

from mesh_sdk.subscriptions.presence import PresenceState, PresenceUpdate


def event(kind: str, conn: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "connectionId": conn, "roomName": "lobby", "timestamp": 1500, **extra}


def test_snapshot_then_repeated_events_are_idempotent() -> None:
    state = PresenceState(["a", "b"], {"b": {"typing": True}})
    assert state.apply(event("join", "a")) is None
    assert state.apply(event("state", "b", state={"typing": True})) is None
    assert state.apply(event("leave", "c")) is None
    assert state.present == {"a", "b"}
    assert state.states == {"b": {"typing": True}}


def test_join_state_leave() -> None:
    state = PresenceState()
    assert state.apply(event("join", "a")) == PresenceUpdate("join", "a", "lobby", None, 1.5)
    update = state.apply(event("state", "a", state={"x": 1}))
    assert update == PresenceUpdate("state", "a", "lobby", {"x": 1}, 1.5)
    assert state.states == {"a": {"x": 1}}
    assert state.apply(event("state", "a", state={"x": 1})) is None
    assert state.apply(event("state", "a", state={"x": 2})) is not None
    assert state.apply(event("leave", "a")) == PresenceUpdate("leave", "a", "lobby", None, 1.5)
    assert state.present == set()
    assert state.states == {}
    assert state.apply(event("leave", "a")) is None


def test_state_null_clears_once() -> None:
    state = PresenceState(["a"], {"a": 1})
    assert state.apply(event("state", "a", state=None)) is not None
    assert state.apply(event("state", "a", state=None)) is None
    assert state.states == {}
    assert state.present == {"a"}


def test_json_equality_for_states() -> None:
    state = PresenceState(["a"], {"a": {"v": 1}})
    assert state.apply(event("state", "a", state={"v": True})) is not None


def test_malformed_events_ignored() -> None:
    state = PresenceState(["a"])
    for payload in [None, [], {"type": "join"}, {"type": "dance", "connectionId": "z"}]:
        assert state.apply(payload) is None
    assert state.present == {"a"}
    update = state.apply({"type": "join", "connectionId": "b", "roomName": 3, "timestamp": "x"})
    assert update == PresenceUpdate("join", "b", "", None, None)


def test_snapshot_filters_garbage() -> None:
    state = PresenceState()
    state.reset(["a", 1, None], {"a": 1, "b": None, 3: "x"})
    assert state.present == {"a"}
    assert state.states == {"a": 1}
    state.reset([], "not a dict")
    assert state.states == {}


def test_replace_reports_differences() -> None:
    state = PresenceState(["a", "b", "c"], {"a": 1, "b": 2})
    updates = state.replace(["b", "c", "d"], {"b": 3, "c": 4}, "lobby")
    assert updates == [
        PresenceUpdate("leave", "a", "lobby"),
        PresenceUpdate("join", "d", "lobby"),
        PresenceUpdate("state", "b", "lobby", 3),
        PresenceUpdate("state", "c", "lobby", 4),
    ]
    assert state.present == {"b", "c", "d"}
    assert state.replace(["b", "c", "d"], {"b": 3, "c": 4}, "lobby") == []
    assert state.replace(["b", "c", "d"], {"c": 4}, "lobby") == [
        PresenceUpdate("state", "b", "lobby", None)
    ]
