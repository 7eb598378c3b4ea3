"""Who may subscribe to what: exposure patterns, guards and admission checks.

Channels, records and presence share one rule set (protocol.md §11.1):

* A pattern is an exact string or a compiled regular expression that must match the **whole**
  name (:func:`re.fullmatch`), never a substring.
* Patterns are evaluated in registration order; a name is allowed if **any** matching pattern's
  guard passes (no guard = pass). Evaluation stops at the first pass.
* A guard is ``(connection, name) -> bool`` or an awaitable of it; a guard that raises counts as
  ``False`` and is logged.
* A record is readable iff a matching read pattern's guard passes or a matching writable
  pattern's guard passes, and writable iff a matching writable pattern's guard passes
  (writable ⇒ readable).
* A writable record pattern's guard may also take the value being written:
  ``(connection, record_id, value)``. Which form a guard has is decided once, when it is
  registered, from its signature (it accepts three positional arguments → value form). A write
  passes the client's ``newValue`` as sent (for ``merge``/``deepMerge`` the partial value, not
  the combined one); a read check through the writable pattern (writable ⇒ readable) passes
  :data:`READ_ACCESS` instead of a value. Read patterns' guards always take two arguments.

Also here: the admission checks every subscribing command shares — internal names (§9.2), name
length (§7, §15) and the per-connection subscription quota (§15).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from mesh_sdk.protocol.errors import TooLargeError, ValidationError

if TYPE_CHECKING:
    from mesh_server.features import ConnectionLike

__all__ = [
    "READ_ACCESS",
    "Exposure",
    "Guard",
    "Pattern",
    "RecordExposure",
    "SubscriptionQuota",
    "WriteGuard",
    "check_name",
    "guard_passes",
    "is_internal_name",
]

Pattern: TypeAlias = "str | re.Pattern[str]"
"""An exact name or a compiled regular expression matched against the whole name."""

Guard: TypeAlias = "Callable[[ConnectionLike, str], bool | Awaitable[bool]]"
"""``(connection, name) -> bool`` (or awaitable); raising counts as ``False``."""

WriteGuard: TypeAlias = "Guard | Callable[[ConnectionLike, str, Any], bool | Awaitable[bool]]"
"""A writable record pattern's guard: a :data:`Guard`, or ``(connection, record_id, value)``."""


class _ReadAccess:
    """The type of :data:`READ_ACCESS`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "READ_ACCESS"


READ_ACCESS: Final = _ReadAccess()
"""Passed as ``value`` to a value-taking write guard when it is asked about reading (a
subscription through the writable pattern, writable ⇒ readable), since nothing is written:
``if value is READ_ACCESS: return may_read(connection, record_id)``."""

_log = logging.getLogger("mesh_server.exposure")

_INTERNAL_PREFIXES: Final = ("__keyspace@", "__keyevent@")


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: Pattern
    guard: Callable[..., bool | Awaitable[bool]] | None
    takes_value: bool = False

    def matches(self, name: str) -> bool:
        if isinstance(self.pattern, str):
            return self.pattern == name
        return self.pattern.fullmatch(name) is not None


def _validate_pattern(pattern: object) -> Pattern:
    if isinstance(pattern, str | re.Pattern):
        return pattern
    raise TypeError(f"pattern must be a str or a compiled re.Pattern, not {type(pattern).__name__}")


def _takes_value(guard: Callable[..., object]) -> bool:
    """Whether ``guard`` takes ``(connection, name, value)`` rather than ``(connection, name)``.

    Raises:
        TypeError: ``guard`` accepts neither form.
    """
    try:
        signature = inspect.signature(guard)
    except (TypeError, ValueError):  # no signature to read (some builtins): the classic form
        return False
    for arity in (3, 2):
        try:
            signature.bind(*range(arity))
        except TypeError:
            continue
        return arity == 3
    raise TypeError(
        "a record write guard takes (connection, record_id) or (connection, record_id, value)"
    )


async def guard_passes(
    guard: Callable[..., bool | Awaitable[bool]] | None,
    *args: Any,
    log: logging.Logger = _log,
    failure: str = "guard raised",
) -> bool:
    """Run a guard, sync or async: no guard passes, a guard that raises denies (logged).

    The one guard runner of the server: exposure guards (protocol.md §11.1: "a guard that raises
    counts as false") and the connection-metadata guards (§12.1).

    Args:
        guard: The guard, or ``None``.
        *args: Its arguments.
        log: Where an exception is logged, with its traceback.
        failure: The start of that log line.
    """
    if guard is None:
        return True
    try:
        result = guard(*args)
        if inspect.isawaitable(result):
            result = await result
    except Exception:
        log.exception("%s; treating it as a denial", failure)
        return False
    return bool(result)


async def _rule_passes(rule: _Rule, connection: ConnectionLike, name: str, value: Any) -> bool:
    failure = f"exposure guard raised for {name!r}"
    if rule.takes_value:
        return await guard_passes(rule.guard, connection, name, value, failure=failure)
    return await guard_passes(rule.guard, connection, name, failure=failure)


class Exposure:
    """An ordered list of ``(pattern, guard)`` rules (protocol.md §11.1).

    Example:
        >>> exposure = Exposure()
        >>> exposure.add(re.compile(r"chat:.+"))
        >>> exposure.matches("chat:lobby"), exposure.matches("xchat:lobby")
        (True, False)
    """

    def __init__(self, *, value_guards: bool = False) -> None:
        self._rules: list[_Rule] = []
        self._value_guards = value_guards

    def add(self, pattern: Pattern, guard: WriteGuard | None = None) -> None:
        """Register a pattern (after the existing ones) with an optional guard.

        An exposure created with ``value_guards=True`` (writable records) also accepts guards
        taking ``(connection, name, value)``; their form is read from the signature here, once.

        Raises:
            TypeError: ``pattern`` is neither a ``str`` nor a compiled pattern, or ``guard`` is
                not callable (or, with ``value_guards``, accepts neither form).
        """
        if guard is not None and not callable(guard):
            raise TypeError("guard must be callable")
        takes_value = guard is not None and self._value_guards and _takes_value(guard)
        self._rules.append(_Rule(_validate_pattern(pattern), guard, takes_value))

    def __bool__(self) -> bool:
        return bool(self._rules)

    def matches(self, name: str) -> bool:
        """Return whether any pattern matches ``name`` (guards are not evaluated)."""
        return any(rule.matches(name) for rule in self._rules)

    def first_match(self, name: str) -> int | None:
        """Return the registration index of the first pattern matching ``name``, if any."""
        for index, rule in enumerate(self._rules):
            if rule.matches(name):
                return index
        return None

    async def allows(self, connection: ConnectionLike, name: str, value: Any = READ_ACCESS) -> bool:
        """Return whether any matching pattern's guard passes for ``connection``.

        Args:
            connection: The asking connection.
            name: The channel, room or record name.
            value: Given to guards that take a value (the value being written), else ignored.
        """
        for rule in self._rules:
            if rule.matches(name) and await _rule_passes(rule, connection, name, value):
                return True
        return False


class RecordExposure:
    """Readable and writable record patterns with the §11.1 rule: writable ⇒ readable."""

    def __init__(self) -> None:
        self.readable = Exposure()
        self.writable = Exposure(value_guards=True)

    async def can_read(self, connection: ConnectionLike, record_id: str) -> bool:
        """A matching read pattern's guard or a matching writable pattern's guard passes."""
        return await self.readable.allows(connection, record_id) or await self.writable.allows(
            connection, record_id
        )

    async def can_write(self, connection: ConnectionLike, record_id: str, value: Any) -> bool:
        """A matching writable pattern's guard passes for writing ``value``.

        Read patterns never grant writes. Guards that take a value get ``value``.
        """
        return await self.writable.allows(connection, record_id, value)


# ------------------------------------------------------------------------------ admission


def is_internal_name(name: str, namespace: str) -> bool:
    """Return whether ``name`` is internal and so never subscribable (protocol.md §9.2)."""
    return (bool(namespace) and name.startswith(namespace)) or name.startswith(_INTERNAL_PREFIXES)


def check_name(command: str, member: str, name: str, max_length: int) -> None:
    """Enforce the configured ``max_name_length`` on a name member (protocol.md §7, §15).

    The built-in contract checks only the type and the lower bound: this check is the one source
    of the upper bound, so a configured limit above the default takes effect.

    Raises:
        ValidationError: The name is empty or longer than ``max_length``.
    """
    if 0 < len(name) <= max_length:
        return
    message = "must not be empty" if not name else f"must be at most {max_length} characters long"
    raise ValidationError.for_command(command, [{"path": f"/{member}", "message": message}])


class SubscriptionQuota:
    """Counts channels + records + presence + rooms per connection (protocol.md §15).

    Callers reserve a slot for each *new* subscription (repeats do not count) and release it when
    the subscription ends. Reservation is synchronous, so concurrent requests cannot overshoot.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    def count(self, connection_id: str) -> int:
        """Return the number of subscriptions held by ``connection_id``."""
        return self._counts.get(connection_id, 0)

    def reserve(self, connection_id: str) -> None:
        """Take one slot.

        Raises:
            TooLargeError: The connection already holds ``limit`` subscriptions
                (``ETOOLARGE`` with ``{"limit": limit}``).
        """
        count = self._counts.get(connection_id, 0)
        if count >= self.limit:
            raise TooLargeError(
                f"Subscription limit of {self.limit} reached", details={"limit": self.limit}
            )
        self._counts[connection_id] = count + 1

    def add(self, connection_id: str) -> None:
        """Take one slot without checking (server-side room joins)."""
        self._counts[connection_id] = self._counts.get(connection_id, 0) + 1

    def release(self, connection_id: str, count: int = 1) -> None:
        """Give back ``count`` slots."""
        left = self._counts.get(connection_id, 0) - count
        if left > 0:
            self._counts[connection_id] = left
        else:
            self._counts.pop(connection_id, None)
