"""Lifecycle, connection routing, direct sends and broadcasts (PROTOCOL §5, §13.2)."""

from __future__ import annotations

from mesh_server.backends.messages import decode_envelope
from tests.conformance.conftest import Cluster


async def test_ping_answers(cluster: Cluster) -> None:
    (node,) = await cluster.start(1)
    await node.backend.ping()


async def test_registered_connection_is_routed_from_every_instance(cluster: Cluster) -> None:
    a, b, c = await cluster.start(3)
    await a.backend.register_connection("conn-a")
    await b.backend.register_connection("conn-b")
    for node in (a, b, c):
        assert await node.backend.connection_instance("conn-a") == a.instance_id
        assert await node.backend.connection_instance("conn-b") == b.instance_id
        assert await node.backend.connection_instance("conn-unknown") is None
        assert sorted(await node.backend.all_connection_ids()) == ["conn-a", "conn-b"]


async def test_send_to_connection_reaches_only_the_owning_instance(cluster: Cluster) -> None:
    a, b, c = await cluster.start(3)
    await a.backend.register_connection("conn-a")
    frame = b'{"command":"hello","payload":{"x":1}}'

    assert await b.backend.send_to_connection("conn-a", frame) is True

    header, body = decode_envelope(await a.recorder.next(a.inbox))
    assert header == {"t": "send", "c": "conn-a"}
    assert body == frame
    assert await a.recorder.drain(a.backend, a.inbox) == []
    assert await b.recorder.drain(b.backend, b.inbox) == []
    assert await c.recorder.drain(c.backend, c.inbox) == []


async def test_send_to_local_connection_goes_through_the_inbox(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await a.backend.register_connection("conn-a")
    assert await a.backend.send_to_connection("conn-a", b"frame") is True
    header, body = decode_envelope(await a.recorder.next(a.inbox))
    assert (header, body) == ({"t": "send", "c": "conn-a"}, b"frame")


async def test_send_to_unknown_connection_returns_false(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    assert await a.backend.send_to_connection("conn-nobody", b"frame") is False
    await a.backend.register_connection("conn-gone")
    await a.backend.unregister_connection("conn-gone", [])
    assert await b.backend.send_to_connection("conn-gone", b"frame") is False
    assert await a.recorder.drain(a.backend, a.inbox) == []


async def test_sends_keep_order(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await a.backend.register_connection("conn-a")
    for i in range(50):
        assert await b.backend.send_to_connection("conn-a", str(i).encode())
    bodies = [decode_envelope(await a.recorder.next(a.inbox))[1] for _ in range(50)]
    assert bodies == [str(i).encode() for i in range(50)]


async def test_room_broadcast_is_one_message_to_every_instance(cluster: Cluster) -> None:
    nodes = await cluster.start(3)
    frame = b'{"command":"news","payload":"hi"}'

    await nodes[1].backend.broadcast(frame, room="lobby", exclude=["conn-1", "conn-2"])

    for node in nodes:
        messages = await node.recorder.drain(node.backend, cluster.broadcast_channel)
        assert len(messages) == 1
        header, body = decode_envelope(messages[0])
        assert header == {"t": "bc", "r": "lobby", "x": ["conn-1", "conn-2"]}
        assert body == frame


async def test_global_broadcast_without_exclusions(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await a.backend.broadcast(b"frame")
    for node in (a, b):
        header, body = decode_envelope(await node.recorder.next(cluster.broadcast_channel))
        assert header == {"t": "bc", "r": None, "x": []}
        assert body == b"frame"


async def test_broadcast_exclude_accepts_any_iterable(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await a.backend.broadcast(b"f", room="r", exclude=(c for c in ["conn-x"]))
    header, _ = decode_envelope(await a.recorder.next(cluster.broadcast_channel))
    assert header == {"t": "bc", "r": "r", "x": ["conn-x"]}
