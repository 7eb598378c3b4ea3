"""The transport seam's value types and the websockets adapter's framing, without sockets."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode

from mesh_server.transport import base
from mesh_server.transport.base import (
    HttpResponse,
    TransportConnection,
    TransportHooks,
    UpgradeDecision,
    UpgradeRequest,
    effective_backlog,
)
from mesh_server.transport.websockets import WebsocketsTransport
from mesh_server.transport.websockets_connection import WebsocketsConnection
from tests.support.timing import wait_for


def test_query_is_parsed_lazily_keeping_the_first_value() -> None:
    request = UpgradeRequest("/ws", query_string="token=a&token=b&empty=&x=%20y")
    assert request._query is None  # nothing parsed until asked
    assert request.query == {"token": "a", "empty": "", "x": " y"}
    assert request.query is request.query
    given = UpgradeRequest("/", query={"k": "v"}, query_string="k=other")
    assert given.query == {"k": "v"}


def test_cookies_from_repeated_headers_and_malformed_ones_ignored() -> None:
    headers = Headers()
    headers["Cookie"] = "a=1; b=2"
    headers["Cookie"] = 'bad="'
    headers["Cookie"] = "c=3"
    request = UpgradeRequest("/", headers=headers)
    assert request._cookies is None
    assert request.cookies == {"a": "1", "b": "2", "c": "3"}
    assert UpgradeRequest("/", headers={"Cookie": "t=x"}).cookies == {"t": "x"}
    assert UpgradeRequest("/").cookies == {}
    assert UpgradeRequest("/", cookies={"given": "1"}).cookies == {"given": "1"}


def test_request_origin_method_and_repr() -> None:
    request = UpgradeRequest("/p", headers={"Origin": "https://a.example"}, peer=("::1", 5))
    assert request.origin == "https://a.example"
    assert request.method == "GET"
    assert UpgradeRequest("/").origin is None
    assert repr(request) == "<UpgradeRequest GET '/p' from ('::1', 5)>"


def test_http_response_constructors_and_reason() -> None:
    assert HttpResponse.text(401, "token expired") == HttpResponse(401, b"token expired")
    response = HttpResponse.json(503, {"status": "x"}, (("Cache-Control", "no-store"),))
    assert (response.body, response.content_type) == (b'{"status":"x"}', "application/json")
    assert response.headers == (("Cache-Control", "no-store"),)
    assert response.reason == "Service Unavailable"
    assert HttpResponse(499).reason == "Error"


def test_effective_backlog_is_capped_by_somaxconn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = tmp_path / "somaxconn"
    limit.write_text("128\n")
    monkeypatch.setattr(base, "_SOMAXCONN", str(limit))
    assert effective_backlog(1024) == 128
    assert effective_backlog(64) == 64
    monkeypatch.setattr(base, "_SOMAXCONN", str(tmp_path / "missing"))
    assert effective_backlog(1024) == 1024


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70_000])
def test_fanout_framing_matches_websockets(size: int) -> None:
    transport = WebsocketsTransport(max_message_size=1 << 20)
    payload = b"x" * size
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False)
    wire = transport.wire(payload)
    assert wire == expected
    assert transport.wire(payload) is wire  # framed once per fan-out
    other = b"y" * size + b"!"
    assert transport.wire(other) == Frame(Opcode.TEXT, other).serialize(mask=False)


def test_transport_options_are_checked() -> None:
    with pytest.raises(ValueError, match="backlog"):
        WebsocketsTransport(max_message_size=1, backlog=0)
    transport = WebsocketsTransport(max_message_size=1)
    assert transport.sockets == ()
    for name in ("hooks", "loop", "port"):
        with pytest.raises(RuntimeError, match="not started"):
            getattr(transport, name)


async def test_connection_made_after_close_began_is_dropped() -> None:
    """A socket accepted as the listener closes is not left open with nobody to close it."""

    def on_upgrade(request: UpgradeRequest) -> UpgradeDecision:
        raise AssertionError("no upgrade expected")

    async def on_connect(connection: TransportConnection) -> None:
        raise AssertionError("no connection expected")

    transport = WebsocketsTransport(max_message_size=1 << 20, port=0)
    await transport.start(TransportHooks(on_upgrade, on_connect))
    await transport.close()
    loop = asyncio.get_running_loop()
    accepted, peer = socket.socketpair()
    with peer:
        peer.setblocking(False)
        # What asyncio does with a connection it accepted just before the listener closed.
        late, _ = await loop.connect_accepted_socket(
            lambda: WebsocketsConnection(transport), accepted
        )
        assert transport.live == set()
        assert await wait_for(loop.sock_recv(peer, 1)) == b""  # closed, not left waiting
        assert late.is_closing()
