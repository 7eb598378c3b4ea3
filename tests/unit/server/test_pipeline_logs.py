"""The pipeline's per-command outcome log: one DEBUG record per request with structured fields."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mesh_sdk.protocol.codec import Request
from mesh_sdk.protocol.generated.models import NoopRequest, NoopResponse
from mesh_server import ForbiddenError, MeshServer
from mesh_server.features import Builtin
from mesh_server.logs import (
    FIELD_CODE,
    FIELD_COMMAND,
    FIELD_CONNECTION_ID,
    FIELD_DURATION_MS,
    FIELD_INSTANCE_ID,
    FIELD_REQUEST_ID,
)


class FakeConnection:
    id = "conn-logs"
    closed = False


def forbidden(ctx: Any) -> Any:
    raise ForbiddenError("no")


def broken(ctx: Any) -> Any:
    raise RuntimeError("bug")


@pytest.fixture
def server() -> MeshServer:
    server = MeshServer()
    server.expose_command("echo", lambda ctx: ctx.payload)
    server.expose_command("forbidden", forbidden)
    server.expose_command("broken", broken)
    server._core.pipeline.add_builtins({"mesh/noop": Builtin(NoopRequest, _noop)})
    return server


async def _noop(connection: Any, payload: NoopRequest) -> NoopResponse:
    return NoopResponse.model_construct(True)


async def run(server: MeshServer, command: Any) -> None:
    name = command if isinstance(command, str) else None
    req = Request(7, name, {}, has_command=True, raw_command=command)
    pipeline = server._core.pipeline
    runner = pipeline.run_builtin if pipeline.is_builtin(name) else pipeline.run_command
    await runner(FakeConnection(), req)  # type: ignore[arg-type]


async def test_each_outcome_is_one_debug_record_with_fields(
    server: MeshServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="mesh_server"):
        for command in ("echo", "forbidden", "broken", "missing", "mesh/noop", ["not", "text"]):
            await run(server, command)
    outcomes = [r for r in caplog.records if hasattr(r, FIELD_DURATION_MS)]
    assert [(getattr(r, FIELD_COMMAND), getattr(r, FIELD_CODE)) for r in outcomes] == [
        ("echo", "ok"),
        ("forbidden", "EFORBIDDEN"),
        ("broken", "ESERVER"),
        ("missing", "ENOTFOUND"),
        ("mesh/noop", "ok"),
        ('["not","text"]', "ENOTFOUND"),
    ]
    for record in outcomes:
        assert record.levelno == logging.DEBUG
        assert getattr(record, FIELD_CONNECTION_ID) == "conn-logs"
        assert getattr(record, FIELD_INSTANCE_ID) == server.instance_id
        assert getattr(record, FIELD_DURATION_MS) >= 0
    # Only the server bug has a traceback, logged with the request id.
    (bug,) = [r for r in caplog.records if r.exc_info]
    assert bug.getMessage() == "command 'broken' failed (request id 7 on conn-logs)"
    assert bug.levelno == logging.ERROR
    assert (getattr(bug, FIELD_REQUEST_ID), getattr(bug, FIELD_CODE)) == ("7", "ESERVER")
    assert getattr(bug, FIELD_CONNECTION_ID) == "conn-logs"


async def test_an_unencodable_result_is_a_bug_with_a_traceback(
    server: MeshServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.expose_command("opaque", lambda ctx: {"value": object()})
    with caplog.at_level(logging.DEBUG, logger="mesh_server"):
        await run(server, "opaque")
    (bug,) = [r for r in caplog.records if r.exc_info]
    assert getattr(bug, FIELD_COMMAND) == "opaque"
    assert getattr(bug, FIELD_REQUEST_ID) == "7"
    (outcome,) = [r for r in caplog.records if hasattr(r, FIELD_DURATION_MS)]
    assert getattr(outcome, FIELD_CODE) == "ESERVER"


async def test_nothing_is_logged_per_command_above_debug(
    server: MeshServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="mesh_server"):
        await run(server, "echo")
        await run(server, "missing")
    # (An unknown command may still add the bad-input summary line of mesh_server.bad_input.)
    assert [r for r in caplog.records if hasattr(r, FIELD_DURATION_MS)] == []
    assert [r for r in caplog.records if r.name == "mesh_server" and r.levelno > logging.INFO] == []
