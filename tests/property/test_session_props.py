"""Property tests of ServerSession: arbitrary inputs never raise; liveness invariants hold."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mesh_sdk.protocol.codec import Request
from mesh_server.limits import Limits
from mesh_server.session import PONG, Close, Discarded, Pong, Reply, ServerSession

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)

commands = st.sampled_from(["pong", "latency:response", "echo", "ping", "mesh/noop", None, 5])


@st.composite
def frames(draw: st.DrawFn) -> bytes | str:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=40))
    if kind == 1:
        return draw(st.text(max_size=40))
    obj: dict[str, Any] = {}
    command = draw(commands)
    if command is not None:
        obj["command"] = command
    if draw(st.booleans()):
        obj["id"] = draw(json_values)
    if draw(st.booleans()):
        obj["payload"] = draw(json_values)
    data = json.dumps(obj)
    return data.encode() if kind == 2 else data


steps = st.lists(
    st.tuples(st.integers(0, 3000), st.one_of(frames(), st.just("TICK"))),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    steps=steps,
    max_missed=st.integers(0, 3),
    rate=st.one_of(st.none(), st.floats(0.5, 50)),
)
def test_arbitrary_sequences_never_raise_and_keep_invariants(
    steps: list[tuple[int, bytes | str]], max_missed: int, rate: float | None
) -> None:
    limits = Limits(rate_limit=rate, rate_burst=3, max_malformed_frames=5, max_message_size=30)
    session = ServerSession(
        "conn-p",
        limits=limits,
        ping_interval=1000,
        latency_interval=700,
        max_missed_pongs=max_missed,
    )
    now = 0
    session.start(now)
    closed_with: int | None = None
    for delta, item in steps:
        now += delta
        if item == "TICK":
            frames_out, close = session.on_timer(now)
            if close is not None:
                assert close.code == 4000
                assert frames_out == []
                assert session.missed_pongs > max_missed
        else:
            event = session.receive(item, now)
            assert event is None or isinstance(event, Request | Reply | Close | Pong | Discarded)
            if isinstance(event, Pong):
                assert event is PONG
                assert not session.awaiting_pong
                assert session.missed_pongs == 0
            if isinstance(event, Close):
                assert event.code in (1008, 1009)
            close = event if isinstance(event, Close) else None
        if close is not None and closed_with is None:
            closed_with = close.code
        # Invariants.
        assert session.rtt >= 0
        assert session.missed_pongs <= max_missed + 1
        if session.closed:
            assert session.next_deadline is None
            assert session.close_code == (
                closed_with if closed_with is not None else session.close_code
            )
        else:
            deadline = session.next_deadline
            assert deadline is not None
            if item == "TICK":
                # After running due work, the next deadline is in the future.
                assert deadline > now
    if closed_with is not None:
        assert session.closed
        assert session.close_code == closed_with
