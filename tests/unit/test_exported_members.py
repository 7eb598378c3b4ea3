"""The public names of ``mesh_server``, ``mesh_sdk`` and ``MeshClient`` are pinned and documented.

Both packages export lazily (PEP 562), so a typo in the lazy table would only show on first use:
this test touches every name. Changing the public API means changing the lists below on purpose.
"""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

EXPORTS = {
    "mesh_server": [
        "CommandNotFoundError",
        "ConflictError",
        "Connection",
        "Context",
        "ForbiddenError",
        "Limits",
        "MeshAuthError",
        "MeshError",
        "MeshServer",
        "RateLimitError",
        "ServerError",
        "TooLargeError",
        "UnavailableError",
        "UnknownError",
        "UpgradeRequest",
        "ValidationError",
    ],
    "mesh_sdk": [
        "Backoff",
        "ChannelSubscription",
        "CommandNotFoundError",
        "ConflictError",
        "ContractMismatchError",
        "ContractMismatchWarning",
        "ContractViolationError",
        "ForbiddenError",
        "LocalValidationError",
        "MeshAuthenticationError",
        "MeshClient",
        "MeshConnectionError",
        "MeshError",
        "MeshTimeoutError",
        "PresenceSnapshot",
        "PresenceSubscription",
        "PresenceUpdate",
        "RateLimitError",
        "RecordChange",
        "RecordSubscription",
        "RoomHandle",
        "ServerError",
        "SessionState",
        "SubscriptionDenied",
        "TooLargeError",
        "UnavailableError",
        "UnknownError",
        "ValidationError",
    ],
}

CASES = [(package, name) for package, names in EXPORTS.items() for name in names]


@pytest.mark.parametrize("package", sorted(EXPORTS))
def test_all_is_pinned_and_listed_by_dir(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == EXPORTS[package]
    assert set(EXPORTS[package]) <= set(dir(module))


@pytest.mark.parametrize("package", sorted(EXPORTS))
def test_star_import_binds_exactly_all(package: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)  # the import form users write
    public = {name for name in namespace if not name.startswith("_")}
    assert public == set(EXPORTS[package])
    module = importlib.import_module(package)
    unexported = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    } - set(EXPORTS[package])
    # Only typing helpers of the lazy loader remain (TYPE_CHECKING, Any, annotations, importlib).
    assert unexported <= {"TYPE_CHECKING", "Any", "annotations", "importlib"}


@pytest.mark.parametrize(("package", "name"), CASES, ids=[f"{p}.{n}" for p, n in CASES])
def test_export_resolves_to_a_documented_public_object(package: str, name: str) -> None:
    obj = getattr(importlib.import_module(package), name)
    assert obj.__name__ == name
    home = obj.__module__
    assert home.startswith(("mesh_server.", "mesh_sdk."))
    assert not any(part.startswith("_") for part in home.split("."))
    # Its own docstring, not one inherited from a base class.
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert isinstance(doc, str)
    assert doc.strip()


@pytest.mark.parametrize("package", sorted(EXPORTS))
def test_unknown_attribute_raises_attribute_error(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nope'"):
        _ = module.nope


CLIENT_MEMBERS = [
    "bind_contract",
    "clear_presence_state",
    "close",
    "closed",
    "command",
    "connect",
    "connected",
    "connection_id",
    "get_channel_history",
    "get_connection_metadata",
    "get_presence_state",
    "get_room_metadata",
    "join_room",
    "latency",
    "leave_room",
    "off",
    "on",
    "on_push",
    "publish_presence_state",
    "publish_record_update",
    "set_connection_metadata",
    "state",
    "subscribe_channel",
    "subscribe_presence",
    "subscribe_record",
    "unsubscribe_channel",
    "unsubscribe_presence",
    "unsubscribe_record",
]
"""``MeshClient``'s public methods and properties, which its layers and feature mixins add up to."""


def test_client_members_are_pinned_and_documented() -> None:
    from mesh_sdk import MeshClient

    public = sorted(name for name in dir(MeshClient) if not name.startswith("_"))
    assert public == CLIENT_MEMBERS
    for name in public:
        member = inspect.getattr_static(MeshClient, name)
        doc = (member.fget if isinstance(member, property) else member).__doc__
        assert isinstance(doc, str), name
        assert doc.strip(), name
