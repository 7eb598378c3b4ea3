"""Limits: the hostile-input options are validated and reach MeshServer as keywords."""

from __future__ import annotations

import pytest

from mesh_server import MeshServer
from mesh_server.limits import Limits


def test_defaults() -> None:
    limits = Limits()
    assert (limits.max_json_depth, limits.max_id_depth) == (64, 32)
    assert limits.bad_input_log_interval == 60.0
    # Durations are seconds (mesh_server.limits).
    assert (limits.malformed_window, limits.rate_abuse_window) == (60.0, 10.0)
    assert limits.backend_timeout == 5.0


@pytest.mark.parametrize(
    "options",
    [
        {"max_json_depth": 0},
        {"max_json_depth": 129},
        {"max_id_depth": -1},
        {"max_id_depth": 129},
        {"bad_input_log_interval": 0},
        {"malformed_window": 0},
        {"rate_abuse_window": -1.0},
        {"backend_timeout": 0.0},
    ],
)
def test_out_of_range(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        Limits(**options)  # type: ignore[arg-type]


def test_server_options() -> None:
    server = MeshServer(max_json_depth=10, max_id_depth=0, bad_input_log_interval=5.0)
    assert (server.limits.max_json_depth, server.limits.max_id_depth) == (10, 0)
