"""Versioned records: atomic writes with patches, deletion (protocol.md §11)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

__all__ = ["MERGE_STRATEGIES", "MergeStrategy", "RecordStore", "RecordUpdater", "RecordWrite"]

MergeStrategy = Literal["replace", "merge", "deepMerge"]
"""How a new value combines with the stored one (protocol.md §11.3, §12.1)."""

MERGE_STRATEGIES: Final[frozenset[str]] = frozenset(get_args(MergeStrategy))
"""Every :data:`MergeStrategy`, to check a strategy given by server code at run time."""

RecordUpdater = Callable[[Any], Any]
"""``fn(current) -> new`` for :meth:`RecordStore.update_record`: ``current`` is the record's JSON
value (``None`` when absent; a private copy), the result the new JSON value or an awaitable of
it."""


@dataclass(frozen=True, slots=True)
class RecordWrite:
    """Outcome of an atomic record write (protocol.md §11.3).

    Attributes:
        changed: ``False`` when the new value equals the old one (nothing stored or published).
        version: The record's version after the write.
        value: The stored value after the write.
        patch: RFC 6902 operations from the old to the new value (empty when unchanged).
        size: Serialized size of the stored value in bytes (for quotas; not compared).
    """

    changed: bool
    version: int
    value: Any
    patch: list[dict[str, Any]] = field(default_factory=list)
    size: int = field(default=0, compare=False)


class RecordStore(ABC):
    """JSON values with a version, shared by all instances; every change is published.

    Events go to ``{ns}record:{record_id}``: ``update`` (id, version, full value, patch) and
    ``deleted`` (id, last version), as :mod:`mesh_server.backends.messages` lays out.

    Guarantees
    ----------
    * **Versions.** Each changed write stores version + 1 (a record created or re-created after
      a deletion starts at 1); concurrent writers of any instances never lose a write and never
      reuse a version.
    * **Atomicity.** Combine, size check, validation, diff, store and publish are one step, or
      the commit step of an optimistic compute-then-check-and-set loop that recomputes on
      conflict until the operation deadline.
    * **Events: at most once, in version order** per record, published inside the commit.
    * **Dropped.** A write whose combined value equals the stored one stores and publishes
      nothing (``changed=False``); deleting an absent record publishes nothing.
    * **Size limits.** ``max_size`` bounds the serialized combined value of every write (also
      one that changes nothing) → ``TooLargeError``, nothing stored; the server passes
      ``max_record_size``.
    * **Compare-and-set.** A write with ``expected_version`` commits only at that version, else
      ``ConflictError`` reports the version found (never a stale cached one); an update runs its
      function again on the newer value until it commits or the deadline passes.
    * **Raises** ``TooLargeError``, ``ConflictError``, whatever ``validate`` or an update function
      raises (nothing stored), and ``UnavailableError`` when the store is unreachable or the
      deadline passed.
    """

    @abstractmethod
    async def get_record(self, record_id: str) -> tuple[Any, int]:
        """Return ``(value, version)``; ``(None, 0)`` when absent."""

    @abstractmethod
    async def write_record(
        self,
        record_id: str,
        value: Any,
        strategy: MergeStrategy = "replace",
        *,
        max_size: int | None = None,
        validate: Callable[[Any], None] | None = None,
        expected_version: int | None = None,
    ) -> RecordWrite:
        """Atomically combine, diff, store with version + 1 and publish the update (§11.3).

        Unchanged values store and publish nothing. The update event carries the record id,
        version, full value and patch; it is published inside the same atomic step (or the
        commit step of an optimistic compute-then-check-and-set loop).

        With ``expected_version`` the write is a compare-and-set: it happens only if the record
        is at that version (0: absent) when it commits, else nothing is stored or published
        and :class:`~mesh_sdk.protocol.errors.ConflictError` reports the version found (never a
        stale cached one). The version check comes first: a conflicting write is refused as
        a conflict even if its value is too large or invalid.

        Args:
            record_id: The record.
            value: The new value (combined with the stored one per ``strategy``).
            strategy: ``replace``, ``merge`` or ``deepMerge``.
            max_size: Limit of the serialized combined value → ``TooLargeError``, nothing stored.
            validate: Called with the combined value before storing; raising aborts the write.
            expected_version: The version the record must be at; ``None``: any.

        Raises:
            ConflictError: The record is not at ``expected_version`` (``details`` =
                ``{"expected": int, "actual": int}``).
            TooLargeError: The combined value exceeds ``max_size``.
            UnavailableError: The store is unreachable or the deadline passed.
        """

    @abstractmethod
    async def update_record(
        self,
        record_id: str,
        fn: RecordUpdater,
        *,
        max_size: int | None = None,
        validate: Callable[[Any], None] | None = None,
    ) -> RecordWrite:
        """Atomically read, modify and write a record (§11.3).

        Reads the value, computes ``fn(value)`` and commits the result as a ``replace`` write
        iff no write or deletion of the record happened in between; otherwise it runs ``fn``
        again on the newer value, after a jittered, growing pause, until the operation
        deadline, which bounds the whole update including every run of ``fn``. Updates of one
        record on one instance wait for each other, so they conflict only with writes of
        other instances (or plain writes that commit while ``fn`` awaits).

        ``fn`` gets a private copy (it may mutate and return it); it may be sync or async and
        may run several times. An exception raised by ``fn`` aborts the update (nothing stored)
        and propagates unchanged. A backend that ran ``fn`` on a cached state first checks that
        the state is current and otherwise runs ``fn`` again on the current one: a stale cache
        never decides an outcome. ``fn`` writing the record it updates (from the same task)
        raises ``RuntimeError`` instead of waiting for itself. A result equal to the current
        value stores nothing.

        Args:
            record_id: The record.
            fn: Computes the new value from the current one (``None`` when absent).
            max_size: Limit of the serialized new value → ``TooLargeError``, nothing stored.
            validate: Called with the new value before storing; raising aborts the update.

        Returns:
            The committed write (``changed=False`` when ``fn`` returned the current value).

        Raises:
            TooLargeError: The new value exceeds ``max_size``.
            UnavailableError: The store is unreachable or the deadline passed.
        """

    @abstractmethod
    async def delete_record(self, record_id: str) -> int | None:
        """Atomically delete value and version and publish the deletion event.

        Returns:
            The last version, or ``None`` if the record was absent (nothing published).
        """
