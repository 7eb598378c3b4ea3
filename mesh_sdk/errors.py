"""Errors raised only by the SDK, extending :mod:`mesh_sdk.protocol.errors`.

::

    MeshConnectionError           ECONNECTION
    └── MeshAuthenticationError   ECONNECTION  the upgrade was answered 401/403 (§14)
    ForbiddenError                EFORBIDDEN
    └── SubscriptionDenied        EFORBIDDEN   a subscribe answered ``success:false`` (§7)

They never travel over the wire.
"""

from __future__ import annotations

from mesh_sdk.protocol.errors import ForbiddenError, MeshConnectionError

__all__ = ["MeshAuthenticationError", "SubscriptionDenied"]


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

    PROTOCOL §7 makes denials deliberately indistinguishable, so the message only names the target.

    Attributes:
        target: The channel, record id or room that was refused.
    """

    default_name = "SubscriptionDenied"

    def __init__(self, message: str = "", *, target: str = "") -> None:
        super().__init__(message or f'Subscription to "{target}" denied')
        self.target = target
