"""The start-up warning for an unset ``allowed_origins`` on a non-loopback host (PROTOCOL §5.1)."""

from __future__ import annotations

import logging

import pytest

from mesh_server import MeshServer
from mesh_server.backends import MemoryBackend
from mesh_server.transport.base import ConnectHandler, UpgradeHook

WARNING_TEXT = "allowed_origins is not set"


class IdleTransport:
    """A transport that binds nothing: the start path runs without opening a socket."""

    def __init__(self) -> None:
        self.bound: tuple[str, int] | None = None

    async def start(
        self, host: str, port: int, *, on_upgrade: UpgradeHook, on_connect: ConnectHandler
    ) -> None:
        self.bound = (host, port)

    @property
    def port(self) -> int:
        return 0 if self.bound is None else self.bound[1]

    def stop_accepting(self) -> None:
        """Nothing to stop: no socket was opened."""

    async def close(self) -> None:
        self.bound = None


async def start_and_log(
    caplog: pytest.LogCaptureFixture, host: str, allowed_origins: list[str] | None
) -> list[logging.LogRecord]:
    transport = IdleTransport()
    server = MeshServer(
        host, 0, backend=MemoryBackend(), transport=transport, allowed_origins=allowed_origins
    )
    with caplog.at_level(logging.WARNING, logger="mesh_server"):
        async with server:
            assert transport.bound == (host, 0)
    return [record for record in caplog.records if WARNING_TEXT in record.getMessage()]


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.1.2.3", "mesh.example.com"])
async def test_unset_origins_on_a_reachable_host_warns_once(
    caplog: pytest.LogCaptureFixture, host: str
) -> None:
    warnings = await start_and_log(caplog, host, None)
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert host in warnings[0].getMessage()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
async def test_loopback_hosts_do_not_warn(caplog: pytest.LogCaptureFixture, host: str) -> None:
    assert await start_and_log(caplog, host, None) == []


async def test_an_allow_list_silences_the_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert await start_and_log(caplog, "0.0.0.0", ["https://app.example.com"]) == []


async def test_an_empty_allow_list_counts_as_set(caplog: pytest.LogCaptureFixture) -> None:
    # An explicit choice (every upgrade is answered 403): nothing to warn of.
    assert await start_and_log(caplog, "0.0.0.0", []) == []
