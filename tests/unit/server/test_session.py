"""ServerSession: liveness (§6), malformed frames, size and rate limits (§15), backpressure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mesh_sdk.protocol.codec import Request
from mesh_server.limits import Limits
from mesh_server.session import (
    PONG,
    Close,
    Discarded,
    Reply,
    ServerSession,
)


def make(limits: Limits | None = None, **kwargs: Any) -> ServerSession:
    options: dict[str, Any] = {"ping_interval": 1500, "latency_interval": 1000}
    options.update(kwargs)
    return ServerSession("conn-test", limits=limits or Limits(), **options)


def frame(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def decode(frames: list[bytes]) -> list[Any]:
    return [json.loads(f) for f in frames]


PONG_FRAME = frame({"id": 1, "command": "pong", "payload": {}})


# ------------------------------------------------------------------ construction and start


def test_invalid_intervals_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        make(ping_interval=0)
    with pytest.raises(ValueError, match="positive"):
        make(latency_interval=-1)
    with pytest.raises(ValueError, match="max_missed_pongs"):
        make(max_missed_pongs=-1)


def test_start_returns_assign_id_and_arms_timers() -> None:
    session = make()
    assert session.next_deadline is None
    first = session.start(10)
    assert json.loads(first) == {"command": "mesh/assign-id", "payload": "conn-test"}
    # §6: both timers start after assign-id; the earliest is latency (1000 < 1500).
    assert session.next_deadline == 1010
    with pytest.raises(RuntimeError):
        session.start(20)


def test_pong_event_repr() -> None:
    assert repr(PONG) == "PONG"


def test_timer_before_start_does_nothing() -> None:
    session = make()
    assert session.on_timer(10_000) == ([], None)


# ------------------------------------------------------------------ liveness (§6, Appendix A.6)


def test_appendix_a6_sequence() -> None:
    session = make()
    session.start(0)
    frames, close = session.on_timer(1000)
    assert close is None
    assert decode(frames) == [
        {"command": "latency", "payload": 0},
        {"command": "latency:request", "payload": {}},
    ]
    assert (
        session.receive(frame({"id": 0, "command": "latency:response", "payload": {}}), 1003)
        is None
    )
    assert session.rtt == 3
    assert session.next_deadline == 1500
    frames, close = session.on_timer(1500)
    assert decode(frames) == [{"command": "ping", "payload": {}}]
    assert session.awaiting_pong
    assert session.receive(PONG_FRAME, 1504) is PONG
    assert not session.awaiting_pong
    assert session.missed_pongs == 0
    # The next latency probe reports the measured rtt.
    frames, _ = session.on_timer(2000)
    assert decode(frames)[0] == {"command": "latency", "payload": 3}


def test_silent_client_closed_with_4000_after_two_intervals() -> None:
    # A.6: pings at 1.5 s and 3.0 s, closed at 4.5 s with 4000.
    session = make()
    session.start(0)
    pings = []
    close: Close | None = None
    now = 0
    while close is None and now < 10_000:
        deadline = session.next_deadline
        assert deadline is not None
        now = deadline
        frames, close = session.on_timer(now)
        pings += [now for f in decode(frames) if f["command"] == "ping"]
    assert pings == [1500, 3000]
    assert close == Close(4000)
    assert now == 4500
    assert session.closed
    assert session.close_code == 4000
    assert session.next_deadline is None
    assert session.on_timer(6000) == ([], None)


def test_latency_skipped_while_pong_awaited() -> None:
    session = make(ping_interval=1000, latency_interval=1000)
    session.start(0)
    frames, _ = session.on_timer(1000)
    # Ping goes first and marks "awaiting": latency is skipped in the same tick.
    assert decode(frames) == [{"command": "ping", "payload": {}}]
    session.receive(PONG_FRAME, 1001)
    frames, _ = session.on_timer(2000)
    assert [f["command"] for f in decode(frames)] == ["ping"]


def test_answered_ping_resets_missed_count() -> None:
    session = make(ping_interval=1000, latency_interval=100_000, max_missed_pongs=1)
    session.start(0)
    session.on_timer(1000)  # ping 1
    frames, close = session.on_timer(2000)  # ping 1 unanswered: missed = 1 (tolerated)
    assert close is None
    assert session.missed_pongs == 1
    session.receive(PONG_FRAME, 2100)
    assert session.missed_pongs == 0
    frames, close = session.on_timer(3000)  # answered → missed stays 0
    assert close is None
    assert session.missed_pongs == 0
    assert decode(frames) == [{"command": "ping", "payload": {}}]


def test_max_missed_pongs_zero_closes_at_second_ping() -> None:
    session = make(ping_interval=1000, latency_interval=100_000, max_missed_pongs=0)
    session.start(0)
    session.on_timer(1000)
    assert session.on_timer(2000) == ([], Close(4000))


def test_latency_response_without_request_ignored() -> None:
    session = make()
    session.start(0)
    assert session.receive(frame({"command": "latency:response", "payload": {}}), 5) is None
    assert session.rtt == 0


def test_latency_rtt_never_negative_and_rounded() -> None:
    session = make(ping_interval=100_000)
    session.start(0)
    session.on_timer(1000)
    session.receive(frame({"command": "latency:response"}), 1000)
    assert session.rtt == 0


def test_stalled_loop_skips_missed_ticks() -> None:
    session = make(ping_interval=1000, latency_interval=10_000)
    session.start(0)
    frames, _ = session.on_timer(5_500)  # loop stalled for several intervals
    assert [f["command"] for f in decode(frames)] == ["ping"]
    assert session.next_deadline == 6_500


def test_timer_not_due_sends_nothing() -> None:
    session = make()
    session.start(0)
    assert session.on_timer(10) == ([], None)


# ------------------------------------------------------------------ classification (§3.2)


def test_request_passed_through() -> None:
    session = make()
    session.start(0)
    event = session.receive(frame({"id": 7, "command": "echo", "payload": 1}), 1)
    assert event == Request(7, "echo", 1, has_command=True, raw_command="echo")


def test_binary_and_text_frames_alike() -> None:
    session = make()
    event = session.receive('{"id":null,"command":"x"}', 0)
    assert isinstance(event, Request)
    assert event.payload == {}


def test_receive_after_close_ignored() -> None:
    session = make()
    session.close(1000)
    assert session.receive(frame({"id": 1, "command": "x"}), 0) is None
    # close() is idempotent and keeps the first code.
    assert session.close(4000) == Close(4000)
    assert session.close_code == 1000


def test_oversize_frame_closes_1009() -> None:
    session = make(Limits(max_message_size=64))
    assert session.receive(b"[" + b" " * 100 + b"]", 0) == Close(1009, "frame too large")
    assert session.closed


def test_malformed_flood_closes_1008() -> None:
    session = make(Limits(max_malformed_frames=3, malformed_window=1.0))
    for i in range(3):
        assert isinstance(session.receive(b"not json", i), Discarded)
    assert session.receive(b"[1]", 3) == Close(1008, "malformed-frame limit")


def test_malformed_window_slides() -> None:
    session = make(Limits(max_malformed_frames=2, malformed_window=1.0))
    assert isinstance(session.receive(b"x", 0), Discarded)
    assert session.receive(frame({"command": "no id"}), 500) == Discarded("request without id")
    # The first one left the window at t=1000.
    assert isinstance(session.receive(b"1", 1000), Discarded)
    assert session.receive(b"2", 1400) == Close(1008, "malformed-frame limit")


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_payload_over_the_nesting_limit_is_answered_etoolarge() -> None:
    session = make(Limits(max_json_depth=3))
    assert isinstance(
        session.receive(frame({"id": 1, "command": "x", "payload": nested(3)}), 0), Request
    )
    event = session.receive(frame({"id": 7, "command": "x", "payload": nested(4)}), 0)
    assert isinstance(event, Reply)
    assert event.problem == "too_deep"
    reply = json.loads(event.frame)
    assert reply["id"] == 7
    assert reply["command"] == "x"
    assert reply["error"]["code"] == "ETOOLARGE"
    assert reply["error"]["details"] == {"limit": 3}
    assert not session.closed


def test_id_over_the_nesting_limit_is_malformed() -> None:
    session = make(Limits(max_id_depth=2, max_malformed_frames=1))
    assert isinstance(session.receive(frame({"id": nested(2), "command": "x"}), 0), Request)
    event = session.receive(frame({"id": nested(3), "command": "x"}), 0)
    assert event == Discarded("id nested deeper than 2 levels")
    assert session.receive(frame({"id": nested(3)}), 1) == Close(1008, "malformed-frame limit")


def test_too_deep_requests_are_rate_limited_first() -> None:
    session = make(Limits(rate_limit=1, rate_burst=1, max_json_depth=1))
    deep = frame({"id": 1, "command": "x", "payload": nested(2)})
    first = session.receive(deep, 0)
    assert isinstance(first, Reply)
    assert first.problem == "too_deep"
    second = session.receive(deep, 0)
    assert isinstance(second, Reply)
    assert second.problem == "rate_limited"
    assert json.loads(second.frame)["error"]["code"] == "ERATELIMIT"


@pytest.mark.parametrize(
    "frame_bytes",
    [
        b'{"id":1,"command":{}}',
        b'{"id":1,"command":["echo"],"payload":1}',
        b'{"id":1,"command":{"pong":1}}',
    ],
)
def test_non_string_commands_are_requests(frame_bytes: bytes) -> None:
    # Issue 8 item 1: a non-string (unhashable) command is a request answered ENOTFOUND.
    event = make().receive(frame_bytes, 0)
    assert isinstance(event, Request)
    assert event.command is None


def test_non_string_command_without_id_is_malformed() -> None:
    assert make().receive(b'{"command":{"x":1}}', 0) == Discarded("request without id")


# ------------------------------------------------------------------ rate limit (§15)


def test_rate_limit_rejects_with_retry_after() -> None:
    session = make(Limits(rate_limit=10, rate_burst=2))
    req = frame({"id": 1, "command": "echo"})
    assert isinstance(session.receive(req, 0), Request)
    assert isinstance(session.receive(req, 0), Request)
    event = session.receive(req, 0)
    assert isinstance(event, Reply)
    reply = json.loads(event.frame)
    assert reply["error"]["code"] == "ERATELIMIT"
    assert reply["error"]["details"] == {"retryAfterMs": 100}
    assert reply["id"] == 1
    # One token refills in 100 ms at 10/s.
    assert isinstance(session.receive(req, 100), Request)
    # Time never going backwards adds no tokens.
    assert isinstance(session.receive(req, 50), Reply)


def test_liveness_frames_exempt_from_rate_limit() -> None:
    session = make(Limits(rate_limit=1, rate_burst=1))
    session.start(0)
    session.receive(frame({"id": 1, "command": "echo"}), 0)
    for _ in range(5):
        assert session.receive(PONG_FRAME, 0) is PONG


def test_rate_limit_abuse_closes_1008() -> None:
    limits = Limits(rate_limit=1, rate_burst=1, rate_abuse_rejections=3, rate_abuse_window=1.0)
    session = make(limits)
    req = frame({"id": 1, "command": "echo"})
    session.receive(req, 0)
    for _ in range(3):
        assert isinstance(session.receive(req, 1), Reply)
    assert session.receive(req, 2) == Close(1008, "rate-limit abuse")


def test_rate_abuse_window_slides() -> None:
    limits = Limits(rate_limit=0.001, rate_burst=1, rate_abuse_rejections=1, rate_abuse_window=0.1)
    session = make(limits)
    req = frame({"id": 1, "command": "echo"})
    session.receive(req, 0)
    assert isinstance(session.receive(req, 0), Reply)
    assert isinstance(session.receive(req, 200), Reply)


# ------------------------------------------------------------------ backpressure (§15)


def test_inflight_counter() -> None:
    session = make(Limits(max_inflight_requests=2))
    assert session.request_started() is False
    assert session.request_started() is True
    assert session.reading_paused
    assert session.request_finished() is True  # 1 < 2: resume now
    assert not session.reading_paused
    assert session.request_finished() is False
    assert session.inflight == 0
