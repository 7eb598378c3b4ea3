"""What reaches the server over HTTP: upgrade decisions (protocol.md §5.1) and plain ``GET``.

:class:`Gate` decides every WebSocket upgrade (refused with 503 while shutting down, fenced,
without a backend, or at ``max_connections``; 403 for a foreign ``Origin``; then the
``authenticate`` hook) and answers plain HTTP requests on the WebSocket port with the health and
metrics endpoints. It also computes :meth:`Gate.readiness` (the ``/readyz`` answer).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from mesh_server.errors import MeshAuthError
from mesh_server.health import (
    BACKEND_UNAVAILABLE,
    FENCED,
    SHUTTING_DOWN,
    HealthEndpoints,
    Readiness,
)
from mesh_server.metrics_export import MetricsEndpoint
from mesh_server.transport.base import Accept, HttpResponse, UpgradeDecision, UpgradeRequest

if TYPE_CHECKING:
    from mesh_server._core.base import Core

__all__ = ["Gate"]


class Gate:
    """Upgrade decisions and the plain-HTTP endpoints of one core.

    Args:
        core: The server core.
    """

    def __init__(self, core: Core) -> None:
        self._core = core
        self.health: HealthEndpoints | None = None
        self.metrics_endpoint: MetricsEndpoint | None = None
        self.configure()

    def configure(self) -> None:
        """(Re)build the plain-HTTP endpoints from the core's options.

        Raises:
            ValueError: A path does not start with ``/``, or two endpoints share a path.
        """
        options = self._core.options
        self._configure_health(options.health, options.health_path, options.readiness_path)
        self._configure_metrics_endpoint(options.metrics_endpoint, options.metrics_path)

    # ------------------------------------------------------------------ upgrades (§5.1)

    def on_upgrade(self, request: UpgradeRequest) -> UpgradeDecision | Awaitable[UpgradeDecision]:
        """Decide an upgrade (the transport's ``on_upgrade`` hook)."""
        # Decided synchronously unless the authenticate hook is async: the adapter then writes
        # the 101 from its read callback, with no task per handshake.
        core = self._core
        options = core.options
        instance = core.instance
        if core.closing or (instance is not None and (instance.fenced or instance.unavailable)):
            # §5.1: the backend cannot register connections now; clients retry soon.
            return HttpResponse.text(503, "Service Unavailable")
        max_connections = options.limits.max_connections
        if max_connections is not None and core.conn_count >= max_connections:
            return HttpResponse.text(503, "Service Unavailable")  # §15: connections per instance
        if options.allowed_origins is not None and request.origin not in options.allowed_origins:
            return HttpResponse.text(403, "Forbidden")  # §5.1: Origin allow-list
        authenticate = options.authenticate
        if authenticate is None:
            return Accept()
        try:
            result = authenticate(request)
        except Exception as exc:
            return self._auth_failed(exc)
        if inspect.isawaitable(result):
            return self._authenticate_later(result)
        return Accept(result)

    async def _authenticate_later(self, pending: Awaitable[Any]) -> UpgradeDecision:
        try:
            return Accept(await pending)
        except Exception as exc:
            return self._auth_failed(exc)

    def _auth_failed(self, exc: Exception) -> HttpResponse:
        if isinstance(exc, MeshAuthError):
            return HttpResponse.text(exc.status, exc.message)
        self._core.log.error("authenticate hook failed", exc_info=exc)  # §5.1: unexpected → 500
        return HttpResponse.text(500, "Internal Server Error")

    # ------------------------------------------------------------------ plain HTTP

    @property
    def serves_http(self) -> bool:
        """Whether any plain-HTTP endpoint is on."""
        return self.health is not None or self.metrics_endpoint is not None

    def on_http(self, request: UpgradeRequest) -> HttpResponse | None:
        """Answer a plain HTTP request: the health endpoints, then the metrics endpoint."""
        health, endpoint = self.health, self.metrics_endpoint
        response = health.respond(request) if health is not None else None
        if response is None and endpoint is not None:
            response = endpoint.respond(request)
        return response

    def _configure_health(self, enabled: bool, health_path: str, readiness_path: str) -> None:
        self.health = (
            HealthEndpoints(self.readiness, health_path=health_path, readiness_path=readiness_path)
            if enabled
            else None
        )

    def _configure_metrics_endpoint(self, enabled: bool, path: str) -> None:
        endpoint = MetricsEndpoint(self._core.metrics, path) if enabled else None
        health = self.health
        if (
            endpoint is not None
            and health is not None
            and path in (health.health_path, health.readiness_path)
        ):
            raise ValueError(f"metrics_path {path!r} is a health endpoint's path")
        self.metrics_endpoint = endpoint

    def readiness(self) -> Readiness:
        """Whether this instance should get new connections (see ``MeshServer.readiness``)."""
        core = self._core
        reasons: list[str] = []
        if core.closing:
            reasons.append(SHUTTING_DOWN)
        instance = core.instance
        if instance is not None and instance.fenced:
            reasons.append(FENCED)
        if instance is not None and instance.unavailable:
            reasons.append(BACKEND_UNAVAILABLE)
        reasons.extend(core.backend.health_issues())
        return Readiness(tuple(reasons))
