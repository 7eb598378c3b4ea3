"""Broker: pub/sub, application channels and history, direct sends, broadcasts (§9, §13.2)."""

from __future__ import annotations

from mesh_server.backends.messages import decode_envelope
from tests.conformance.conftest import Cluster


async def test_publish_reaches_every_subscribed_instance_in_order(cluster: Cluster) -> None:
    a, b, c = await cluster.start(3)
    await b.backend.subscribe("chat:1")
    await c.backend.subscribe("chat:1")

    for i in range(100):
        await a.backend.publish("chat:1", f"m{i}".encode())

    for node in (b, c):
        received = [await node.recorder.next("chat:1") for _ in range(100)]
        assert received == [f"m{i}".encode() for i in range(100)]
    assert [ch for ch, _ in a.recorder.log if ch == "chat:1"] == [], "a is not subscribed"


async def test_publish_from_several_instances_keeps_each_publishers_order(
    cluster: Cluster,
) -> None:
    a, b, c = await cluster.start(3)
    await c.backend.subscribe("chan")
    for i in range(30):
        await a.backend.publish("chan", f"a{i}".encode())
        await b.backend.publish("chan", f"b{i}".encode())
    received = [await c.recorder.next("chan") for _ in range(60)]
    assert [m for m in received if m.startswith(b"a")] == [f"a{i}".encode() for i in range(30)]
    assert [m for m in received if m.startswith(b"b")] == [f"b{i}".encode() for i in range(30)]


async def test_subscribe_is_idempotent(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await b.backend.subscribe("chan")
    await b.backend.subscribe("chan")
    await a.backend.publish("chan", b"once")
    assert await b.recorder.drain(a.backend, "chan") == [b"once"]


async def test_unsubscribe_stops_delivery(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await b.backend.subscribe("chan")
    await a.backend.publish("chan", b"before")
    assert await b.recorder.next("chan") == b"before"

    await b.backend.unsubscribe("chan")
    await b.backend.unsubscribe("chan")
    await b.backend.unsubscribe("never-subscribed")
    await a.backend.publish("chan", b"while-unsubscribed")
    await b.backend.subscribe("chan")
    await a.backend.publish("chan", b"after")

    assert await b.recorder.next("chan") == b"after"


async def test_binary_payloads_arrive_unchanged(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await b.backend.subscribe("bin")
    payload = bytes(range(256)) + b"\n\x00"
    await a.backend.publish("bin", payload)
    assert await b.recorder.next("bin") == payload


async def test_publish_channel_delivers_the_message_verbatim(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await b.backend.subscribe("notifications:global")
    await a.backend.publish_channel("notifications:global", '{"text":"héllo"}')
    await a.backend.publish_channel("notifications:global", "plain")
    assert await b.recorder.next("notifications:global") == '{"text":"héllo"}'.encode()
    assert await b.recorder.next("notifications:global") == b"plain"


async def test_history_keeps_exactly_n_newest_first(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await b.backend.subscribe("chat")
    for i in range(1, 6):
        await a.backend.publish_channel("chat", f"m{i}", history=3)

    assert [await b.recorder.next("chat") for _ in range(5)] == [
        f"m{i}".encode() for i in range(1, 6)
    ]
    for node in (a, b):
        assert await node.backend.channel_history("chat", 10) == ["m5", "m4", "m3"]
        assert await node.backend.channel_history("chat", 3) == ["m5", "m4", "m3"]
        assert await node.backend.channel_history("chat", 2) == ["m5", "m4"]
        assert await node.backend.channel_history("chat", 1) == ["m5"]
        assert await node.backend.channel_history("chat", 0) == []


async def test_history_example_from_the_protocol(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    for message in ("m1", "m2", "m3"):
        await a.backend.publish_channel("chat:room1", message, history=10)
    assert await a.backend.channel_history("chat:room1", 50) == ["m3", "m2", "m1"]
    assert await a.backend.channel_history("chat:room1", 2) == ["m3", "m2"]


async def test_history_zero_stores_nothing(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await b.backend.subscribe("live")
    await a.backend.publish_channel("live", "m1")
    await a.backend.publish_channel("live", "m2", history=0)
    assert await b.recorder.drain(a.backend, "live") == [b"m1", b"m2"]
    assert await a.backend.channel_history("live", 10) == []
    assert await a.backend.channel_history("unknown", 10) == []


async def test_history_trims_to_the_latest_limit(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    for i in range(5):
        await a.backend.publish_channel("chat", f"m{i}", history=5)
    await a.backend.publish_channel("chat", "last", history=2)
    assert await a.backend.channel_history("chat", 10) == ["last", "m4"]


async def test_channel_history_is_per_channel(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await a.backend.publish_channel("one", "x", history=5)
    await a.backend.publish_channel("two", "y", history=5)
    assert await a.backend.channel_history("one", 5) == ["x"]
    assert await a.backend.channel_history("two", 5) == ["y"]


# ------------------------------------------------------------------ direct sends and broadcasts


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
