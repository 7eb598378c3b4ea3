from __future__ import annotations

import pytest

from mesh_sdk.protocol.errors import (
    ERROR_CLASSES,
    CommandNotFoundError,
    ConflictError,
    MeshConnectionError,
    MeshError,
    MeshTimeoutError,
    RateLimitError,
    UnknownError,
    ValidationError,
    error_from_wire,
)


def test_application_error_keeps_code_name_message() -> None:
    err = MeshError("boom", code="EDEMO", name="DemoError")
    assert err.to_payload() == {"error": "boom", "code": "EDEMO", "name": "DemoError"}
    assert err.to_wire() == err.to_payload()
    assert str(err) == "EDEMO (DemoError): boom"


def test_defaults_are_eserver_and_error() -> None:
    err = MeshError("x")
    assert (err.code, err.name) == ("ESERVER", "Error")


def test_details_travel_only_in_top_level_error() -> None:
    err = ValidationError.for_command("mesh/join-room", [{"path": "", "message": "m"}])
    assert err.message == 'Invalid payload for "mesh/join-room"'
    assert "details" not in err.to_payload()
    assert err.to_wire()["details"] == [{"path": "", "message": "m"}]
    assert "details=" in str(err)


def test_not_found_message_matches_protocol() -> None:
    err = CommandNotFoundError.for_command("no-such-command")
    assert err.to_payload() == {
        "error": 'Command "no-such-command" not found',
        "code": "ENOTFOUND",
        "name": "CommandError",
    }


@pytest.mark.parametrize(("code", "cls"), sorted(ERROR_CLASSES.items()))
def test_round_trip_every_known_code(code: str, cls: type[MeshError]) -> None:
    err = cls("msg", details={"k": 1})
    back = error_from_wire(err.to_wire())
    assert type(back) is cls
    assert back == err
    assert back.code == code


def test_unknown_code_survives_as_plain_mesh_error() -> None:
    back = error_from_wire({"error": "new", "code": "ENEWTHING", "name": "NewError"})
    assert type(back) is MeshError
    assert (back.code, back.name, back.message) == ("ENEWTHING", "NewError", "new")


@pytest.mark.parametrize(
    "obj", [None, 5, "text", [], {"error": 1}, {"code": 3, "error": "x"}, {"message": "m"}]
)
def test_odd_wire_objects_become_unknown_error(obj: object) -> None:
    err = error_from_wire(obj)
    assert isinstance(err, UnknownError)
    assert err.code == "EUNKNOWN"


def test_client_side_errors_subclass_builtins() -> None:
    assert isinstance(MeshTimeoutError("t"), TimeoutError)
    assert isinstance(MeshConnectionError("c"), ConnectionError)
    assert MeshError.from_wire({"code": "ETIMEOUT", "error": "t"}) == MeshTimeoutError("t")


def test_rate_limit_retry_after() -> None:
    assert RateLimitError("r", details={"retryAfterMs": 120}).retry_after == 0.12
    assert RateLimitError("r", details={"retryAfterMs": True}).retry_after is None
    assert RateLimitError("r").retry_after is None


def test_conflict_versions() -> None:
    error = ConflictError.for_record("game:1", 3, 4)
    assert error.to_wire() == {
        "error": 'Record "game:1" is at version 4, not 3.',
        "code": "ECONFLICT",
        "name": "ConflictError",
        "details": {"expected": 3, "actual": 4},
    }
    received = MeshError.from_wire(error.to_wire())
    assert isinstance(received, ConflictError)
    assert (received.expected, received.actual) == (3, 4)
    odd = MeshError.from_wire({"error": "c", "code": "ECONFLICT", "details": {"actual": True}})
    assert isinstance(odd, ConflictError)
    assert (odd.expected, odd.actual) == (None, None)


def test_equality_and_hash() -> None:
    assert MeshError("a") != MeshError("b")
    assert MeshError("a").__eq__(3) is NotImplemented
    assert isinstance(hash(MeshError("a")), int)
    assert "MeshError(message='a'" in repr(MeshError("a"))
