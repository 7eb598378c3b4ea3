from __future__ import annotations

import pytest

from mesh_sdk.reconnect import Backoff, should_reconnect, should_reconnect_after_status


@pytest.mark.parametrize("code", [1002, 1003, 1007, 1008, 1010, 4500, 4501, 4600, 4999])
def test_do_not_reconnect_codes(code: int) -> None:
    assert should_reconnect(code) is False


@pytest.mark.parametrize(
    "code", [None, 1000, 1001, 1005, 1006, 1009, 1011, 1012, 1013, 1014, 4000, 4001, 4002, 4499]
)
def test_reconnect_codes(code: int | None) -> None:
    assert should_reconnect(code) is True


@pytest.mark.parametrize(
    ("status", "retry"), [(401, False), (403, False), (503, True), (404, True)]
)
def test_status(status: int, retry: bool) -> None:
    assert should_reconnect_after_status(status) is retry


def test_ceiling_doubles_and_caps() -> None:
    backoff = Backoff()  # seconds: 0.5 doubling up to 30
    assert [backoff.ceiling(a) for a in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.ceiling(10_000) == 30
    assert backoff.ceiling(-3) == 0.5


def test_full_jitter_uses_rng() -> None:
    values = iter([0.0, 0.5, 0.999])
    backoff = Backoff(0.5, 30.0, rng=lambda: next(values))
    assert backoff.delay(0) == 0.0
    assert backoff.delay(1) == 0.5
    assert backoff.delay(20) == pytest.approx(29.97)


def test_default_rng_within_bounds() -> None:
    backoff = Backoff(0.1, 1.0)
    for attempt in range(10):
        assert 0 <= backoff.delay(attempt) <= backoff.ceiling(attempt)


def test_negative_delays_rejected() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        Backoff(-1, 10)


def test_cap_lowers_the_ceiling_for_one_attempt() -> None:
    backoff = Backoff(0.5, 30.0, rng=lambda: 1.0)
    assert backoff.delay(10) == 30.0
    assert backoff.delay(10, cap=1.0) == 1.0  # after HTTP 503: ask again soon
    assert backoff.delay(0, cap=1.0) == 0.5  # never above the ordinary ceiling
    assert backoff.delay(3, cap=-5) == 0.0
