"""The transport seam (:mod:`mesh_server.transport.base`) and its adapters."""

from mesh_server.transport.base import (
    DEFAULT_BACKLOG,
    Accept,
    ConnectHandler,
    HttpHook,
    HttpResponse,
    Transport,
    TransportConnection,
    TransportHooks,
    UpgradeDecision,
    UpgradeHook,
    UpgradeRequest,
    effective_backlog,
)

__all__ = [
    "DEFAULT_BACKLOG",
    "Accept",
    "ConnectHandler",
    "HttpHook",
    "HttpResponse",
    "Transport",
    "TransportConnection",
    "TransportHooks",
    "UpgradeDecision",
    "UpgradeHook",
    "UpgradeRequest",
    "effective_backlog",
]
