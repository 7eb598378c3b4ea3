"""How metrics leave the process: the implementation chosen at start, and the scrape endpoint.

:func:`create_metrics` returns the Prometheus facade (:mod:`mesh_server.prometheus`, extra
``mesh-py[metrics]``) when it is enabled and installed, else the no-op
:data:`mesh_server.metrics.NO_METRICS`; :class:`MetricsEndpoint` serves the scrape over plain HTTP
(``GET /metrics`` on the WebSocket port by default). Kept apart from :mod:`mesh_server.metrics`,
which the Prometheus implementation subclasses, so that imports point one way.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Final

from mesh_server.metrics import NO_METRICS, Metrics
from mesh_server.transport.base import HttpResponse, UpgradeRequest

__all__ = ["MetricsEndpoint", "create_metrics", "prometheus_available"]


class MetricsEndpoint:
    """Answers ``GET <path>`` with the Prometheus exposition (knows nothing about sockets).

    :meth:`respond` is an ``on_http`` hook of the transport seam, so the same object serves the
    native WebSocket port and an ASGI ``http`` scope. With metrics off it answers nothing (the
    request is left to the adapter, like any other path).

    Args:
        metrics: The facade scraped.
        path: The endpoint's path.

    Raises:
        ValueError: ``path`` does not start with ``/``.
    """

    def __init__(self, metrics: Metrics, path: str = "/metrics") -> None:
        if not path.startswith("/"):
            raise ValueError(f"the metrics path must start with '/': {path!r}")
        self._metrics = metrics
        self.path = path

    def respond(self, request: UpgradeRequest) -> HttpResponse | None:
        """Answer a scrape, or return ``None`` for any other request."""
        if request.method != "GET" or request.path != self.path:
            return None
        exposition = self._metrics.exposition()
        if exposition is None:
            return None
        return HttpResponse(200, exposition.body, exposition.content_type, _NO_STORE)


_NO_STORE: Final = (("Cache-Control", "no-store"),)


def prometheus_available() -> bool:
    """Return whether ``prometheus_client`` is installed (extra ``mesh-py[metrics]``)."""
    return importlib.util.find_spec("prometheus_client") is not None


def create_metrics(enabled: bool = True, registry: Any = None) -> Metrics:
    """Return the Prometheus facade when enabled and installed, else the no-op one.

    Args:
        enabled: ``False`` turns metrics off even with ``prometheus_client`` installed.
        registry: A ``prometheus_client.CollectorRegistry`` to register into (e.g.
            ``prometheus_client.REGISTRY``, the process-wide default); ``None`` creates one per
            server, so several servers in one process never clash.

    Raises:
        RuntimeError: ``registry`` was given but ``prometheus_client`` is not installed.
    """
    if not enabled:
        return NO_METRICS
    if not prometheus_available():
        if registry is not None:
            raise RuntimeError("metrics_registry needs prometheus_client (mesh-py[metrics])")
        return NO_METRICS
    from mesh_server.prometheus import PrometheusMetrics

    return PrometheusMetrics(registry)
