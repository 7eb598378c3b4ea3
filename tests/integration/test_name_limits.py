"""A raised ``max_name_length`` takes effect on the wire (protocol.md §7, §15; issue 9 item 7)."""

from __future__ import annotations

import re

import pytest

from tests.support.raw_client import RawClient, running_server

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("transport")]


async def test_600_character_channel_accepted_601_rejected_with_evalidation() -> None:
    async with running_server(max_name_length=600) as server:
        server.expose_channel(re.compile(r"c+"))
        async with RawClient.open(server.url) as client:
            accepted = await client.call("mesh/subscribe-channel", {"channel": "c" * 600})
            assert accepted == {"success": True, "history": []}
            frame = await client.request(1, "mesh/subscribe-channel", {"channel": "c" * 601})
    assert frame["error"] == {
        "error": 'Invalid payload for "mesh/subscribe-channel"',
        "code": "EVALIDATION",
        "name": "ValidationError",
        "details": [{"path": "/channel", "message": "must be at most 600 characters long"}],
    }
