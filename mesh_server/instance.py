"""Instance liveness in the backend: heartbeat, dead-instance sweep, self-fencing (protocol.md §13).

* Heartbeat every ``instance_heartbeat_interval`` with TTL ``instance_ttl`` (§13.3).
* Sweep every ``instance_sweep_interval``: the backend atomically claims each instance whose
  heartbeat lapsed (exactly one claimer) and removes its connections' state (§13.4).
* Self-fencing (§13.5): when the heartbeat reports that this instance had been presumed dead
  or its registration was lost (Redis restarted empty), or the backend stayed unreachable for
  longer than ``backend_grace``, every local connection is closed with 4002 (its backend state
  may be gone) and new upgrades are refused (503) until a heartbeat succeeds again (the backend
  re-registers the instance on that heartbeat).
* Recovery is prompt whatever the outage length: while the backend is unreachable (a heartbeat
  failed, or the server reported a failed operation with :meth:`InstanceMonitor.report_unavailable`)
  an extra beat runs every ``probe_interval``, and the server runs :meth:`InstanceMonitor.beat` as
  soon as the backend reports it is back. Beats never overlap, so the one that finds the
  registration lost fences before any later beat reports success.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from mesh_server.periodic import Periodic

if TYPE_CHECKING:
    from mesh_server.backends.base import Backend

__all__ = ["InstanceMonitor"]


class InstanceMonitor:
    """Background heartbeat and sweep tasks of one instance.

    Args:
        backend: The started backend.
        heartbeat_interval: Seconds between heartbeats.
        ttl: Heartbeat TTL in seconds (must exceed the interval); the backend gets it in ms.
        sweep_interval: Seconds between dead-instance sweeps.
        backend_grace: Seconds of backend unavailability tolerated before fencing.
        probe_interval: Seconds between heartbeats while the backend is unreachable (at most
            ``heartbeat_interval``).
        fence: Called with a reason to close every local connection with 4002.
        log: Logger.
        clock: Monotonic clock in seconds (the event loop's by default).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        heartbeat_interval: float,
        ttl: float,
        sweep_interval: float,
        backend_grace: float,
        probe_interval: float | None = None,
        fence: Callable[[str], Awaitable[None]],
        log: logging.Logger,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if ttl <= heartbeat_interval:
            raise ValueError("instance_ttl must exceed instance_heartbeat_interval")
        self._backend = backend
        self.heartbeat_interval = heartbeat_interval
        self.ttl = ttl
        self._ttl_ms = max(1, round(ttl * 1000))
        self.sweep_interval = sweep_interval
        self.backend_grace = backend_grace
        self.probe_interval = min(
            probe_interval if probe_interval is not None else heartbeat_interval,
            heartbeat_interval,
        )
        self._beating = asyncio.Lock()
        self._fence = fence
        self._log = log
        self._clock = clock
        self._loops: list[Periodic] = []
        self.fenced = False
        """``True`` while new connections must be refused (backend state lost or unreachable)."""
        self.down_since: float | None = None
        """Monotonic time (s) of the first failed heartbeat of the current outage, if any."""
        self.swept: list[str] = []
        """Ids of dead instances this instance cleaned up (most recent last, bounded)."""

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return asyncio.get_running_loop().time()

    async def start(self) -> None:
        """Start the heartbeat, probe and sweep loops."""
        self._loops = [
            Periodic("mesh-heartbeat", self.heartbeat_interval, self.beat, self._log),
            Periodic("mesh-backend-probe", self.probe_interval, self._probe, self._log),
            Periodic("mesh-instance-sweep", self.sweep_interval, self.sweep, self._log),
        ]
        for loop in self._loops:
            loop.start()

    async def stop(self) -> None:
        """Stop the loops (between steps: a backend call in flight is never cancelled)."""
        loops, self._loops = self._loops, []
        for loop in loops:
            await loop.stop()

    @property
    def unavailable(self) -> bool:
        """Whether the backend is currently considered unreachable."""
        return self.down_since is not None

    def report_unavailable(self) -> None:
        """Note that a backend operation failed: refuse upgrades (503) and probe until it answers.

        Without this, the outage would only be noticed at the next regular heartbeat, and
        connections opened meanwhile would fail registration (close 1011) instead of being
        answered 503 before the upgrade (protocol.md §5.2).
        """
        if self.down_since is None:
            self.down_since = self._now()

    async def _probe(self) -> None:
        if self.down_since is not None:
            await self.beat()

    async def beat(self) -> bool:
        """Run one heartbeat and apply the fencing rules (protocol.md §13.5).

        Returns:
            ``True`` if the backend answered and the instance's state survived; ``False`` if it
            is unreachable or this beat fenced the instance (its connections are closing).
        """
        async with self._beating:
            return await self._beat()

    async def _beat(self) -> bool:
        try:
            alive = await self._backend.heartbeat(self._ttl_ms)
        except Exception as exc:
            now = self._now()
            if self.down_since is None:
                self.down_since = now
                # The backend logs the outage itself (once); this is the instance's view.
                self._log.debug("heartbeat failed: %s", exc)
            elif not self.fenced and now - self.down_since > self.backend_grace:
                self.fenced = True
                await self._fence("backend unreachable for longer than backend_grace")
            return False
        self.down_since = None
        if not alive:
            # Presumed dead and cleaned up, or the store came back empty: the connections'
            # backend state is gone, so they must reconnect (§13.5) rather than be resynced.
            self.fenced = True
            await self._fence("instance registration was lost")
        # The heartbeat re-created the registration: accept connections again.
        self.fenced = False
        return alive

    async def sweep(self) -> None:
        """Run one dead-instance sweep (protocol.md §13.4)."""
        try:
            reports = await self._backend.sweep_dead_instances()
        except Exception as exc:
            self._log.debug("dead-instance sweep failed: %s", exc)
            return
        for report in reports:
            self._log.info(
                "cleaned up dead instance %s (%d connections)",
                report.instance_id,
                len(report.connection_ids),
            )
            self.swept.append(report.instance_id)
        del self.swept[:-100]
