"""The one boundary where redis-py exceptions become :class:`UnavailableError`.

Every backend operation runs inside :func:`unavailable_on_failure`, which also bounds it by the
operation deadline (Backend Guarantees: "Errors"). Clients only ever see the neutral
:data:`UNAVAILABLE_MESSAGE`; what failed and why (operation, redis-py exception) goes to the log
and stays on the exception as its ``__cause__`` (protocol.md §4: error text never names internals).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from redis import exceptions as redis_errors

from mesh_sdk.protocol.errors import UnavailableError
from mesh_server.backends.redis.health import Health

__all__ = ["UNAVAILABLE_MESSAGE", "is_transient", "unavailable", "unavailable_on_failure"]

logger = logging.getLogger(__name__)

UNAVAILABLE_MESSAGE: Final = "service temporarily unavailable"
"""The only text an ``EUNAVAILABLE`` raised by the Redis backend carries to clients."""

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


def unavailable(detail: str) -> UnavailableError:
    """Return the neutral ``UnavailableError`` for a failure described by ``detail``.

    The detail (e.g. ``"Redis backend: join room failed (ConnectionError)"``) is logged at debug
    level only: during an outage every operation fails, and the outage itself is logged once by
    :class:`~mesh_server.backends.redis.health.Health`.
    """
    logger.debug("%s", detail)
    error = UnavailableError(UNAVAILABLE_MESSAGE)
    error.add_note(detail)
    return error


@asynccontextmanager
async def unavailable_on_failure(
    timeout_s: float,
    operation: str,
    health: Health | None = None,
    *,
    deadline_is_failure: bool = True,
) -> AsyncIterator[None]:
    """Bound the block by ``timeout_s`` and translate store failures to ``UnavailableError``.

    Args:
        timeout_s: The operation deadline in seconds.
        operation: What the block does, for the log (never sent to clients).
        health: Told about a translated failure (successes are reported by callers that know
            Redis answered: heartbeats and pub/sub (re)subscriptions).
        deadline_is_failure: Whether ``timeout_s`` passing tells ``health``. ``False`` for
            blocks that also wait on something other than Redis (a record write queued behind
            the writes of its record, retries after conflicts, an update function): their
            deadline passing is contention, not an outage. A Redis command that hangs still
            counts there, through the client's ``socket_timeout``.

    Raises:
        UnavailableError: Redis failed transiently, is unreachable, or the deadline passed; its
            message is :data:`UNAVAILABLE_MESSAGE`, the detail is in a note and the log.
    """
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError as exc:
        detail = f"Redis backend: {operation} timed out"
        if not deadline_is_failure:
            raise unavailable(detail) from exc
        raise _failure(detail, health) from exc
    except (redis_errors.RedisError, OSError) as exc:
        if not is_transient(exc):
            raise
        detail = f"Redis backend: {operation} failed ({type(exc).__name__}: {exc})"
        raise _failure(detail, health) from exc


def _failure(detail: str, health: Health | None) -> UnavailableError:
    if health is not None:
        health.failed(detail)
    return unavailable(detail)
