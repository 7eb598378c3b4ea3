"""Records through the Python SDK's MeshClient, on memory and Redis (PROTOCOL §11.5, §14)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from mesh_sdk.client import MeshClient
from tests.integration.features_cluster import ServerCluster, cluster
from tests.support.timing import eventually

__all__ = ["cluster"]

pytestmark = pytest.mark.integration


async def test_patch_subscription_converges_without_resync(cluster: ServerCluster) -> None:
    one, two = await cluster.start(2)
    for server in (one, two):
        server.expose_writable_record(re.compile(r"doc:.+"))
    versions: list[int] = []
    resyncs = 0
    async with (
        MeshClient(one.url) as reader,
        MeshClient(one.url) as w1,
        MeshClient(two.url) as w2,
    ):
        record = await reader.subscribe_record("doc:sdk", mode="patch")

        def changed(change: Any) -> None:
            nonlocal resyncs
            versions.append(record.version)
            resyncs += int(record.resyncing)

        record.on_change(changed)

        async def write(client: MeshClient, name: str) -> None:
            for count in range(25):
                await client.publish_record_update(
                    "doc:sdk", {name: {"count": count}}, strategy="deepMerge"
                )

        await asyncio.gather(write(w1, "a"), write(w2, "b"))
        stored, version = await two.get_record("doc:sdk")
        assert version == 50

        await eventually(lambda: record.version >= version)
        assert record.raw == stored
        assert versions == list(range(1, 51))  # every version once, in order: no gap
        assert resyncs == 0
