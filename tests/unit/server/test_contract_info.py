"""The ``mesh/contract-info`` built-in answers from the server's contract (or with nulls)."""

from __future__ import annotations

from examples.chat.generated import CONTRACT, FINGERPRINT
from mesh_sdk.protocol.contract import to_wire
from mesh_sdk.protocol.generated import CONTRACT as BUILTIN
from mesh_server.contract_info import CONTRACT_INFO, contract_info, contract_info_commands


def test_answer_describes_the_contract() -> None:
    assert to_wire(contract_info(CONTRACT)) == {
        "name": "Chat",
        "fingerprint": FINGERPRINT,
        "commands": ["chat/send"],
    }
    assert to_wire(contract_info(None)) == {"name": None, "fingerprint": None, "commands": []}


async def test_handler_answers_a_fresh_copy_matching_the_builtin_schema() -> None:
    builtin = contract_info_commands(CONTRACT)[CONTRACT_INFO]
    spec = BUILTIN.command(CONTRACT_INFO)
    assert spec is not None
    assert builtin.request is spec.request_model
    request = spec.validate_request({"anything": 1})
    first = await builtin.handler(None, request)  # type: ignore[arg-type]  # connection unused
    first.commands.append("tampered")
    second = to_wire(await builtin.handler(None, request))  # type: ignore[arg-type]
    assert second["commands"] == ["chat/send"]
    assert spec.dump_response(second) == second
