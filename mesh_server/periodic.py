"""Background loops that stop between steps, never by cancelling a backend call in flight.

redis-py (8.x, Python 3.11) can swallow a cancellation that lands while a command is running,
so a loop stopped with ``task.cancel()`` may simply go on looping and ``await task`` hangs.
:class:`Periodic` therefore stops cooperatively: ``stop()`` sets an event that the loop checks
between steps; a step is bounded by the backend deadline, so the wait is bounded too.
Cancellation is only the last resort after ``stop_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Periodic"]


class Periodic:
    """Run ``step`` every ``interval_s`` seconds (first run one interval in) until stopped.

    Args:
        name: Task name (shows in task dumps and logs).
        interval_s: Pause between the end of one step and the start of the next.
        step: The coroutine function to run; exceptions are logged and the loop goes on.
        log: Logger for failed steps.
    """

    def __init__(
        self,
        name: str,
        interval_s: float,
        step: Callable[[], Awaitable[object]],
        log: logging.Logger,
    ) -> None:
        self.name = name
        self.interval_s = interval_s
        self._step = step
        self._log = log
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the loop task is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop (idempotent)."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self, stop_timeout: float = 10.0) -> None:
        """Stop after the current step; cancel only if that takes longer than ``stop_timeout``."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        done, _ = await asyncio.wait({task}, timeout=stop_timeout)
        if not done:
            self._log.warning("%s did not stop in %.1f s: cancelling it", self.name, stop_timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({task}, timeout=1.0)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
            if self._stopping.is_set():
                return
            try:
                await self._step()
            except Exception:
                self._log.exception("%s step failed", self.name)
