"""The ``mesh/contract-info`` built-in answers from the server's contract (or with nulls)."""

from __future__ import annotations

from examples.chat.generated import CONTRACT, FINGERPRINT
from mesh_sdk.protocol.generated import CONTRACT as BUILTIN
from mesh_server.contract_info import CONTRACT_INFO, contract_info, contract_info_commands


def test_answer_describes_the_contract() -> None:
    assert contract_info(CONTRACT) == {
        "name": "Chat",
        "fingerprint": FINGERPRINT,
        "commands": ["chat/send"],
    }
    assert contract_info(None) == {"name": None, "fingerprint": None, "commands": []}


async def test_handler_answers_a_fresh_copy_matching_the_builtin_schema() -> None:
    handler = contract_info_commands(CONTRACT)[CONTRACT_INFO]
    first = await handler(None, None)  # type: ignore[arg-type]  # the connection is not used
    first["commands"].append("tampered")
    second = await handler(None, None)  # type: ignore[arg-type]
    assert second["commands"] == ["chat/send"]
    spec = BUILTIN.command(CONTRACT_INFO)
    assert spec is not None
    assert spec.dump_response(second) == second
    assert spec.validate_request({"anything": 1}) is not None
