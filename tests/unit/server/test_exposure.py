"""Exposure patterns, guards and admission checks (PROTOCOL §9.2, §11.1, §15)."""

from __future__ import annotations

import logging
import re

import pytest

from mesh_sdk.protocol.errors import TooLargeError, ValidationError
from mesh_server.exposure import (
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
    assert await records.can_write(CONN, "doc:1")


async def test_read_pattern_never_grants_writes() -> None:
    records = RecordExposure()
    records.readable.add(re.compile(r"doc:.+"))
    assert await records.can_read(CONN, "doc:1")
    assert not await records.can_write(CONN, "doc:1")


async def test_writable_guard_is_needed_for_writes() -> None:
    records = RecordExposure()
    records.readable.add(re.compile(r"doc:.+"))
    records.writable.add(re.compile(r"doc:.+"), lambda connection, name: False)
    # Readable through the read pattern, but the writable guard denies the write (§11.1).
    assert await records.can_read(CONN, "doc:1")
    assert not await records.can_write(CONN, "doc:1")


async def test_denied_writable_guard_does_not_grant_reads() -> None:
    records = RecordExposure()
    records.writable.add("doc:1", lambda connection, name: False)
    assert not await records.can_read(CONN, "doc:1")


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
