"""Python SDK for Mesh: :class:`MeshClient` and its subscriptions (protocol.md §14).

Every export is imported on first access (PEP 562), so the server can use :mod:`mesh_sdk.protocol`
(the shared codec, errors, patch, contract runtime and built-in models) without loading the client;
``dir(mesh_sdk)`` still lists every name of ``__all__``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mesh_sdk.client import MeshClient
    from mesh_sdk.errors import (
        ContractMismatchError,
        ContractMismatchWarning,
        MeshAuthenticationError,
        SubscriptionDenied,
    )
    from mesh_sdk.protocol.errors import (
        CommandNotFoundError,
        ConflictError,
        ContractViolationError,
        ForbiddenError,
        LocalValidationError,
        MeshConnectionError,
        MeshError,
        MeshTimeoutError,
        RateLimitError,
        ServerError,
        TooLargeError,
        UnavailableError,
        UnknownError,
        ValidationError,
    )
    from mesh_sdk.reconnect import Backoff
    from mesh_sdk.session import SessionState
    from mesh_sdk.subscriptions import (
        ChannelSubscription,
        PresenceSnapshot,
        PresenceSubscription,
        PresenceUpdate,
        RecordChange,
        RecordSubscription,
        RoomHandle,
    )

__all__ = [
    "Backoff",
    "ChannelSubscription",
    "CommandNotFoundError",
    "ConflictError",
    "ContractMismatchError",
    "ContractMismatchWarning",
    "ContractViolationError",
    "ForbiddenError",
    "LocalValidationError",
    "MeshAuthenticationError",
    "MeshClient",
    "MeshConnectionError",
    "MeshError",
    "MeshTimeoutError",
    "PresenceSnapshot",
    "PresenceSubscription",
    "PresenceUpdate",
    "RateLimitError",
    "RecordChange",
    "RecordSubscription",
    "RoomHandle",
    "ServerError",
    "SessionState",
    "SubscriptionDenied",
    "TooLargeError",
    "UnavailableError",
    "UnknownError",
    "ValidationError",
]

_MODULES = {
    "mesh_sdk.client": ("MeshClient",),
    "mesh_sdk.errors": (
        "ContractMismatchError",
        "ContractMismatchWarning",
        "MeshAuthenticationError",
        "SubscriptionDenied",
    ),
    "mesh_sdk.protocol.errors": (
        "CommandNotFoundError",
        "ConflictError",
        "ContractViolationError",
        "ForbiddenError",
        "LocalValidationError",
        "MeshConnectionError",
        "MeshError",
        "MeshTimeoutError",
        "RateLimitError",
        "ServerError",
        "TooLargeError",
        "UnavailableError",
        "UnknownError",
        "ValidationError",
    ),
    "mesh_sdk.reconnect": ("Backoff",),
    "mesh_sdk.session": ("SessionState",),
    "mesh_sdk.subscriptions": (
        "ChannelSubscription",
        "PresenceSnapshot",
        "PresenceSubscription",
        "PresenceUpdate",
        "RecordChange",
        "RecordSubscription",
        "RoomHandle",
    ),
}
_HOMES = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module 'mesh_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
