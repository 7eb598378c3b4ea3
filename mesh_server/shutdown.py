"""One deadline for a whole graceful shutdown (:meth:`MeshServer.close`).

Each step of the shutdown is awaited only until the common deadline; a step that overruns it
is abandoned with a warning and the next one runs, so the shutdown as a whole ends in time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Collection
from typing import Any

from mesh_server.logs import FIELD_INSTANCE_ID

__all__ = ["ShutdownDeadline"]


class ShutdownDeadline:
    """The time left for a shutdown, and the steps awaited against it.

    Args:
        seconds: Time allowed from now, in seconds.
        log: Where overruns and failures are logged.
        instance_id: The instance shutting down (a structured log field).
    """

    def __init__(self, seconds: float, log: logging.Logger, instance_id: str) -> None:
        self._at = asyncio.get_running_loop().time() + seconds
        self._log = log
        self._extra = {FIELD_INSTANCE_ID: instance_id}

    def remaining(self, reserve: float = 0.0) -> float:
        """Seconds left before the deadline minus ``reserve`` (never negative)."""
        return max(0.0, self._at - reserve - asyncio.get_running_loop().time())

    async def wait_tasks(self, tasks: Collection[asyncio.Task[Any]], reserve: float) -> None:
        """Wait for ``tasks`` until ``reserve`` seconds before the deadline (never cancels them)."""
        pending = {task for task in tasks if not task.done()}
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=self.remaining(reserve))
        if late:
            self._log.warning(
                "shutdown: %d connection cleanups still running at the deadline; "
                "the instance's deregistration removes what they leave",
                len(late),
                extra=self._extra,
            )

    async def step(self, step: Awaitable[Any], what: str) -> None:
        """Await ``step`` until the deadline (then cancel it); log, never raise, what fails."""
        try:
            await asyncio.wait_for(step, self.remaining())
        except TimeoutError:
            self._log.warning(
                "shutdown: %s did not finish by the deadline", what, extra=self._extra
            )
        except Exception:
            self._log.exception("shutdown: %s failed", what, extra=self._extra)
