"""Python SDK for Mesh: :class:`MeshClient` and its subscriptions (PROTOCOL §14).

The client pieces are imported lazily, so the server can use :mod:`mesh_sdk.protocol` (shared
codec, errors and models) without loading the client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mesh_sdk.client import MeshClient
    from mesh_sdk.errors import MeshAuthenticationError, SubscriptionDenied
    from mesh_sdk.protocol.errors import (
        CommandNotFoundError,
        ForbiddenError,
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
    "ForbiddenError",
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

_HOMES = {
    "MeshClient": "mesh_sdk.client",
    "MeshAuthenticationError": "mesh_sdk.errors",
    "SubscriptionDenied": "mesh_sdk.errors",
    "Backoff": "mesh_sdk.reconnect",
    "SessionState": "mesh_sdk.session",
    "ChannelSubscription": "mesh_sdk.subscriptions",
    "PresenceSnapshot": "mesh_sdk.subscriptions",
    "PresenceSubscription": "mesh_sdk.subscriptions",
    "PresenceUpdate": "mesh_sdk.subscriptions",
    "RecordChange": "mesh_sdk.subscriptions",
    "RecordSubscription": "mesh_sdk.subscriptions",
    "RoomHandle": "mesh_sdk.subscriptions",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    if name in __all__:
        return getattr(importlib.import_module("mesh_sdk.protocol.errors"), name)
    raise AttributeError(f"module 'mesh_sdk' has no attribute {name!r}")
