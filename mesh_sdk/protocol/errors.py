"""The Mesh error model (protocol.md §4), shared by server and SDK.

Every error that travels over the wire is a :class:`MeshError` carrying a ``code``, a ``name`` and a
human message, plus optional ``details``. One subclass exists per code of the contract's table
(``contract/mesh/errors.json``; a unit test keeps the two in sync)::

    MeshError                      any code; unknown codes from a newer peer stay plain MeshError
    ├── CommandNotFoundError       ENOTFOUND     CommandError
    ├── ValidationError            EVALIDATION   ValidationError   details: [{"path","message"}]
    │   └── LocalValidationError   EVALIDATION   ValidationError   client only: refused, never sent
    ├── ForbiddenError             EFORBIDDEN    ForbiddenError
    ├── ServerError                ESERVER       Error
    │   └── ContractViolationError ESERVER       ContractViolation client only: the server broke it
    ├── UnavailableError           EUNAVAILABLE  UnavailableError
    ├── RateLimitError             ERATELIMIT    RateLimitError    details: {"retryAfterMs"}
    ├── TooLargeError              ETOOLARGE     TooLargeError     details: {"limit"}
    ├── ConflictError              ECONFLICT     ConflictError     details: {"expected","actual"}
    ├── UnknownError               EUNKNOWN      UnknownError
    ├── MeshTimeoutError           ETIMEOUT      TimeoutError      client only; a TimeoutError
    └── MeshConnectionError        ECONNECTION   ConnectionError   client only; a ConnectionError

This module imports no asyncio, websockets or redis: it is part of the sans-I/O core.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Final

__all__ = [
    "CODE_PATTERN",
    "ERROR_CLASSES",
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
    "error_from_wire",
]

CODE_PATTERN: Final = re.compile(r"E[A-Z0-9_]{2,31}")
"""Application error codes (protocol.md §4): ``^E[A-Z0-9_]{2,31}$``."""


class MeshError(Exception):
    """An error with a wire code, a name and a human-readable message.

    Raise it (or a subclass) from a handler or middleware to send exactly that code, name and
    message to the client: ``MeshError("boom", code="EDEMO", name="DemoError")``.

    Attributes:
        message: Human-readable text; never parsed by clients.
        code: Machine-readable code such as ``"ENOTFOUND"`` or an application code.
        name: The error's name on the wire (``"Error"`` by default).
        details: Optional structured data sent in the top-level ``error`` object.
    """

    default_code: ClassVar[str] = "ESERVER"
    default_name: ClassVar[str] = "Error"

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        name: str | None = None,
        details: Any = None,
    ) -> None:
        self.message = message
        self.code = code if code is not None else self.default_code
        self.name = name if name is not None else self.default_name
        self.details = details
        super().__init__(message)

    def __str__(self) -> str:
        text = f"{self.code} ({self.name}): {self.message}"
        if self.details is not None:
            text += f" details={self.details!r}"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, "
            f"name={self.name!r}, details={self.details!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MeshError):
            return NotImplemented
        return (self.code, self.name, self.message, self.details) == (
            other.code,
            other.name,
            other.message,
            other.details,
        )

    __hash__ = Exception.__hash__

    def to_payload(self) -> dict[str, Any]:
        """Return the reference error object sent as the response ``payload`` (no details)."""
        return {"error": self.message, "code": self.code, "name": self.name}

    def to_wire(self) -> dict[str, Any]:
        """Return the top-level ``error`` object: the payload object plus ``details`` if any."""
        wire = self.to_payload()
        if self.details is not None:
            wire["details"] = self.details
        return wire

    @classmethod
    def from_wire(cls, obj: Any) -> MeshError:
        """Build the matching subclass from a wire ``error`` object (:func:`error_from_wire`)."""
        return error_from_wire(obj)


class CommandNotFoundError(MeshError):
    """The command is not registered or is disabled (``ENOTFOUND``)."""

    default_code = "ENOTFOUND"
    default_name = "CommandError"

    @classmethod
    def for_command(cls, command: str) -> CommandNotFoundError:
        """Return the error with the message protocol.md §4 prescribes for ``command``."""
        return cls(f'Command "{command}" not found')


class ValidationError(MeshError):
    """The payload violates its schema (``EVALIDATION``); ``details`` lists ``{path, message}``."""

    default_code = "EVALIDATION"
    default_name = "ValidationError"

    @classmethod
    def for_command(cls, command: str, problems: list[dict[str, str]]) -> ValidationError:
        """Return the error with the §4 message for ``command`` and its problem list."""
        return cls(f'Invalid payload for "{command}"', details=problems)


class LocalValidationError(ValidationError):
    """A request the client refused to send because it violates the contract (client only).

    Raised before anything is sent, so the server never saw the request. It is a
    :class:`ValidationError` (``EVALIDATION``, the same ``details`` of ``{path, message}``), so
    ``except ValidationError`` handles local and server rejections alike; catch this class to tell
    them apart.
    """

    @classmethod
    def refused(cls, error: ValidationError) -> LocalValidationError:
        """Return the local form of ``error``: the same details, a message saying so."""
        return cls(f"{error.message} (refused locally, not sent)", details=error.details)


class ForbiddenError(MeshError):
    """Denied where the reply is an error (``EFORBIDDEN``)."""

    default_code = "EFORBIDDEN"
    default_name = "ForbiddenError"


class ServerError(MeshError):
    """A handler or middleware failure (``ESERVER``)."""

    default_code = "ESERVER"
    default_name = "Error"


class ContractViolationError(ServerError):
    """The server sent a response or push that violates the contract (client only).

    The request itself was valid and the server answered, but with a payload its own contract
    forbids: a bug or a version mismatch on the server side, never the caller's fault, so this
    is a :class:`ServerError` and not a :class:`ValidationError`. ``details`` holds the problems
    (``{path, message}`` pointers into the received payload).
    """

    default_name = "ContractViolation"

    @classmethod
    def broke(cls, error: ValidationError) -> ContractViolationError:
        """Return the violation for the validation ``error`` of a received payload."""
        return cls(f"{error.message}: the server broke the contract", details=error.details)


class UnavailableError(MeshError):
    """The backend is unreachable or an operation missed its deadline (``EUNAVAILABLE``)."""

    default_code = "EUNAVAILABLE"
    default_name = "UnavailableError"


class RateLimitError(MeshError):
    """The request was not executed because of the rate limit (``ERATELIMIT``)."""

    default_code = "ERATELIMIT"
    default_name = "RateLimitError"

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before retrying, when the server said so (``retryAfterMs`` / 1000)."""
        if isinstance(self.details, dict):
            value = self.details.get("retryAfterMs")
            if isinstance(value, int) and not isinstance(value, bool):
                return value / 1000
        return None


class TooLargeError(MeshError):
    """A size or count limit other than the frame size was exceeded (``ETOOLARGE``)."""

    default_code = "ETOOLARGE"
    default_name = "TooLargeError"


class ConflictError(MeshError):
    """A conditional record write found another version (``ECONFLICT``, protocol.md §11.3).

    Raised for a write with an expected version (``expectedVersion`` on the wire) when the
    record is at a different one; nothing was stored. ``details`` is
    ``{"expected": int, "actual": int}`` (version 0: the record is absent).
    """

    default_code = "ECONFLICT"
    default_name = "ConflictError"

    @classmethod
    def for_record(cls, record_id: str, expected: int, actual: int) -> ConflictError:
        """Return the error for a write of ``record_id`` that expected another version."""
        return cls(
            f'Record "{record_id}" is at version {actual}, not {expected}.',
            details={"expected": expected, "actual": actual},
        )

    @property
    def expected(self) -> int | None:
        """The version the write expected, when the details say so."""
        return self._version("expected")

    @property
    def actual(self) -> int | None:
        """The version the record was at, when the details say so."""
        return self._version("actual")

    def _version(self, key: str) -> int | None:
        if isinstance(self.details, dict):
            value = self.details.get(key)
            if type(value) is int:
                return value
        return None


class UnknownError(MeshError):
    """An unclassifiable failure (``EUNKNOWN``); also used for errors without a string code."""

    default_code = "EUNKNOWN"
    default_name = "UnknownError"


class MeshTimeoutError(MeshError, TimeoutError):
    """No response arrived in time (client side only, ``ETIMEOUT``)."""

    default_code = "ETIMEOUT"
    default_name = "TimeoutError"


class MeshConnectionError(MeshError, ConnectionError):
    """The client cannot connect, or the connection closed with the request pending."""

    default_code = "ECONNECTION"
    default_name = "ConnectionError"


ERROR_CLASSES: Final[dict[str, type[MeshError]]] = {
    cls.default_code: cls
    for cls in (
        CommandNotFoundError,
        ValidationError,
        ForbiddenError,
        ServerError,
        UnavailableError,
        RateLimitError,
        TooLargeError,
        ConflictError,
        UnknownError,
        MeshTimeoutError,
        MeshConnectionError,
    )
}
"""Code → exception class for every code of the contract's table."""


def error_from_wire(obj: Any) -> MeshError:
    """Build a :class:`MeshError` from a wire ``error`` object.

    Known codes become their subclass; unknown codes survive as a plain :class:`MeshError` that
    keeps the code and name. An object without a string ``code`` becomes :class:`UnknownError`
    (protocol.md §4).

    Args:
        obj: The top-level ``error`` member of a response (or an error payload).

    Returns:
        The error, never raising for odd input.
    """
    if not isinstance(obj, dict):
        return UnknownError(str(obj) if obj is not None else "Unknown error")
    raw_message = obj.get("error", obj.get("message"))
    message = raw_message if isinstance(raw_message, str) else ""
    name = obj.get("name") if isinstance(obj.get("name"), str) else None
    code = obj.get("code")
    details = obj.get("details")
    if not isinstance(code, str):
        return UnknownError(message, name=name, details=details)
    cls = ERROR_CLASSES.get(code, MeshError)
    return cls(message, code=code, name=name, details=details)
