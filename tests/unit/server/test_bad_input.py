"""BadInputLog: DEBUG per occurrence, at most one summary line per interval (issue 8 item 6)."""

from __future__ import annotations

import logging

import pytest

from mesh_server.bad_input import BadInputLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def summaries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]


def test_one_summary_per_interval_with_counts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    log = BadInputLog(logging.getLogger("test.bad_input"), 10.0, clock)
    log.record("unknown_command", "conn-a")  # first after a quiet interval: at once
    for _ in range(1000):
        log.record("malformed", "conn-a", "invalid JSON")
        log.record("too_deep", "conn-b")
    log.record("custom", "conn-b")
    assert summaries(caplog) == ["bad client input in the last 0.0 s: 1 unknown_command"]
    clock.now += 10.0
    log.record("unknown_command", "conn-c")
    assert summaries(caplog)[1] == (
        "bad client input in the last 10.0 s: 1000 malformed, 1000 too_deep, "
        "1 unknown_command, 1 custom"
    )
    assert log.totals["malformed"] == 1000
    assert log.totals["unknown_command"] == 2
    assert len(caplog.records) == 2  # nothing below INFO was emitted at INFO level


def test_each_occurrence_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log = BadInputLog(logging.getLogger("test.bad_input"), 60.0, Clock())
    log.record("malformed", "conn-a", "not a JSON object but list")
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert debug == ["bad input from conn-a: malformed not a JSON object but list"]
