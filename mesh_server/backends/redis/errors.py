"""The one boundary where redis-py exceptions become :class:`UnavailableError`.

Every backend operation runs inside :func:`unavailable_on_failure`, which also bounds it by the
operation deadline (Backend Guarantees: "Errors").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from redis import exceptions as redis_errors

from mesh_sdk.protocol.errors import UnavailableError

__all__ = ["is_transient", "unavailable_on_failure"]

_TRANSIENT_REPLIES: Final = (
    "LOADING",
    "BUSY",
    "OOM",
    "READONLY",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "NOREPLICAS",
    "MISCONF",
)


def is_transient(exc: BaseException) -> bool:
    """Return whether ``exc`` means "the store cannot serve now" rather than a bug.

    Connection and timeout errors are; so are error replies such as ``LOADING`` (Redis loading
    its data set), ``BUSY`` (a script running too long) or ``READONLY`` (a failover). Other error
    replies (a Lua error, a wrong type) are programming errors and propagate unchanged.
    """
    if isinstance(exc, redis_errors.ResponseError):
        message = str(exc)
        return isinstance(
            exc,
            redis_errors.BusyLoadingError
            | redis_errors.ReadOnlyError
            | redis_errors.OutOfMemoryError,
        ) or message.startswith(_TRANSIENT_REPLIES)
    return isinstance(exc, redis_errors.RedisError | OSError)


@asynccontextmanager
async def unavailable_on_failure(timeout_s: float, operation: str) -> AsyncIterator[None]:
    """Bound the block by ``timeout_s`` and translate store failures to ``UnavailableError``.

    Raises:
        UnavailableError: Redis failed transiently, is unreachable, or the deadline passed.
    """
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError as exc:
        raise UnavailableError(f"Redis backend: {operation} timed out") from exc
    except (redis_errors.RedisError, OSError) as exc:
        if not is_transient(exc):
            raise
        raise UnavailableError(f"Redis backend: {operation} failed ({type(exc).__name__})") from exc
