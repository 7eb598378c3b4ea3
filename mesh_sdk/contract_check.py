"""Compare a client's contract with what the server announces (``mesh/contract-info``).

Pure comparison, no I/O: :class:`mesh_sdk.facade.FacadeClient` sends the command on every
connect and reports the :class:`ContractMismatch` this module returns (a warning, or an error in
strict mode; contract/README.md "Fingerprint").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from mesh_sdk.protocol.contract import read_model
from mesh_sdk.protocol.generated.models import ContractInfoResponse

if TYPE_CHECKING:
    from mesh_sdk.protocol.contract import ContractIndex

__all__ = ["CONTRACT_INFO", "ContractMismatch", "compare_contract", "parse_contract_info"]

CONTRACT_INFO: Final = "mesh/contract-info"
"""The built-in command a server announces its contract with."""


@dataclass(frozen=True, slots=True)
class ContractMismatch:
    """How the server's contract differs from the client's.

    Attributes:
        client_name: The client contract's name.
        client_fingerprint: The client contract's fingerprint.
        server_name: The server contract's name (``None``: no contract, or not announced).
        server_fingerprint: The server contract's fingerprint (``None`` likewise).
        announced: Whether the server answered ``mesh/contract-info`` (older servers answer
            ``ENOTFOUND``).
        only_client: Commands only the client's contract has (calls answer ``ENOTFOUND``).
        only_server: Commands only the server's contract has.
    """

    client_name: str
    client_fingerprint: str | None
    server_name: str | None
    server_fingerprint: str | None
    announced: bool = True
    only_client: tuple[str, ...] = ()
    only_server: tuple[str, ...] = ()

    def __str__(self) -> str:
        client = f"client contract {self.client_name} ({self.client_fingerprint})"
        if not self.announced:
            return (
                f"the server does not announce its contract (mesh/contract-info is unknown to "
                f"it: an older server); {client} cannot be checked"
            )
        if self.server_fingerprint is None:
            return f"the server has no application contract; {client} cannot be checked"
        parts = [
            f"contract mismatch: {client} != server contract {self.server_name} "
            f"({self.server_fingerprint})"
        ]
        if self.only_client:
            parts.append("commands only in the client: " + ", ".join(self.only_client))
        if self.only_server:
            parts.append("commands only on the server: " + ", ".join(self.only_server))
        if not (self.only_client or self.only_server):
            parts.append(
                "same commands: schemas, channels or records differ "
                "(compare the two with `mesh contract diff`)"
            )
        return "; ".join(parts)


def parse_contract_info(payload: Any) -> ContractInfoResponse:
    """Read a ``mesh/contract-info`` answer (a tolerant reader, like every client read).

    Raises:
        pydantic.ValidationError: The answer does not have the built-in schema's shape.
    """
    return read_model(ContractInfoResponse, payload)


def compare_contract(
    contract: ContractIndex, info: ContractInfoResponse | None
) -> ContractMismatch | None:
    """Compare ``contract`` with the server's announcement; ``None`` when they match.

    Args:
        contract: The client's contract index (its ``fingerprint`` is generated).
        info: The parsed ``mesh/contract-info`` answer; ``None`` when the server does not know
            the command.

    Returns:
        ``None`` if the fingerprints are equal, else what differs. Only fingerprints decide:
        a renamed contract or class with the same wire behaviour matches.
    """
    mine = contract.fingerprint
    if info is None:
        return ContractMismatch(contract.name, mine, None, None, announced=False)
    if info.fingerprint is not None and info.fingerprint == mine:
        return None
    theirs = set(info.commands)
    return ContractMismatch(
        contract.name,
        mine,
        info.name,
        info.fingerprint,
        only_client=tuple(sorted(set(contract.commands) - theirs)),
        only_server=tuple(sorted(theirs - set(contract.commands))),
    )
