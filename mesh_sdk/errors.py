"""Errors raised only by the SDK, extending :mod:`mesh_sdk.protocol.errors`.

::

    MeshConnectionError           ECONNECTION
    ├── MeshAuthenticationError   ECONNECTION  the upgrade was answered 401/403 (§14)
    └── ContractMismatchError     ECONNECTION  strict facade: the server's contract differs
    ForbiddenError                EFORBIDDEN
    └── SubscriptionDenied        EFORBIDDEN   a subscribe answered ``success:false`` (§7)

    UserWarning
    └── ContractMismatchWarning                facade: the server's contract differs

They never travel over the wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mesh_sdk.protocol.errors import ForbiddenError, MeshConnectionError

if TYPE_CHECKING:
    from mesh_sdk.contract_check import ContractMismatch

__all__ = [
    "ContractMismatchError",
    "ContractMismatchWarning",
    "MeshAuthenticationError",
    "SubscriptionDenied",
]


class MeshAuthenticationError(MeshConnectionError):
    """The server rejected the WebSocket upgrade with 401 or 403; the client does not retry.

    Attributes:
        status: The HTTP status of the rejection.
    """

    default_name = "AuthenticationError"

    def __init__(self, message: str = "", *, status: int) -> None:
        super().__init__(message or f"authentication rejected with HTTP {status}")
        self.status = status


class SubscriptionDenied(ForbiddenError):
    """A subscription was denied (``{"success": false}``): not exposed, internal name or guard.

    protocol.md §7 makes denials deliberately indistinguishable, so the message only names the
    target.

    Attributes:
        target: The channel, record id or room that was refused.
    """

    default_name = "SubscriptionDenied"

    def __init__(self, message: str = "", *, target: str = "") -> None:
        super().__init__(message or f'Subscription to "{target}" denied')
        self.target = target


class ContractMismatchError(MeshConnectionError):
    """A facade in strict mode found that the server's contract differs from its own.

    The facade closed the client: it never talks to a server built from another contract.

    Attributes:
        mismatch: What differs (fingerprints, commands only on one side).
    """

    default_name = "ContractMismatchError"

    def __init__(self, mismatch: ContractMismatch) -> None:
        super().__init__(str(mismatch))
        self.mismatch = mismatch


class ContractMismatchWarning(UserWarning):
    """A facade found that the server's contract differs from its own (the default mode).

    Escalate it with ``warnings.simplefilter("error", ContractMismatchWarning)``, or construct
    the facade with ``contract_check="strict"``.
    """
