"""Channel feature logic on the memory backend with a fake core (protocol.md §7, §9, §15)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from mesh_sdk.protocol.contract import ChannelSpec, ContractIndex
from mesh_sdk.protocol.errors import TooLargeError, UnavailableError, ValidationError
from mesh_server.backends.memory import MemoryBackend
from mesh_server.limits import Limits
from tests.unit.server.features_fakes import FakeCluster, FakeConnection, FakeCore

SUB = "mesh/subscribe-channel"
UNSUB = "mesh/unsubscribe-channel"
HISTORY = "mesh/get-channel-history"
MSG = "mesh/subscription-message"


@pytest.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    cluster = FakeCluster()
    yield cluster
    await cluster.close()


async def one(cluster: FakeCluster, **options: Any) -> FakeCore:
    (core,) = await cluster.start(1, **options)
    core.features.channels.expose(re.compile(r"chat:.+"))
    return core


def backend_subscribers(cluster: FakeCluster, channel: str) -> int:
    """How many instances hold a backend subscription (a publish reaches them)."""
    return cluster.hub.publish(channel, b"__probe__")


async def messages(conn: FakeConnection, count: int) -> list[str]:
    return [p["message"] for p in await conn.wait_pushes(MSG, count) if p["message"] != "__probe__"]


async def test_denied_unless_exposed(cluster: FakeCluster) -> None:
    core = await one(cluster)
    conn = await core.connect()
    assert await core.request(conn, SUB, {"channel": "news:1"}) == {
        "success": False,
        "history": [],
    }
    assert backend_subscribers(cluster, "news:1") == 0


async def test_internal_names_are_never_subscribable(cluster: FakeCluster) -> None:
    (core,) = await cluster.start(1)
    core.features.channels.expose(re.compile(r".*"))
    conn = await core.connect()
    for name in ("mesh:presence:updates:room:lobby", "__keyspace@0__:x", "__keyevent@0__:del"):
        assert await core.request(conn, SUB, {"channel": name}) == {
            "success": False,
            "history": [],
        }
        assert await core.request(conn, HISTORY, {"channel": name}) == {
            "success": False,
            "history": [],
        }
    assert await core.request(conn, SUB, {"channel": "chat:x"}) == {"success": True, "history": []}
    with pytest.raises(ValueError, match="internal"):
        await core.features.channels.publish("mesh:record:x", "hi")


async def test_guard_allows_and_denies_per_connection(cluster: FakeCluster) -> None:
    (core,) = await cluster.start(1)
    allowed: set[str] = set()
    core.features.channels.expose(
        re.compile(r"vip:.+"), lambda connection, name: connection.id in allowed
    )
    a, b = await core.connect(), await core.connect()
    allowed.add(a.id)
    assert (await core.request(a, SUB, {"channel": "vip:1"}))["success"] is True
    assert (await core.request(b, SUB, {"channel": "vip:1"}))["success"] is False


async def test_history_exactly_n_newest_first_and_clamped(cluster: FakeCluster) -> None:
    core = await one(cluster, limits=Limits(max_history=2))
    for text in ("m1", "m2", "m3", "m4"):
        await core.features.channels.publish("chat:h", text, history=3)
    conn = await core.connect()
    assert await core.request(conn, SUB, {"channel": "chat:h", "historyLimit": 10}) == {
        "success": True,
        "history": ["m4", "m3"],
    }
    assert await core.request(conn, HISTORY, {"channel": "chat:h", "limit": 1}) == {
        "success": True,
        "history": ["m4"],
    }
    core2 = await one(cluster)
    conn2 = await core2.connect()
    assert (await core2.request(conn2, HISTORY, {"channel": "chat:h"}))["history"] == [
        "m4",
        "m3",
        "m2",
    ]
    assert (await core2.request(conn2, SUB, {"channel": "chat:h", "historyLimit": 0}))[
        "history"
    ] == []
    assert await core2.request(conn2, HISTORY, {"channel": "chat:nope"}) == {
        "success": True,
        "history": [],
    }
    assert await core2.request(conn2, HISTORY, {"channel": "other"}) == {
        "success": False,
        "history": [],
    }


async def test_live_messages_in_order_once_per_subscriber(cluster: FakeCluster) -> None:
    core = await one(cluster)
    a, b = await core.connect(), await core.connect()
    await core.request(a, SUB, {"channel": "chat:1"})
    await core.request(b, SUB, {"channel": "chat:1"})
    await core.request(b, SUB, {"channel": "chat:1"})  # repeat: no duplicate deliveries
    for index in range(5):
        await core.features.channels.publish("chat:1", f"m{index}")
    expected = [f"m{index}" for index in range(5)]
    assert await messages(a, 5) == expected
    assert await messages(b, 5) == expected
    assert a.pushes(MSG)[0] == {"channel": "chat:1", "message": "m0"}


async def test_non_strings_are_sent_as_compact_json(cluster: FakeCluster) -> None:
    core = await one(cluster)
    conn = await core.connect()
    await core.request(conn, SUB, {"channel": "chat:j"})

    class Note(BaseModel):
        text: str

    await core.features.channels.publish("chat:j", {"type": "msg", "n": [1, 2]})
    await core.features.channels.publish("chat:j", Note(text="hi"))
    assert await messages(conn, 2) == ['{"type":"msg","n":[1,2]}', '{"text":"hi"}']


async def test_contract_validates_non_string_messages(cluster: FakeCluster) -> None:
    class Message(BaseModel):
        text: str

    spec = ChannelSpec("Chat", re.compile(r"chat:.+"), "chat:{room}", Message)
    core = await one(cluster, contract=ContractIndex("app", channel_specs=[spec]))
    conn = await core.connect()
    await core.request(conn, SUB, {"channel": "chat:v"})
    with pytest.raises(ValidationError):
        await core.features.channels.publish("chat:v", {"text": 5})
    await core.features.channels.publish("chat:v", Message(text="ok"))
    await core.features.channels.publish("chat:v", "raw text is sent verbatim")
    assert await messages(conn, 2) == ['{"text":"ok"}', "raw text is sent verbatim"]


async def test_external_bytes_are_decoded_with_replacement(cluster: FakeCluster) -> None:
    core = await one(cluster)
    conn = await core.connect()
    await core.request(conn, SUB, {"channel": "chat:x"})
    await core.backend.publish("chat:x", b"bad \xff utf8")
    assert await messages(conn, 1) == ["bad \ufffd utf8"]


async def test_unsubscribe_answers_for_this_connection_and_releases(cluster: FakeCluster) -> None:
    core = await one(cluster)
    a, b = await core.connect(), await core.connect()
    await core.request(a, SUB, {"channel": "chat:u"})
    await core.request(b, SUB, {"channel": "chat:u"})
    assert backend_subscribers(cluster, "chat:u") == 1
    assert await core.request(a, UNSUB, {"channel": "chat:u"}) is True
    assert await core.request(a, UNSUB, {"channel": "chat:u"}) is False
    assert backend_subscribers(cluster, "chat:u") == 1
    assert await core.request(b, UNSUB, {"channel": "chat:u"}) is True
    # §9.4: the last local subscriber left → UNSUBSCRIBE.
    assert backend_subscribers(cluster, "chat:u") == 0
    assert await core.request(a, UNSUB, {"channel": "chat:never"}) is False


async def test_disconnect_releases_backend_subscriptions(cluster: FakeCluster) -> None:
    core = await one(cluster)
    conn = await core.connect()
    await core.request(conn, SUB, {"channel": "chat:d1"})
    await core.request(conn, SUB, {"channel": "chat:d2"})
    await core.disconnect(conn)
    assert backend_subscribers(cluster, "chat:d1") == 0
    assert backend_subscribers(cluster, "chat:d2") == 0
    assert core.features.quota.count(conn.id) == 0


async def test_subscription_limit_counts_new_subscriptions_only(cluster: FakeCluster) -> None:
    core = await one(cluster, limits=Limits(max_subscriptions=2))
    conn = await core.connect()
    await core.request(conn, SUB, {"channel": "chat:1"})
    await core.request(conn, SUB, {"channel": "chat:1"})
    await core.request(conn, "mesh/join-room", {"roomName": "r1"})
    with pytest.raises(TooLargeError) as info:
        await core.request(conn, SUB, {"channel": "chat:2"})
    assert info.value.details == {"limit": 2}
    with pytest.raises(TooLargeError):
        await core.request(conn, "mesh/join-room", {"roomName": "r2"})
    await core.request(conn, "mesh/join-room", {"roomName": "r1"})  # repeat is fine
    await core.request(conn, UNSUB, {"channel": "chat:1"})
    assert (await core.request(conn, SUB, {"channel": "chat:2"}))["success"] is True
    assert backend_subscribers(cluster, "chat:1") == 0


async def test_name_length_follows_the_configured_limit(cluster: FakeCluster) -> None:
    core = await one(cluster, limits=Limits(max_name_length=8))
    conn = await core.connect()
    with pytest.raises(ValidationError) as info:
        await core.request(conn, SUB, {"channel": "chat:123456789"})
    assert info.value.details == [
        {"path": "/channel", "message": "must be at most 8 characters long"}
    ]


class SlowHistoryBackend(MemoryBackend):
    """Publishes on the channel while the subscribe is reading history, then yields."""

    async def channel_history(self, channel: str, limit: int) -> list[str]:
        history = await super().channel_history(channel, limit)
        await self.publish_channel(channel, "during-subscribe")
        for _ in range(5):
            await asyncio.sleep(0)  # let the message reach the feature while pending
        return history


async def test_response_precedes_messages_of_the_subscription(cluster: FakeCluster) -> None:
    core = await one(cluster, backend_factory=SlowHistoryBackend)
    await core.features.channels.publish("chat:o", "old", history=5)
    conn = await core.connect()
    response = await core.request(conn, SUB, {"channel": "chat:o", "historyLimit": 5})
    assert response["history"] == ["old"]
    assert await messages(conn, 1) == ["during-subscribe"]
    # §9.3: the response was queued before the held message.
    assert core.response_index(conn, SUB) < conn.frames.index(
        {"command": MSG, "payload": {"channel": "chat:o", "message": "during-subscribe"}}
    )


class FailingSubscribeBackend(MemoryBackend):
    fail = True

    async def subscribe(self, channel: str) -> None:
        if self.fail and not channel.startswith(self.namespace):
            raise UnavailableError("backend down")
        await super().subscribe(channel)


async def test_backend_failure_answers_unavailable_and_leaves_nothing(
    cluster: FakeCluster,
) -> None:
    core = await one(cluster, backend_factory=FailingSubscribeBackend)
    conn = await core.connect()
    with pytest.raises(UnavailableError):
        await core.request(conn, SUB, {"channel": "chat:f"})
    assert core.features.quota.count(conn.id) == 0
    assert core.features.channels.subscribers("chat:f") == set()
    assert await core.request(conn, UNSUB, {"channel": "chat:f"}) is False
    FailingSubscribeBackend.fail = False
    try:
        assert (await core.request(conn, SUB, {"channel": "chat:f"}))["success"] is True
    finally:
        FailingSubscribeBackend.fail = True


class SlowSubscribeBackend(MemoryBackend):
    """SUBSCRIBE and UNSUBSCRIBE take a few loop turns, like a network round trip."""

    async def subscribe(self, channel: str) -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        await super().subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        await super().unsubscribe(channel)


async def test_concurrent_subscribe_unsubscribe_never_leaks(cluster: FakeCluster) -> None:
    core = await one(cluster, backend_factory=SlowSubscribeBackend)
    conns = [await core.connect() for _ in range(20)]

    async def churn(conn: FakeConnection, rounds: int) -> None:
        for _ in range(rounds):
            await core.request(conn, SUB, {"channel": "chat:race"})
            await core.request(conn, UNSUB, {"channel": "chat:race"})

    await asyncio.gather(*(churn(conn, 3) for conn in conns))
    assert backend_subscribers(cluster, "chat:race") == 0
    await asyncio.gather(*(core.request(conn, SUB, {"channel": "chat:race"}) for conn in conns))
    assert backend_subscribers(cluster, "chat:race") == 1
    await asyncio.gather(*(core.disconnect(conn) for conn in conns[:10]))
    assert backend_subscribers(cluster, "chat:race") == 1
    await asyncio.gather(
        *(core.request(conn, UNSUB, {"channel": "chat:race"}) for conn in conns[10:])
    )
    assert backend_subscribers(cluster, "chat:race") == 0


async def test_disconnect_during_subscribe_gives_the_hold_back(cluster: FakeCluster) -> None:
    core = await one(cluster, backend_factory=SlowSubscribeBackend)
    conn = await core.connect()
    task = asyncio.create_task(core.request(conn, SUB, {"channel": "chat:gone"}))
    await asyncio.sleep(0)  # the subscribe is now awaiting the backend
    await core.disconnect(conn)
    await task
    assert backend_subscribers(cluster, "chat:gone") == 0
    assert core.features.channels.subscribers("chat:gone") == set()


async def test_backend_recovery_resubscribes(cluster: FakeCluster) -> None:
    core = await one(cluster)
    conn = await core.connect()
    await core.request(conn, SUB, {"channel": "chat:r"})
    await core.backend.unsubscribe("chat:r")  # the link dropped the subscription
    assert backend_subscribers(cluster, "chat:r") == 0
    await core.features.channels.on_backend_recovered()
    assert backend_subscribers(cluster, "chat:r") == 1
