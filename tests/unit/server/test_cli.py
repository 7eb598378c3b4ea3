"""``mesh serve`` helpers that need no server: the file-descriptor limit."""

from __future__ import annotations

import resource

import pytest

from mesh_server import cli


def test_raise_file_limit_lifts_the_soft_limit_to_the_hard_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = {"now": (1024, 4096)}

    def setrlimit(which: int, value: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        limits["now"] = value

    monkeypatch.setattr(resource, "getrlimit", lambda which: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    assert cli.raise_file_limit() == 4096
    assert limits["now"] == (4096, 4096)
    assert cli.raise_file_limit() == 4096  # already at the hard limit: nothing to do


def test_raise_file_limit_with_an_infinite_hard_limit_uses_nr_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    infinity = resource.RLIM_INFINITY
    applied: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, infinity))
    monkeypatch.setattr(resource, "setrlimit", lambda which, value: applied.append(value))
    monkeypatch.setattr(cli, "_nr_open", lambda fallback: 1_048_576)
    assert cli.raise_file_limit() == 1_048_576
    assert applied == [(1_048_576, infinity)]


def test_raise_file_limit_keeps_the_soft_limit_when_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(which: int, value: tuple[int, int]) -> None:
        raise ValueError("not allowed")

    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert cli.raise_file_limit() == 1024


def test_the_real_limit_is_raised() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        raised = cli.raise_file_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised
        assert raised >= soft
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
