"""Health endpoints as a pure request → response function (what every transport calls)."""

from __future__ import annotations

import json

import pytest

from mesh_server.health import HealthEndpoints, Readiness
from mesh_server.transport.base import UpgradeRequest


def endpoints(readiness: Readiness, **paths: str) -> HealthEndpoints:
    return HealthEndpoints(lambda: readiness, **paths)


def test_liveness_and_readiness_when_ready() -> None:
    health = endpoints(Readiness())
    live = health.respond(UpgradeRequest("/healthz"))
    assert live is not None
    assert (live.status, json.loads(live.body)) == (200, {"status": "ok"})
    assert ("Cache-Control", "no-store") in live.headers
    ready = health.respond(UpgradeRequest("/readyz"))
    assert ready is not None
    assert (ready.status, json.loads(ready.body)) == (200, {"status": "ready"})
    assert ready.content_type == "application/json"


def test_not_ready_names_every_reason() -> None:
    readiness = Readiness(("shutting_down", "pubsub_disconnected"))
    assert not readiness.ready
    answer = endpoints(readiness).respond(UpgradeRequest("/readyz"))
    assert answer is not None
    assert answer.status == 503
    assert json.loads(answer.body) == {
        "status": "unavailable",
        "reasons": ["shutting_down", "pubsub_disconnected"],
    }
    # Liveness does not depend on readiness.
    live = endpoints(readiness).respond(UpgradeRequest("/healthz"))
    assert live is not None
    assert live.status == 200


def test_other_paths_and_methods_are_left_to_the_transport() -> None:
    health = endpoints(Readiness(), health_path="/live", readiness_path="/ready")
    assert health.respond(UpgradeRequest("/healthz")) is None
    assert health.respond(UpgradeRequest("/ws")) is None
    assert health.respond(UpgradeRequest("/live", method="POST")) is None
    answer = health.respond(UpgradeRequest("/ready", query_string="verbose=1"))
    assert answer is not None
    assert answer.status == 200


def test_paths_are_validated() -> None:
    with pytest.raises(ValueError, match="start with"):
        endpoints(Readiness(), health_path="healthz")
    with pytest.raises(ValueError, match="differ"):
        endpoints(Readiness(), health_path="/h", readiness_path="/h")
