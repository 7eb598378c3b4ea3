"""``max_name_length`` is the one source of the name limit of every built-in (protocol.md §7, §15).

The built-in schemas bound names below only (1 character); the upper bound is the server's
configured limit, so a limit above the default 512 takes effect for all 14 name members.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mesh_sdk.protocol.errors import ValidationError
from mesh_server.limits import Limits
from tests.unit.server.features_fakes import FakeCluster, FakeCore

NAMED = [
    ("mesh/subscribe-channel", "channel", {}),
    ("mesh/get-channel-history", "channel", {}),
    ("mesh/unsubscribe-channel", "channel", {}),
    ("mesh/subscribe-record", "recordId", {}),
    ("mesh/publish-record-update", "recordId", {"newValue": {"v": 1}}),
    ("mesh/unsubscribe-record", "recordId", {}),
    ("mesh/join-room", "roomName", {}),
    ("mesh/get-room-metadata", "roomName", {}),
    ("mesh/subscribe-presence", "roomName", {}),
    ("mesh/publish-presence-state", "roomName", {"state": {"typing": True}}),
    ("mesh/get-presence-state", "roomName", {}),
    ("mesh/clear-presence-state", "roomName", {}),
    ("mesh/unsubscribe-presence", "roomName", {}),
    ("mesh/leave-room", "roomName", {}),
]
"""Every built-in with a name member, in an order where each one succeeds after the previous."""


@pytest.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    cluster = FakeCluster()
    yield cluster
    await cluster.close()


async def _core(cluster: FakeCluster, limits: Limits) -> FakeCore:
    (core,) = await cluster.start(1, limits=limits)
    everything = re.compile(r".+")
    core.features.channels.expose(everything)
    core.features.records.expose_writable(everything)
    core.features.presence.track(everything)
    return core


def _payload(member: str, extra: dict[str, Any], name: str) -> dict[str, Any]:
    return {member: name, **extra}


async def test_names_up_to_a_raised_limit_are_accepted_by_every_builtin(
    cluster: FakeCluster,
) -> None:
    core = await _core(cluster, Limits(max_name_length=600))
    conn = await core.connect()
    results = {}
    for command, member, extra in NAMED:
        results[command] = await core.request(conn, command, _payload(member, extra, "n" * 600))
    assert results["mesh/subscribe-channel"] == {"success": True, "history": []}
    assert results["mesh/subscribe-record"]["success"] is True
    assert results["mesh/join-room"] == {"success": True, "present": [conn.id]}
    assert results["mesh/get-presence-state"] == {
        "success": True,
        "present": [conn.id],
        "states": {conn.id: {"typing": True}},
    }
    assert results["mesh/leave-room"] == {"success": True}


@pytest.mark.parametrize(("command", "member", "extra"), NAMED, ids=[c for c, _, _ in NAMED])
async def test_one_character_over_the_limit_is_rejected_with_the_documented_error(
    cluster: FakeCluster, command: str, member: str, extra: dict[str, Any]
) -> None:
    core = await _core(cluster, Limits(max_name_length=600))
    conn = await core.connect()
    with pytest.raises(ValidationError) as info:
        await core.request(conn, command, _payload(member, extra, "n" * 601))
    assert info.value.message == f'Invalid payload for "{command}"'
    assert info.value.details == [
        {"path": f"/{member}", "message": "must be at most 600 characters long"}
    ]


async def test_default_limit_is_512(cluster: FakeCluster) -> None:
    core = await _core(cluster, Limits())
    conn = await core.connect()
    assert (await core.request(conn, "mesh/join-room", {"roomName": "r" * 512}))["success"]
    with pytest.raises(ValidationError) as info:
        await core.request(conn, "mesh/join-room", {"roomName": "r" * 513})
    assert info.value.details == [
        {"path": "/roomName", "message": "must be at most 512 characters long"}
    ]
