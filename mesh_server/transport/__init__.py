"""WebSocket transports behind one small interface (:mod:`mesh_server.transport.base`)."""

from mesh_server.transport.base import (
    ConnectHandler,
    Rejection,
    Transport,
    TransportConnection,
    UpgradeHook,
    UpgradeRequest,
)

__all__ = [
    "ConnectHandler",
    "Rejection",
    "Transport",
    "TransportConnection",
    "UpgradeHook",
    "UpgradeRequest",
]
