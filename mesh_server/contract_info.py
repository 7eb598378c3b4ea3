"""The ``mesh/contract-info`` built-in: the server announces its application contract.

A generated client facade asks for it on every connect and compares the fingerprint with its own
(contract/README.md "Fingerprint"). The answer describes the contract the server was built with,
not which handlers are registered: ``{"name", "fingerprint", "commands"}`` with the command wire
names sorted. A server without a contract answers ``{"name": null, "fingerprint": null,
"commands": []}``. JavaScript clients never send this command.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mesh_sdk.protocol.generated.models import ContractInfoRequest, ContractInfoResponse
from mesh_server.features import Builtin

if TYPE_CHECKING:
    from mesh_sdk.protocol.contract import ContractIndex
    from mesh_server.features import ConnectionLike

__all__ = ["CONTRACT_INFO", "contract_info", "contract_info_commands"]

CONTRACT_INFO = "mesh/contract-info"
"""Wire name of the built-in."""


def contract_info(contract: ContractIndex | None) -> ContractInfoResponse:
    """Return the ``mesh/contract-info`` answer for ``contract`` (module docstring)."""
    if contract is None:
        return ContractInfoResponse.model_construct(name=None, fingerprint=None, commands=[])
    return ContractInfoResponse.model_construct(
        name=contract.name, fingerprint=contract.fingerprint, commands=sorted(contract.commands)
    )


def contract_info_commands(contract: ContractIndex | None) -> Mapping[str, Builtin[Any]]:
    """Return the built-in answering ``mesh/contract-info`` for ``contract``."""
    # Computed once: the contract never changes while the server runs.
    answer = contract_info(contract)

    async def handle(
        connection: ConnectionLike, request: ContractInfoRequest
    ) -> ContractInfoResponse:
        return answer.model_copy(update={"commands": list(answer.commands)})

    return {CONTRACT_INFO: Builtin(ContractInfoRequest, handle)}
