"""Property tests of the client session and record state: garbage never raises, every request
is settled exactly once, patch application follows the versions."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mesh_sdk.protocol.patch import diff
from mesh_sdk.session import ClientSession
from mesh_sdk.session_events import Failed, Resolved
from mesh_sdk.subscriptions.presence import PresenceState
from mesh_sdk.subscriptions.records import Outcome, RecordState

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
commands = st.sampled_from(
    ["ping", "pong", "latency", "latency:request", "mesh/assign-id", "mesh/record-update", "x", ""]
)
ids = st.integers(-2, 12) | st.none() | st.text(max_size=2) | st.booleans()
error_objects = json_values | st.fixed_dictionaries(
    {"error": st.text(max_size=5), "code": st.text(max_size=6) | json_scalars}
)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=40))
    if kind == 1:
        return json.dumps(draw(json_values)).encode()
    obj: dict[str, Any] = {}
    if draw(st.booleans()):
        obj["id"] = draw(ids)
    if draw(st.booleans()):
        obj["command"] = draw(commands | json_scalars)
    if draw(st.booleans()):
        obj["payload"] = draw(json_values)
    if kind == 3:
        obj["error"] = draw(error_objects)
    return json.dumps(obj).encode()


operations = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.integers(1, 50)),
        st.tuples(st.just("frame"), frames()),
        st.tuples(st.just("respond"), st.integers(0, 12), st.booleans()),
        st.tuples(st.just("tick"), st.integers(0, 40)),
        st.tuples(st.just("lost"), st.just(0)),
        st.tuples(st.just("open"), st.booleans()),
        st.tuples(st.just("ready"), st.just(0)),
        st.tuples(st.just("cancel"), st.integers(0, 12)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_requests_settle_exactly_once_and_nothing_raises(ops: list[tuple[Any, ...]]) -> None:
    session: ClientSession[int] = ClientSession(ping_timeout=25)
    now = 0.0
    issued: set[int] = set()
    settled: list[int] = []
    cancelled: set[int] = set()

    def consume(events: list[Any]) -> None:
        for event in events:
            if isinstance(event, Resolved | Failed):
                settled.append(event.pending.handle)

    session.connection_opened(now)
    consume(session.receive(b'{"command":"mesh/assign-id","payload":"c1"}', now))
    for op in ops:
        kind = op[0]
        if kind == "request":
            try:
                pending = session.request("cmd", {"n": 1}, len(issued), now, op[1])
            except ConnectionError:
                continue
            issued.add(pending.handle)
        elif kind == "frame":
            consume(session.receive(op[1], now))
        elif kind == "respond":
            frame: dict[str, Any] = {"id": op[1], "command": "cmd", "payload": None}
            if op[2]:
                frame["error"] = {"error": "e", "code": "EX", "name": "X"}
            consume(session.receive(json.dumps(frame).encode(), now))
        elif kind == "tick":
            now += op[1]
            consume(session.tick(now))
        elif kind == "lost":
            consume(session.connection_lost(now))
        elif kind == "open":
            session.connection_opened(now)
            if op[1]:
                consume(session.receive(b'{"command":"mesh/assign-id","payload":"c2"}', now))
        elif kind == "ready":
            session.mark_ready(now)
        elif kind == "cancel":
            pending = session.cancel(op[1])
            if pending is not None:
                cancelled.add(pending.handle)
        session.data_to_send()
        assert len(settled) == len(set(settled)), "a request settled twice"
    consume(session.close())
    assert len(settled) == len(set(settled))
    assert set(settled) | cancelled == issued
    assert not set(settled) & cancelled
    assert session.pending == {}


@settings(max_examples=300, deadline=None)
@given(st.lists(frames(), max_size=20))
def test_garbage_never_raises(data: list[bytes]) -> None:
    session: ClientSession[None] = ClientSession()
    session.connection_opened(0)
    for item in data:
        session.receive(item, 0)
        session.receive(item.decode("utf-8", "replace"), 0)
    session.tick(10**9)


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, min_size=1, max_size=8), st.lists(st.integers(0, 7), max_size=12))
def test_patch_mode_converges_or_asks_for_resync(values: list[Any], order: list[int]) -> None:
    """Pushes in any order/duplication: the state is either exactly some version's value or a
    resync was requested; never a wrong value for its version."""
    versions = {i + 1: v for i, v in enumerate(values)}
    patches = {i + 1: diff(values[i - 1] if i > 0 else None, v) for i, v in enumerate(values)}
    state = RecordState(None, 0)
    for index in order:
        version = index % len(values) + 1
        outcome, _ = state.apply_push(
            {"recordId": "r", "patch": patches[version], "version": version}
        )
        if outcome is Outcome.GAP:
            assert state.resyncing
            state.reset(versions[len(values)], len(values))
        if state.version:
            assert state.value == versions[state.version]
    for version in range(state.version + 1, len(values) + 1):
        state.apply_push({"recordId": "r", "patch": patches[version], "version": version})
    assert state.version == len(values)
    assert state.value == values[-1]


presence_events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["join", "leave", "state"]),
        "connectionId": st.sampled_from(["a", "b", "c"]),
        "roomName": st.just("r"),
        "state": st.none() | st.integers(0, 2),
    }
)


@settings(max_examples=200, deadline=None)
@given(st.lists(presence_events, max_size=20))
def test_presence_events_idempotent(events: list[dict[str, Any]]) -> None:
    once = PresenceState()
    twice = PresenceState()
    for event in events:
        once.apply(event)
        twice.apply(event)
        assert twice.apply(event) is None  # applying the same event again changes nothing
    assert (once.present, once.states) == (twice.present, twice.states)
