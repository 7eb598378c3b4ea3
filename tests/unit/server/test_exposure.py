"""Exposure patterns, guards and admission checks (protocol.md §9.2, §11.1, §15)."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest

from mesh_sdk.protocol.errors import TooLargeError, ValidationError
from mesh_server.exposure import (
    READ_ACCESS,
    Exposure,
    RecordExposure,
    SubscriptionQuota,
    check_name,
    is_internal_name,
)
from tests.unit.server.features_fakes import FakeConnection

CONN = FakeConnection("conn-a")


async def test_exact_string_matches_only_itself() -> None:
    exposure = Exposure()
    exposure.add("chat:lobby")
    assert await exposure.allows(CONN, "chat:lobby")
    assert not await exposure.allows(CONN, "chat:lobby2")
    assert not await exposure.allows(CONN, "chat:")


async def test_regex_must_match_the_whole_name() -> None:
    exposure = Exposure()
    exposure.add(re.compile(r"user:\d+"))
    assert await exposure.allows(CONN, "user:1")
    # The reference's unanchored RegExp.test would expose these (Appendix B).
    assert not await exposure.allows(CONN, "admin:user:1:secrets")
    assert not await exposure.allows(CONN, "user:1x")


async def test_no_pattern_denies() -> None:
    exposure = Exposure()
    assert not exposure
    assert not await exposure.allows(CONN, "anything")


async def test_any_matching_pattern_guard_passes() -> None:
    exposure = Exposure()
    calls: list[str] = []

    def deny(connection: object, name: str) -> bool:
        calls.append("deny")
        return False

    def allow(connection: object, name: str) -> bool:
        calls.append("allow")
        return True

    exposure.add(re.compile(r"chat:.+"), deny)
    exposure.add(re.compile(r"other:.+"), allow)
    exposure.add("chat:lobby", allow)
    assert await exposure.allows(CONN, "chat:lobby")
    # Registration order; the non-matching pattern's guard is never called.
    assert calls == ["deny", "allow"]
    assert not await exposure.allows(CONN, "chat:kitchen")


async def test_async_guard_and_guard_arguments() -> None:
    seen: list[tuple[str, str]] = []

    async def guard(connection: FakeConnection, name: str) -> bool:
        seen.append((connection.id, name))
        return name.endswith("ok")

    exposure = Exposure()
    exposure.add(re.compile(r"c:.*"), guard)
    assert await exposure.allows(CONN, "c:ok")
    assert not await exposure.allows(CONN, "c:no")
    assert seen == [("conn-a", "c:ok"), ("conn-a", "c:no")]


async def test_raising_guard_counts_as_false_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(connection: object, name: str) -> bool:
        raise RuntimeError("boom")

    exposure = Exposure()
    exposure.add("secret", broken)
    with caplog.at_level(logging.ERROR, logger="mesh_server.exposure"):
        assert not await exposure.allows(CONN, "secret")
    assert any("guard raised" in record.getMessage() for record in caplog.records)
    # A later passing pattern still allows.
    exposure.add("secret")
    assert await exposure.allows(CONN, "secret")


def test_bad_pattern_or_guard_types_are_refused() -> None:
    exposure = Exposure()
    with pytest.raises(TypeError):
        exposure.add(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        exposure.add("x", "not callable")  # type: ignore[arg-type]


def test_first_match_index() -> None:
    exposure = Exposure()
    exposure.add(re.compile(r"a.*"))
    exposure.add(re.compile(r"ab.*"))
    assert exposure.first_match("abc") == 0
    assert exposure.first_match("zzz") is None
    assert exposure.matches("ab")


async def test_writable_implies_readable() -> None:
    records = RecordExposure()
    records.writable.add(re.compile(r"doc:.+"))
    assert await records.can_read(CONN, "doc:1")
    assert await records.can_write(CONN, "doc:1", {"v": 1})


async def test_read_pattern_never_grants_writes() -> None:
    records = RecordExposure()
    records.readable.add(re.compile(r"doc:.+"))
    assert await records.can_read(CONN, "doc:1")
    assert not await records.can_write(CONN, "doc:1", {"v": 1})


async def test_writable_guard_is_needed_for_writes() -> None:
    records = RecordExposure()
    records.readable.add(re.compile(r"doc:.+"))
    records.writable.add(re.compile(r"doc:.+"), lambda connection, name: False)
    # Readable through the read pattern, but the writable guard denies the write (§11.1).
    assert await records.can_read(CONN, "doc:1")
    assert not await records.can_write(CONN, "doc:1", {"v": 1})


async def test_denied_writable_guard_does_not_grant_reads() -> None:
    records = RecordExposure()
    records.writable.add("doc:1", lambda connection, name: False)
    assert not await records.can_read(CONN, "doc:1")


async def test_write_guards_may_take_the_value_being_written() -> None:
    records = RecordExposure()
    seen: list[tuple[str, object]] = []

    def by_author(connection: FakeConnection, record_id: str, value: Any) -> bool:
        seen.append((record_id, value))
        if value is READ_ACCESS:
            return record_id.startswith("doc:")
        return isinstance(value, dict) and value.get("editedBy") == connection.id

    records.writable.add(re.compile(r"doc:.+"), by_author)

    assert await records.can_write(CONN, "doc:1", {"editedBy": CONN.id})
    assert not await records.can_write(CONN, "doc:1", {"editedBy": "bob"})
    assert not await records.can_write(CONN, "doc:1", None)
    # Reading through the writable pattern (writable ⇒ readable) asks with READ_ACCESS.
    assert await records.can_read(CONN, "doc:1")
    assert seen == [
        ("doc:1", {"editedBy": CONN.id}),
        ("doc:1", {"editedBy": "bob"}),
        ("doc:1", None),
        ("doc:1", READ_ACCESS),
    ]
    assert repr(READ_ACCESS) == "READ_ACCESS"


async def test_guard_forms_are_read_from_the_signature_at_registration() -> None:
    records = RecordExposure()
    calls: list[tuple[object, ...]] = []

    async def two(connection: object, record_id: str) -> bool:
        calls.append((record_id,))
        return record_id == "a:2"

    def optional_value(connection: object, record_id: str, value: object = None) -> bool:
        calls.append((record_id, value))
        return False

    def logged(guard: Callable[..., bool]) -> Callable[..., bool]:
        @functools.wraps(guard)
        def wrapper(*args: object) -> bool:
            return guard(*args)

        return wrapper

    @logged
    def wrapped_two(connection: object, record_id: str) -> bool:
        calls.append(("wrapped", record_id))
        return False

    records.writable.add("a:1", optional_value)
    records.writable.add("a:2", two)
    records.writable.add("a:3", wrapped_two)  # the wrapped signature decides: two arguments

    assert not await records.can_write(CONN, "a:1", [1])
    assert await records.can_write(CONN, "a:2", [2])
    assert not await records.can_write(CONN, "a:3", [3])
    assert calls == [("a:1", [1]), ("a:2",), ("wrapped", "a:3")]
    with pytest.raises(TypeError, match="takes"):
        records.writable.add("b", lambda connection: True)
    with pytest.raises(TypeError, match="takes"):
        records.writable.add("b", lambda connection, name, value, extra: True)
    # Read patterns keep the two-argument form: no signature check.
    records.readable.add("c", lambda connection, name, value: True)
    assert not await records.can_read(CONN, "c")  # calling it raises: counts as a denial


def test_internal_names() -> None:
    assert is_internal_name("mesh:presence:updates:room", "mesh:")
    assert is_internal_name("__keyspace@0__:foo", "mesh:")
    assert is_internal_name("__keyevent@0__:expired", "mesh:")
    assert not is_internal_name("chat:mesh:", "mesh:")
    assert is_internal_name("app:x", "app:")
    assert not is_internal_name("mesh:x", "")


def test_check_name_applies_the_configured_length() -> None:
    check_name("mesh/join-room", "roomName", "a" * 10, 10)
    with pytest.raises(ValidationError) as info:
        check_name("mesh/join-room", "roomName", "a" * 11, 10)
    assert info.value.message == 'Invalid payload for "mesh/join-room"'
    assert info.value.details[0]["path"] == "/roomName"
    with pytest.raises(ValidationError):
        check_name("mesh/join-room", "roomName", "", 10)


def test_quota_counts_and_releases() -> None:
    quota = SubscriptionQuota(2)
    quota.reserve("c")
    quota.reserve("c")
    with pytest.raises(TooLargeError) as info:
        quota.reserve("c")
    assert info.value.details == {"limit": 2}
    assert info.value.code == "ETOOLARGE"
    quota.reserve("other")
    quota.release("c")
    quota.reserve("c")
    quota.add("c")  # unchecked (server-side joins)
    assert quota.count("c") == 3
    quota.release("c", 3)
    assert quota.count("c") == 0
    quota.release("c")
    assert quota.count("c") == 0
