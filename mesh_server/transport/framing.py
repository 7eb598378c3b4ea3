"""Server text frames encoded once per fan-out, shared by the listening adapters.

Without permessage-deflate a server's text frame is the same bytes for every recipient (servers
do not mask, RFC 6455 §5.1), so a push to N connections frames its payload once and writes that
object N times.
"""

from __future__ import annotations

import struct

__all__ = ["FrameCache", "text_frame"]

_SMALL_HEADS = [bytes((0x81, length)) for length in range(126)]
_HEAD_16 = struct.Struct("!BBH")
_HEAD_64 = struct.Struct("!BBQ")


def text_frame(payload: bytes) -> bytes:
    """``payload`` as one unmasked, final text frame (RFC 6455 §5.2: 7/16/64-bit length)."""
    length = len(payload)
    if length < 126:
        return _SMALL_HEADS[length] + payload
    if length < 65536:
        return _HEAD_16.pack(0x81, 126, length) + payload
    return _HEAD_64.pack(0x81, 127, length) + payload


class FrameCache:
    """The wire form of the last payload seen: a fan-out frames its payload once."""

    __slots__ = ("_of", "_wire")

    def __init__(self) -> None:
        self._of: bytes | None = None
        self._wire = b""

    def wire(self, frame: bytes) -> bytes:
        """Return ``frame`` as a text frame, framed again only when a different object comes."""
        if frame is not self._of:
            self._of = frame
            self._wire = text_frame(frame)
        return self._wire
