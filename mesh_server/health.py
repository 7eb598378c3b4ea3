"""Health endpoints: plain HTTP ``GET`` on the WebSocket port (liveness and readiness).

* ``GET /healthz`` → ``200 {"status": "ok"}`` whenever the process answers (liveness).
* ``GET /readyz`` → ``200 {"status": "ready"}``, or ``503 {"status": "unavailable", "reasons":
  [...]}`` while the instance should get no new connections (readiness). Reasons:
  ``"shutting_down"`` (the server is closing), ``"fenced"`` (the instance fenced itself,
  protocol.md §13.5), ``"backend_unavailable"`` (its heartbeats fail) and whatever the backend
  reports (:meth:`Backend.health_issues`, e.g. ``"pubsub_disconnected"`` while the Redis
  pub/sub reader is down).

:class:`HealthEndpoints` knows nothing about sockets: :meth:`HealthEndpoints.respond` is the
``on_http`` hook of the websockets adapter and answers an ASGI ``http`` scope as it is. Checks are
synchronous and do no I/O, so a probe costs no backend round trip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mesh_server.transport.base import HttpResponse, UpgradeRequest

__all__ = ["BACKEND_UNAVAILABLE", "FENCED", "SHUTTING_DOWN", "HealthEndpoints", "Readiness"]

SHUTTING_DOWN = "shutting_down"
"""Readiness reason: the server is closing (protocol.md §5.3)."""

FENCED = "fenced"
"""Readiness reason: the instance fenced itself and refuses connections (protocol.md §13.5)."""

BACKEND_UNAVAILABLE = "backend_unavailable"
"""Readiness reason: the instance's heartbeats fail (the backend is unreachable, §13.5)."""

_NO_STORE = (("Cache-Control", "no-store"),)


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the instance can take new connections.

    Attributes:
        reasons: Why not, as stable machine-readable codes; empty when ready.
    """

    reasons: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        """``True`` when nothing stands in the way."""
        return not self.reasons


class HealthEndpoints:
    """Answers liveness and readiness probes.

    Args:
        readiness: Returns the current :class:`Readiness` (cheap, synchronous).
        health_path: Path of the liveness endpoint.
        readiness_path: Path of the readiness endpoint.

    Raises:
        ValueError: A path does not start with ``/``, or both paths are equal.
    """

    def __init__(
        self,
        readiness: Callable[[], Readiness],
        *,
        health_path: str = "/healthz",
        readiness_path: str = "/readyz",
    ) -> None:
        for path in (health_path, readiness_path):
            if not path.startswith("/"):
                raise ValueError(f"health endpoint paths must start with '/': {path!r}")
        if health_path == readiness_path:
            raise ValueError("health_path and readiness_path must differ")
        self._readiness = readiness
        self.health_path = health_path
        self.readiness_path = readiness_path

    def respond(self, request: UpgradeRequest) -> HttpResponse | None:
        """Answer a probe, or return ``None`` for any other request."""
        if request.method != "GET":
            return None
        if request.path == self.health_path:
            return HttpResponse.json(200, {"status": "ok"}, _NO_STORE)
        if request.path == self.readiness_path:
            readiness = self._readiness()
            if readiness.ready:
                return HttpResponse.json(200, {"status": "ready"}, _NO_STORE)
            content = {"status": "unavailable", "reasons": list(readiness.reasons)}
            return HttpResponse.json(503, content, _NO_STORE)
        return None
