"""Application contracts in the pipeline (protocol.md §3.4 step 3, §4): typed payloads, pointers."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import ConfigDict, Field

from mesh_sdk.protocol.contract import CommandSpec, ContractIndex, ContractModel
from mesh_server import MeshServer
from tests.support.raw_client import RawClient, running_server

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("transport")]


class Item(ContractModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    name: Annotated[str, Field(min_length=1)]
    qty: Annotated[int, Field(ge=1)]


class OrderRequest(ContractModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    customer: str
    items: list[Item]
    note: str | None = None


class OrderResponse(ContractModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    total: int


CONTRACT = ContractIndex(
    name="shop",
    command_specs=[CommandSpec("order", OrderRequest, OrderResponse)],
)


def problems(frame: dict[str, Any]) -> list[dict[str, str]]:
    assert frame["error"]["code"] == "EVALIDATION"
    assert frame["error"]["error"] == 'Invalid payload for "order"'
    return sorted(frame["error"]["details"], key=lambda p: p["path"])


async def test_typed_payload_and_validation_pointers() -> None:
    calls: list[str] = []
    async with running_server(contract=CONTRACT, allow_unimplemented=True) as server:
        server.use_middleware(lambda ctx: calls.append(ctx.command))

        @server.command("order")
        async def order(ctx: Any) -> Any:
            assert isinstance(ctx.payload, OrderRequest)
            assert ctx.raw_payload["customer"] == ctx.payload.customer
            return OrderResponse(total=sum(item.qty for item in ctx.payload.items))

        async with RawClient.open(server.url) as client:
            ok = await client.request(
                1,
                "order",
                {"customer": "c1", "items": [{"name": "a", "qty": 2}, {"name": "b", "qty": 3}]},
            )
            assert ok["payload"] == {"total": 5}
            assert calls == ["order"]
            # Each problem at its JSON Pointer; a missing member at its parent's path.
            bad = await client.request(
                2,
                "order",
                {"items": [{"name": "", "qty": 0}, {"qty": 1}], "extra": True},
            )
            found = problems(bad)
            paths = [p["path"] for p in found]
            assert "" in paths  # customer missing, extra member
            assert "/items/0/name" in paths
            assert "/items/0/qty" in paths
            assert "/items/1" in paths  # name missing
            missing = [p["message"] for p in found if p["path"] == "/items/1"]
            assert missing == ["'name' is a required property"]
            # Validation runs before middleware (§3.4 step 3 before 4).
            assert calls == ["order"]
            bad = await client.request(3, "order", "not an object")
            assert problems(bad)[0]["path"] == ""


async def test_result_violating_the_response_schema_is_eserver(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_server(contract=CONTRACT, allow_unimplemented=True) as server:
        server.expose_command("order", lambda ctx: {"total": "many"})
        async with RawClient.open(server.url) as client:
            frame = await client.request(1, "order", {"customer": "c", "items": []})
            assert frame["error"]["code"] == "ESERVER"
            assert frame["error"]["error"] == "Internal server error"
    assert any("invalid result" in r.getMessage() for r in caplog.records)


def test_exposing_a_command_the_contract_does_not_define_fails() -> None:
    server = MeshServer(contract=CONTRACT)
    with pytest.raises(ValueError, match="not defined by contract"):
        server.expose_command("refund", lambda ctx: None)
