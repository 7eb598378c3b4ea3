"""The start-up warning for unset ``allowed_origins`` on a reachable address (protocol.md §5.1)."""

from __future__ import annotations

import logging

import pytest

from mesh_server import MeshServer
from mesh_server.backends import MemoryBackend
from mesh_server.transport.base import TransportHooks

WARNING_TEXT = "allowed_origins is not set"


class SocketlessTransport:
    """A transport that owns no listening socket (as under ASGI, where the ASGI server does)."""

    def __init__(self) -> None:
        self.hooks: TransportHooks | None = None

    async def start(self, hooks: TransportHooks) -> None:
        self.hooks = hooks

    @property
    def port(self) -> int:
        return 0

    async def close(self) -> None:
        self.hooks = None


async def origin_warnings(
    caplog: pytest.LogCaptureFixture, server: MeshServer
) -> list[logging.LogRecord]:
    with caplog.at_level(logging.WARNING, logger="mesh_server"):
        async with server:
            assert server.started
    return [record for record in caplog.records if WARNING_TEXT in record.getMessage()]


async def test_unset_origins_on_every_interface_warn_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    warnings = await origin_warnings(caplog, MeshServer("0.0.0.0", 0, backend=MemoryBackend()))
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "accepted on 0.0.0.0 " in warnings[0].getMessage()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost"])
async def test_loopback_addresses_do_not_warn(caplog: pytest.LogCaptureFixture, host: str) -> None:
    assert await origin_warnings(caplog, MeshServer(host, 0, backend=MemoryBackend())) == []


@pytest.mark.parametrize("origins", [["https://app.example.com"], []])
async def test_an_allow_list_silences_the_warning(
    caplog: pytest.LogCaptureFixture, origins: list[str]
) -> None:
    # An empty list is an explicit choice too: every upgrade is answered 403.
    server = MeshServer("0.0.0.0", 0, backend=MemoryBackend(), allowed_origins=origins)
    assert await origin_warnings(caplog, server) == []


async def test_a_transport_without_a_listening_socket_does_not_warn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = SocketlessTransport()
    server = MeshServer("0.0.0.0", 0, backend=MemoryBackend(), transport=transport)
    assert await origin_warnings(caplog, server) == []
    assert transport.hooks is None  # started, then closed
