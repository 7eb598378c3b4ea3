"""Per-connection quota ledgers (mesh_server.quotas) with a manual clock."""

from __future__ import annotations

import pytest

from mesh_sdk.protocol.errors import RateLimitError, TooLargeError
from mesh_server.quotas import RECORD_OVERHEAD_BYTES, PresenceStateLedger, RecordWriteBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_presence_states_add_up_over_rooms() -> None:
    ledger = PresenceStateLedger(100)
    ledger.stored("c", "a", 60, None)
    ledger.check("c", "a", 100)  # replacing the room's own state
    with pytest.raises(TooLargeError) as caught:
        ledger.check("c", "b", 41)
    assert caught.value.details == {"limit": 100, "quota": "max_presence_state_bytes", "used": 60}
    ledger.check("c", "b", 40)
    ledger.check("other", "b", 100)
    ledger.forget("c", "a")
    ledger.check("c", "b", 100)


def test_presence_state_expiry_and_disconnect_free_the_quota() -> None:
    clock = Clock()
    ledger = PresenceStateLedger(100, clock)
    ledger.stored("c", "a", 100, 500)
    with pytest.raises(TooLargeError):
        ledger.check("c", "b", 1)
    clock.now += 0.5
    ledger.check("c", "b", 100)
    ledger.stored("c", "b", 100, None)
    ledger.drop("c")
    assert ledger.used("c") == 0


def test_presence_without_a_quota_counts_nothing() -> None:
    ledger = PresenceStateLedger(None)
    ledger.stored("c", "a", 10**9, None)
    ledger.check("c", "b", 10**9)
    assert ledger.used("c") == 0


def test_record_write_rate_is_a_token_bucket() -> None:
    clock = Clock()
    budget = RecordWriteBudget(2.0, 3, None, clock)
    for _ in range(3):
        budget.take("c")
    with pytest.raises(RateLimitError) as caught:
        budget.take("c")
    assert caught.value.details == {"retryAfterMs": 500, "quota": "record_write_rate", "limit": 2.0}
    budget.take("other")
    clock.now += 0.5
    budget.take("c")
    with pytest.raises(RateLimitError):
        budget.take("c")


def test_record_bytes_count_every_distinct_record_with_its_overhead() -> None:
    limit = 1000
    budget = RecordWriteBudget(None, 1, limit)
    assert budget.allowance("c", "r1") == limit - 2 - RECORD_OVERHEAD_BYTES
    budget.stored("c", "r1", 500)
    # Rewriting r1 may use r1's own share again; another record only what is left.
    assert budget.allowance("c", "r1") == limit - 2 - RECORD_OVERHEAD_BYTES
    assert budget.allowance("c", "r2") == limit - (500 + 2 + RECORD_OVERHEAD_BYTES) - 2 - 64
    for i in range(20):
        budget.stored("c", f"s{i:02d}", 1)
    # Twenty one-byte records cost 20 × (1 + 3 + 64) bytes, not 20.
    assert budget.allowance("c", "r2") == limit - 566 - 20 * 68 - 66
    assert budget.refused("r2").details == {
        "limit": limit,
        "quota": "max_record_bytes_per_connection",
    }
    budget.drop("c")
    assert budget.allowance("c", "r2") == limit - 66


def test_record_budget_options_are_checked() -> None:
    assert RecordWriteBudget(None, 1, None).allowance("c", "r") is None
    with pytest.raises(ValueError, match="record_write_rate"):
        RecordWriteBudget(0, 1, None)
    with pytest.raises(ValueError, match="record_write_burst"):
        RecordWriteBudget(1.0, 0, None)
