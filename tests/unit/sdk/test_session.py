from __future__ import annotations

import json
from typing import Any

import pytest

from mesh_sdk.protocol.errors import (
    CommandNotFoundError,
    MeshConnectionError,
    MeshError,
    MeshTimeoutError,
    ValidationError,
)
from mesh_sdk.reconnect import Backoff
from mesh_sdk.session import ClientSession, SessionState
from mesh_sdk.session_events import (
    Assigned,
    Failed,
    Ignored,
    LatencyChanged,
    PushReceived,
    Resolved,
    WatchdogExpired,
)


def frame(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def assign(session: ClientSession[Any], now: float = 0, conn: str = "conn-1") -> list[Any]:
    session.connection_opened(now)
    return session.receive(frame({"command": "mesh/assign-id", "payload": conn}), now)


def ready(session: ClientSession[Any], now: float = 0) -> None:
    assign(session, now)
    assert session.mark_ready(now) == []
    assert session.state is SessionState.READY


def sent(pending: Any) -> dict[str, Any]:
    return json.loads(pending.frame)  # type: ignore[no-any-return]


def test_idle_session_refuses_requests() -> None:
    session: ClientSession[str] = ClientSession()
    with pytest.raises(MeshConnectionError):
        session.request("echo", {}, "h", 0, 1000)


def test_assign_id_then_ready() -> None:
    session: ClientSession[str] = ClientSession()
    events = assign(session, conn="conn-abc")
    assert events == [Assigned("conn-abc", reconnected=False)]
    assert session.connection_id == "conn-abc"
    assert session.state is SessionState.RESTORING
    assert session.mark_ready(0) == []
    assert session.state is SessionState.READY


def test_second_assignment_is_a_reconnect_and_resets_backoff() -> None:
    session: ClientSession[str] = ClientSession(backoff=Backoff(rng=lambda: 1.0))
    ready(session)
    session.connection_lost(5)
    assert session.next_reconnect_delay() == 0.5  # seconds, like every duration of the SDK
    assert session.next_reconnect_delay() == 1.0
    assert session.reconnect_attempt == 2
    assert assign(session, 10, "conn-2") == [Assigned("conn-2", reconnected=True)]
    assert session.reconnect_attempt == 0


def test_duplicate_or_bad_assign_id_ignored() -> None:
    session: ClientSession[str] = ClientSession()
    session.connection_opened(0)
    (event,) = session.receive(frame({"command": "mesh/assign-id", "payload": 5}), 0)
    assert isinstance(event, Ignored)
    assign(session)
    (event,) = session.receive(frame({"command": "mesh/assign-id", "payload": "x"}), 0)
    assert isinstance(event, Ignored)
    assert session.connection_id == "conn-1"


def test_ids_unique_and_responses_resolve() -> None:
    session: ClientSession[str] = ClientSession()
    ready(session)
    a = session.request("echo", {"n": 1}, "a", 0, 1000)
    b = session.request("echo", {"n": 2}, "b", 0, 1000)
    assert a.id != b.id
    assert sent(a) == {"id": a.id, "command": "echo", "payload": {"n": 1}}
    assert not a.queued
    (event,) = session.receive(frame({"id": b.id, "command": "echo", "payload": 2}), 1)
    assert isinstance(event, Resolved)
    assert event.pending.handle == "b"
    assert event.payload == 2
    assert list(session.pending) == [a.id]


def test_error_response_is_typed() -> None:
    session: ClientSession[str] = ClientSession()
    ready(session)
    p = session.request("nope", {}, "h", 0, 1000)
    error = {"error": 'Command "nope" not found', "code": "ENOTFOUND", "name": "CommandError"}
    (event,) = session.receive(
        frame({"id": p.id, "command": "nope", "payload": error, "error": error}), 1
    )
    assert isinstance(event, Failed)
    assert isinstance(event.error, CommandNotFoundError)


def test_error_shaped_payload_without_top_level_error_is_success() -> None:
    session: ClientSession[str] = ClientSession()
    ready(session)
    p = session.request("x", {}, "h", 0, 1000)
    payload = {"error": "looks like one", "code": "EFAKE"}
    (event,) = session.receive(frame({"id": p.id, "payload": payload}), 1)
    assert isinstance(event, Resolved)
    assert event.payload == payload


def test_deep_server_frames_fail_the_request_or_are_ignored() -> None:
    session: ClientSession[str] = ClientSession(max_json_depth=3)
    ready(session)
    p = session.request("x", {}, "h", 0, 1000)
    deep = b"[" * 2000 + b"]" * 2000  # also beyond the parsers: never a RecursionError
    (event,) = session.receive(b'{"id":%d,"payload":[[[[1]]]]}' % p.id, 1)
    assert isinstance(event, Failed)
    assert event.error.code == "ETOOLARGE"
    assert event.error.details == {"limit": 3}
    (event,) = session.receive(b'{"command":"p","payload":' + deep + b"}", 1)
    assert isinstance(event, Ignored)
    (event,) = session.receive(b'{"command":"p","payload":[[[[1]]]]}', 1)
    assert isinstance(event, Ignored)
    assert session.counters.malformed == 2


def test_validation_error_details() -> None:
    session: ClientSession[str] = ClientSession()
    ready(session)
    p = session.request("mesh/join-room", {}, "h", 0, 1000)
    wire = {
        "error": "Invalid",
        "code": "EVALIDATION",
        "name": "ValidationError",
        "details": [{"path": "", "message": "'roomName' is a required property"}],
    }
    (event,) = session.receive(frame({"id": p.id, "payload": {}, "error": wire}), 1)
    assert isinstance(event, Failed)
    assert isinstance(event.error, ValidationError)
    assert event.error.details == wire["details"]


def test_unknown_code_keeps_code() -> None:
    session: ClientSession[str] = ClientSession()
    ready(session)
    p = session.request("x", {}, "h", 0, 1000)
    wire = {"error": "demo", "code": "EDEMO", "name": "DemoError"}
    (event,) = session.receive(frame({"id": p.id, "payload": wire, "error": wire}), 1)
    assert isinstance(event, Failed)
    assert type(event.error) is MeshError
    assert (event.error.code, event.error.name) == ("EDEMO", "DemoError")


@pytest.mark.parametrize("rid", [999, "0", None, 0.0, True])
def test_stray_responses_ignored(rid: Any) -> None:
    session: ClientSession[str] = ClientSession()
    ready(session)
    session.request("x", {}, "h", 0, 1000)  # id 0
    (event,) = session.receive(frame({"id": rid, "payload": 1}), 1)
    assert isinstance(event, Ignored)
    assert session.counters.stray_responses == 1
    assert len(session.pending) == 1


def test_each_request_resolves_once() -> None:
    session: ClientSession[str] = ClientSession(ping_timeout=None)
    ready(session)
    p = session.request("x", {}, "h", 0, 1000)
    assert isinstance(session.receive(frame({"id": p.id, "payload": 1}), 1)[0], Resolved)
    assert isinstance(session.receive(frame({"id": p.id, "payload": 1}), 1)[0], Ignored)
    assert session.tick(5000) == []


@pytest.mark.parametrize("data", [b"\xff", b"[1]", b"nope", b'{"payload": 1}', b"NaN", '"x"'])
def test_malformed_frames(data: bytes | str) -> None:
    session: ClientSession[str] = ClientSession()
    ready(session)
    (event,) = session.receive(data, 0)
    assert isinstance(event, Ignored)
    assert session.counters.malformed == 1


def test_too_large_frame() -> None:
    session: ClientSession[str] = ClientSession(max_message_size=60)
    ready(session)
    (event,) = session.receive(b'{"command":"x","payload":"' + b"0" * 60 + b'"}', 0)
    assert isinstance(event, Ignored)


def test_ping_answered_with_pong_and_id() -> None:
    session: ClientSession[str] = ClientSession()
    ready(session)
    assert session.receive(frame({"command": "ping", "payload": {}}), 0) == []
    (out,) = session.data_to_send()
    pong = json.loads(out)
    assert pong["command"] == "pong"
    assert pong["payload"] == {}
    assert isinstance(pong["id"], int)
    assert session.data_to_send() == []


def test_latency_request_echoes_payload() -> None:
    session: ClientSession[str] = ClientSession()
    ready(session)
    session.receive(frame({"command": "latency:request", "payload": {"t": 1}}), 0)
    (out,) = session.data_to_send()
    assert json.loads(out)["command"] == "latency:response"
    assert json.loads(out)["payload"] == {"t": 1}


def test_latency_push_updates_latency_in_seconds() -> None:
    session: ClientSession[str] = ClientSession()
    ready(session)
    # §6: the wire reports integer milliseconds; the session speaks seconds.
    events = session.receive(frame({"command": "latency", "payload": 42}), 0)
    assert events == [LatencyChanged(0.042)]
    assert session.latency == 0.042
    (event,) = session.receive(frame({"command": "latency", "payload": True}), 0)
    assert isinstance(event, Ignored)
    assert session.latency == 0.042


def test_pushes_are_routed() -> None:
    session: ClientSession[str] = ClientSession()
    ready(session)
    events = session.receive(frame({"command": "chat", "payload": [1]}), 0)
    assert events == [PushReceived("chat", [1])]


def test_watchdog_fires_after_missed_pings() -> None:
    session: ClientSession[str] = ClientSession(ping_timeout=0.25, max_missed_pings=1)
    ready(session, 0)
    assert session.next_deadline() == 0.5
    session.receive(frame({"command": "ping", "payload": {}}), 0.375)
    assert session.next_deadline() == 0.875
    assert session.tick(0.75) == []
    assert session.tick(0.875) == [WatchdogExpired()]
    assert session.tick(10) == []  # once per connection
    assert session.next_deadline() is None


def test_assign_timeout() -> None:
    session: ClientSession[str] = ClientSession(ping_timeout=None, assign_timeout=0.5)
    session.connection_opened(10)
    assert session.next_deadline() == 10.5
    assert session.tick(10.5) == [WatchdogExpired()]
    session.connection_opened(20)
    session.receive(frame({"command": "mesh/assign-id", "payload": "c"}), 20.25)
    assert session.next_deadline() is None


def test_watchdog_disabled() -> None:
    session: ClientSession[str] = ClientSession(ping_timeout=None)
    ready(session)
    assert session.next_deadline() is None


def test_watchdog_not_armed_before_assignment() -> None:
    session: ClientSession[str] = ClientSession(ping_timeout=100)
    session.connection_opened(0)
    session.receive(frame({"command": "ping", "payload": {}}), 0)
    assert session.next_deadline() is None
    assert len(session.data_to_send()) == 1


def test_request_timeout_in_seconds() -> None:
    session: ClientSession[str] = ClientSession(ping_timeout=None)
    ready(session)
    p = session.request("slow", {}, "h", 100, 5)
    assert session.next_deadline() == 105
    assert session.tick(104.9) == []
    (event,) = session.tick(105)
    assert isinstance(event, Failed)
    assert isinstance(event.error, MeshTimeoutError)
    assert event.error.message == 'Command "slow" timed out after 5 s (without a response)'
    assert event.pending is p
    assert session.pending == {}
    # a late response is stray
    assert isinstance(session.receive(frame({"id": p.id, "payload": 1}), 200)[0], Ignored)


def test_no_timeout() -> None:
    session: ClientSession[str] = ClientSession(ping_timeout=None)
    ready(session)
    session.request("x", {}, "h", 0, None)
    assert session.next_deadline() is None


def test_cancel_forgets_request() -> None:
    session: ClientSession[str] = ClientSession(ping_timeout=None)
    ready(session)
    p = session.request("x", {}, "h", 0, 100)
    assert session.cancel(p.id) is p
    assert session.cancel(p.id) is None
    assert session.next_deadline() is None
    assert session.tick(1000) == []


def test_offline_queue_and_in_flight_failure() -> None:
    session: ClientSession[str] = ClientSession(ping_timeout=None)
    ready(session)
    in_flight = session.request("a", {}, "a", 0, 10_000)
    failures = session.connection_lost(1)
    assert [f.pending for f in failures] == [in_flight]
    assert isinstance(failures[0].error, MeshConnectionError)
    assert session.state is SessionState.DISCONNECTED
    q1 = session.request("b", 1, "b", 2, 10_000)
    q2 = session.request("c", 2, "c", 3, 10_000)
    assert q1.queued
    assert q2.queued
    # queued requests survive another loss
    assert session.connection_lost(4) == []
    assign(session, 5, "conn-2")
    # application commands issued while restoring queue behind
    q3 = session.request("d", 3, "d", 6, 10_000)
    assert q3.queued
    internal = session.request("mesh/join-room", {"roomName": "r"}, "i", 6, 1000, internal=True)
    assert not internal.queued
    frames = session.mark_ready(7)
    assert [json.loads(f)["command"] for f in frames] == ["b", "c", "d"]
    assert session.state is SessionState.RESTORING
    assert session.mark_ready(8) == []
    assert session.state is SessionState.READY
    assert not session.request("e", 4, "e", 9, 1000).queued


def test_queued_command_expires() -> None:
    session: ClientSession[str] = ClientSession(ping_timeout=None)
    ready(session)
    session.connection_lost(0)
    p = session.request("a", {}, "a", 10, 100)
    (event,) = session.tick(110)
    assert isinstance(event, Failed)
    assert isinstance(event.error, MeshTimeoutError)
    assert "offline" in event.error.message
    assign(session, 120)
    assert session.mark_ready(120) == []
    assert p.id not in session.pending


def test_expired_queued_command_not_released() -> None:
    session: ClientSession[str] = ClientSession(ping_timeout=None)
    ready(session)
    session.connection_lost(0)
    session.request("a", {}, "a", 0, 100)
    assign(session, 200)
    assert session.mark_ready(200) == []  # expired: tick fails it
    (event,) = session.tick(200)
    assert isinstance(event, Failed)


def test_internal_request_needs_connection() -> None:
    session: ClientSession[str] = ClientSession()
    ready(session)
    session.connection_lost(0)
    with pytest.raises(MeshConnectionError):
        session.request("mesh/subscribe-record", {}, "h", 0, 100, internal=True)


def test_close_fails_everything() -> None:
    session: ClientSession[str] = ClientSession(ping_timeout=None)
    ready(session)
    a = session.request("a", {}, "a", 0, 100)
    session.connection_lost(0)
    b = session.request("b", {}, "b", 0, 100)
    assign(session, 1)
    failures = session.close()
    assert [f.pending.id for f in failures] == [b.id]
    assert a.id not in session.pending
    assert session.state is SessionState.CLOSED
    assert session.next_deadline() is None
    with pytest.raises(MeshConnectionError):
        session.request("c", {}, "c", 0, 100)


def test_responses_to_queued_ids_are_stray() -> None:
    session: ClientSession[str] = ClientSession(ping_timeout=None)
    ready(session)
    session.connection_lost(0)
    q = session.request("a", {}, "a", 0, 100)
    assign(session, 1)
    (event,) = session.receive(frame({"id": q.id, "payload": 1}), 2)
    assert isinstance(event, Ignored)
    assert q.id in session.pending


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="ping_timeout"):
        ClientSession(ping_timeout=0)
    with pytest.raises(ValueError, match="max_missed_pings"):
        ClientSession(max_missed_pings=-1)
    with pytest.raises(ValueError, match="assign_timeout"):
        ClientSession(assign_timeout=0)


def test_unserializable_payload_raises_type_error() -> None:
    session: ClientSession[str] = ClientSession()
    ready(session)
    with pytest.raises(TypeError):
        session.request("x", {"f": object()}, "h", 0, 100)
    assert session.pending == {}
