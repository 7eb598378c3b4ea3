"""Record family guards of generated server facades (mesh_server.facade.RecordFamily.expose)."""

from __future__ import annotations

from typing import Any

import pytest

from mesh_server import MeshServer
from tests.codegen.golden.expected.server import ChatAppServer


def test_a_read_only_family_refuses_a_value_taking_guard() -> None:
    app = ChatAppServer(MeshServer(port=0))
    assert not app.records.room_topic.writable

    def guard(connection: Any, record_id: str, value: Any) -> bool:
        return True

    with pytest.raises(TypeError, match=r"room:\{room\}:topic is not writable"):
        app.records.room_topic.expose(guard=guard)
    app.records.room_topic.expose(guard=lambda connection, record_id: True)


def test_a_writable_family_takes_either_guard_form() -> None:
    app = ChatAppServer(MeshServer(port=0))
    assert app.records.user_profile.writable
    app.records.user_profile.expose(guard=lambda connection, record_id, value: value is not None)
    app.records.user_profile.expose(guard=lambda connection, record_id: True)
    with pytest.raises(TypeError, match="takes"):
        app.records.user_profile.expose(guard=lambda: True)
