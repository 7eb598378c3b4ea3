"""Server-side errors: the wire error hierarchy plus :class:`MeshAuthError` for the upgrade hook.

The wire errors (protocol.md §4) live in :mod:`mesh_sdk.protocol.errors` because server and SDK
share them; they are re-exported here so applications import everything from :mod:`mesh_server`.
"""

from __future__ import annotations

from mesh_sdk.protocol.errors import (
    CommandNotFoundError,
    ConflictError,
    ForbiddenError,
    MeshError,
    RateLimitError,
    ServerError,
    TooLargeError,
    UnavailableError,
    UnknownError,
    ValidationError,
)

__all__ = [
    "CommandNotFoundError",
    "ConflictError",
    "ForbiddenError",
    "MeshAuthError",
    "MeshError",
    "RateLimitError",
    "ServerError",
    "TooLargeError",
    "UnavailableError",
    "UnknownError",
    "ValidationError",
]


class MeshAuthError(Exception):
    """Raised by an ``authenticate`` hook to reject a WebSocket upgrade (protocol.md §5.1).

    The upgrade is answered with ``status`` and ``message`` as a plain-text body; no WebSocket
    opens. ``MeshAuthError(401, "token expired")``.

    Attributes:
        status: The HTTP status, 400 to 599 (401 or 403 expected; other values raise
            ``ValueError``).
        message: The response body, for humans.
    """

    def __init__(self, status: int, message: str = "") -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"MeshAuthError status must be a 4xx or 5xx code, not {status}")
        self.status = status
        self.message = message
        super().__init__(status, message)

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}"
