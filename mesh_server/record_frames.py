"""What one record event becomes on the wire, and what one local subscriber holds (protocol.md §11).

A backend record event (``{"t":"update"|"deleted","recordId","version",...}``) is encoded at most
once per frame kind (:class:`RecordFrames`: ``full``, ``patch`` or the deletion push) whatever the
number of local subscribers, and each :class:`RecordSub` remembers the last version its client
was given, so no version at or below it is ever pushed (§11.5) and a deletion ends only what the
subscriber actually holds (:func:`deletion_applies`, §11.6). :mod:`mesh_server.records` keeps the
subscriptions and routes events through these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from mesh_sdk.protocol.codec import encode_push

__all__ = ["RECORD_DELETED", "RECORD_UPDATE", "RecordFrames", "RecordSub", "deletion_applies"]

RECORD_UPDATE: Final = "mesh/record-update"
"""The push of a record update (protocol.md §11.5)."""
RECORD_DELETED: Final = "mesh/record-deleted"
"""The push of a record deletion (protocol.md §11.6)."""


@dataclass(slots=True)
class RecordSub:
    """One local record subscription."""

    mode: str
    acked: int = 0
    acquired: bool = False
    holds: int = 0
    held: list[dict[str, Any]] = field(default_factory=list)


class RecordFrames:
    """Lazily encoded frames of one record event (each built at most once)."""

    __slots__ = ("_deleted", "_event", "_full", "_patch")

    def __init__(self, event: dict[str, Any]) -> None:
        self._event = event
        self._full: bytes | None = None
        self._patch: bytes | None = None
        self._deleted: bytes | None = None

    def update(self, mode: str) -> bytes:
        """Return the update frame for a subscriber in ``mode`` (``full`` without a patch)."""
        event = self._event
        if mode == "patch" and "patch" in event:
            if self._patch is None:
                self._patch = encode_push(
                    RECORD_UPDATE,
                    {
                        "recordId": event["recordId"],
                        "patch": event["patch"],
                        "version": event["version"],
                    },
                )
            return self._patch
        if self._full is None:
            self._full = encode_push(
                RECORD_UPDATE,
                {
                    "recordId": event["recordId"],
                    "full": event["value"],
                    "version": event["version"],
                },
            )
        return self._full

    def deleted(self) -> bytes:
        """Return the deletion frame."""
        if self._deleted is None:
            self._deleted = encode_push(
                RECORD_DELETED,
                {"recordId": self._event["recordId"], "version": self._event["version"]},
            )
        return self._deleted


def deletion_applies(sub: RecordSub, version: int) -> bool:
    """Whether a deletion at ``version`` ends what this subscriber holds (§11.6).

    A subscriber that holds nothing (acknowledged version 0) or a newer incarnation of the
    record (acknowledged above the deleted version) got its state after the deletion.
    """
    return sub.acked >= 1 and version >= sub.acked
