"""Pipeline edge cases without sockets (protocol.md §3.4, §4)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pydantic import BaseModel

from mesh_sdk.protocol.codec import Request
from mesh_sdk.protocol.generated import CONTRACT as BUILTIN_CONTRACT
from mesh_sdk.protocol.generated.models import (
    JoinRoomRequest,
    JoinRoomResponse,
    NoopRequest,
    NoopResponse,
)
from mesh_server import MeshServer
from mesh_server.features import Builtin, PongListener
from mesh_server.pipeline import is_reserved


class FakeConnection:
    id = "conn-fake"
    closed = False

    def send(self, frame: bytes) -> None:
        raise AssertionError("the pipeline returns frames, it never sends")


def request(command: Any, payload: Any = None, has_command: bool = True) -> Request:
    return Request(
        1,
        command if isinstance(command, str) else None,
        {} if payload is None else payload,
        has_command=has_command,
        raw_command=command,
    )


async def run(server: MeshServer, req: Request) -> Any:
    if server._core.pipeline.is_builtin(req.command):
        frame = await server._core.pipeline.run_builtin(FakeConnection(), req)  # type: ignore[arg-type]
    else:
        frame = await server._core.pipeline.run_command(FakeConnection(), req)  # type: ignore[arg-type]
    return json.loads(frame)


class Point(BaseModel):
    x: int
    y: int = 0


async def _noop(connection: Any, model: NoopRequest) -> NoopResponse:
    return NoopResponse.model_construct(True)


def test_reserved_names() -> None:
    assert is_reserved("mesh/anything")
    assert is_reserved("latency:request")
    assert not is_reserved("meshy")


def test_registration_errors() -> None:
    server = MeshServer()
    with pytest.raises(ValueError, match="non-empty"):
        server.expose_command("", lambda ctx: None)
    noop = Builtin(NoopRequest, _noop)
    with pytest.raises(ValueError, match="not a built-in command"):
        server._core.pipeline.add_builtins({"noop": noop})
    with pytest.raises(ValueError, match="not a built-in command"):
        server._core.pipeline.add_builtins({"mesh/not-in-contract": noop})
    with pytest.raises(TypeError, match="must take JoinRoomRequest, not NoopRequest"):
        server._core.pipeline.add_builtins({"mesh/join-room": noop})
    server.expose_command("a", lambda ctx: None)
    server.expose_command("b", lambda ctx: None)
    assert server._core.pipeline.command_names == ["a", "b"]


async def test_model_results_are_dumped_without_contract() -> None:
    server = MeshServer()
    server.expose_command("point", lambda ctx: Point(x=1))
    assert (await run(server, request("point")))["payload"] == {"x": 1}


async def test_sync_handler_returning_awaitable_and_sync_middleware() -> None:
    server = MeshServer()

    async def later() -> str:
        return "done"

    server.expose_command("later", lambda ctx: later(), middlewares=[lambda ctx: None])
    assert (await run(server, request("later")))["payload"] == "done"


async def test_command_text_in_enotfound_messages() -> None:
    server = MeshServer()
    frame = await run(server, request({"odd": 1}))
    assert frame["error"]["error"] == 'Command "{"odd":1}" not found'
    frame = await run(server, request(None, has_command=False))
    assert frame["error"]["error"] == 'Command "undefined" not found'
    frame = await server._core.pipeline.run_builtin(FakeConnection(), request("mesh/nope"))  # type: ignore[arg-type]
    assert json.loads(frame)["error"]["code"] == "ENOTFOUND"


async def test_builtin_failures() -> None:
    server = MeshServer(debug=True)

    async def broken(connection: Any, model: NoopRequest) -> NoopResponse:
        raise KeyError("oops")

    server._core.pipeline.add_builtins({"mesh/noop": Builtin(NoopRequest, broken)})
    frame = await run(server, request("mesh/noop"))
    assert frame["error"]["code"] == "ESERVER"
    assert "KeyError" in frame["error"]["error"]


async def test_builtin_handlers_get_the_validated_model_and_return_models() -> None:
    server = MeshServer()
    seen: list[Any] = []

    async def join(connection: Any, model: JoinRoomRequest) -> JoinRoomResponse:
        seen.append(model)
        return JoinRoomResponse.model_construct(success=True, present=[])

    server._core.pipeline.add_builtins({"mesh/join-room": Builtin(JoinRoomRequest, join)})
    frame = await server._core.pipeline.run_builtin(
        FakeConnection(),  # type: ignore[arg-type]
        request("mesh/join-room", {"roomName": "r", "extra": 1}),
    )
    assert frame.endswith(b'"payload":{"success":true,"present":[]}}')
    assert type(seen[0]) is JoinRoomRequest
    assert seen[0].roomName == "r"


# ------------------------------------------------------------------ logging (issue 8 item 6)


async def test_bad_input_is_counted_not_logged_with_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MeshServer()

    async def join(connection: Any, model: JoinRoomRequest) -> JoinRoomResponse:
        return JoinRoomResponse.model_construct(success=True, present=[])

    server._core.pipeline.add_builtins({"mesh/join-room": Builtin(JoinRoomRequest, join)})
    caplog.set_level(logging.DEBUG, logger="mesh_server")
    assert (await run(server, request("nope")))["error"]["code"] == "ENOTFOUND"
    assert (await run(server, request("mesh/join-room", {})))["error"]["code"] == "EVALIDATION"
    assert (await run(server, request("nope")))["error"]["code"] == "ENOTFOUND"
    totals = server._core.pipeline.bad_input.totals
    assert (totals["unknown_command"], totals["invalid_payload"]) == (2, 1)
    assert not [r for r in caplog.records if r.exc_info]
    assert not [r for r in caplog.records if r.levelno > logging.INFO]
    # One summary line (the first occurrence after a quiet interval); the rest at DEBUG.
    summaries = [r for r in caplog.records if r.levelno == logging.INFO]
    assert [r.getMessage() for r in summaries] == [
        "bad client input in the last 0.0 s: 1 unknown_command"
    ]


async def test_unexpected_failures_log_one_traceback_with_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MeshServer()

    def broken(ctx: Any) -> Any:
        raise KeyError("oops")

    server.expose_command("broken", broken)
    server.expose_command("unencodable", lambda ctx: {"a": {1, 2}})
    frame = await server._core.pipeline.run_command(
        FakeConnection(),  # type: ignore[arg-type]
        Request(2**70, "broken", {}, raw_command="broken", raw_id=str(2**70)),
    )
    assert json.loads(frame)["error"] == {
        "error": "Internal server error",
        "code": "ESERVER",
        "name": "Error",
    }
    assert (await run(server, request("unencodable")))["error"]["code"] == "ESERVER"
    assert server._core.pipeline.failures == 2
    failures = [r for r in caplog.records if r.exc_info]
    assert [r.getMessage() for r in failures] == [
        f"command 'broken' failed (request id {2**70} on conn-fake)",
        "invalid result of command 'unencodable' (request id 1 on conn-fake)",
    ]


def test_internal_error_answers_even_outside_handlers(caplog: pytest.LogCaptureFixture) -> None:
    server = MeshServer()
    connection: Any = FakeConnection()
    frame = server._core.pipeline.internal_error(connection, request("x"), RuntimeError("bug"))
    assert frame is not None
    assert json.loads(frame)["error"]["code"] == "ESERVER"
    # An id that cannot be encoded (never decoded from JSON) still gets a logged outcome.
    odd = Request(object(), "x", {}, raw_command="x")
    assert server._core.pipeline.internal_error(connection, odd, RuntimeError("bug")) is None
    assert [r.getMessage() for r in caplog.records if r.exc_info][-1] == (
        "cannot answer a request on conn-fake"
    )


def test_every_builtin_is_registered_with_its_contract_request_model() -> None:
    server = MeshServer(client_metadata_writes=True)
    commands: dict[str, Builtin[Any]] = {}
    commands.update(server.connections.builtin_commands())
    for feature in server._core.features:
        commands.update(feature.builtin_commands())
    server._core.pipeline.add_builtins(commands)  # raises on a model the contract does not name
    assert set(commands) | {"mesh/contract-info"} == set(BUILTIN_CONTRACT.commands)


def test_only_features_that_react_to_pongs_are_called() -> None:
    server = MeshServer()
    # Channels, rooms and records have no pong hook: a pong makes one task, for presence only.
    assert [f for f in server._core.features if isinstance(f, PongListener)] == [server.presence]
    assert server._core.pong_listeners == [server.presence]
