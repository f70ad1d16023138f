from memory.ledger import ClaimOutcome, InMemoryTurnLedger

CLAIM = {"lease": 10.0, "gap_timeout": 5.0}


async def test_turns_run_in_order_and_once() -> None:
    ledger = InMemoryTurnLedger()
    assert await ledger.claim("s", 1, b"1", worker="a", now=0.0, **CLAIM) is ClaimOutcome.CLAIMED
    # Turn 2 waits while turn 1 is unfinished, whoever asks.
    assert await ledger.claim("s", 2, b"2", worker="b", now=0.1, **CLAIM) is ClaimOutcome.WAIT
    # A redelivery of turn 1 to another worker waits while the owner's lease lives.
    assert await ledger.claim("s", 1, b"1", worker="b", now=0.2, **CLAIM) is ClaimOutcome.BUSY
    # The owner renews its lease by claiming again.
    assert await ledger.claim("s", 1, b"1", worker="a", now=9.0, **CLAIM) is ClaimOutcome.CLAIMED
    assert await ledger.claim("s", 1, b"1", worker="b", now=15.0, **CLAIM) is ClaimOutcome.BUSY
    await ledger.complete("s", 1, worker="a")
    assert await ledger.claim("s", 2, b"2", worker="b", now=0.3, **CLAIM) is ClaimOutcome.CLAIMED
    await ledger.complete("s", 2, worker="b")
    assert await ledger.claim("s", 1, b"1", worker="a", now=0.4, **CLAIM) is ClaimOutcome.DONE
    assert await ledger.claim("s", 2, b"2", worker="a", now=0.4, **CLAIM) is ClaimOutcome.DONE


async def test_a_missing_predecessor_waits_until_the_gap_timeout() -> None:
    ledger = InMemoryTurnLedger()
    assert await ledger.claim("s", 2, b"2", worker="a", now=0.0, **CLAIM) is ClaimOutcome.WAIT
    assert await ledger.claim("s", 2, b"2", worker="a", now=4.9, **CLAIM) is ClaimOutcome.WAIT
    assert await ledger.claim("s", 2, b"2", worker="a", now=5.0, **CLAIM) is ClaimOutcome.CLAIMED


async def test_an_expired_lease_is_reclaimable_and_claimable() -> None:
    ledger = InMemoryTurnLedger()
    await ledger.claim("s", 1, b"payload", worker="dead", now=0.0, **CLAIM)
    assert await ledger.reclaimable(now=5.0, limit=10) == []
    assert await ledger.reclaimable(now=10.0, limit=10) == [b"payload"]
    assert await ledger.claim("s", 1, b"payload", worker="b", now=10.0, **CLAIM) is (
        ClaimOutcome.CLAIMED
    )
    # The dead worker's late completion does not count; the new owner's does.
    await ledger.complete("s", 1, worker="dead")
    assert await ledger.reclaimable(now=30.0, limit=10) == [b"payload"]
    await ledger.complete("s", 1, worker="b")
    assert await ledger.reclaimable(now=30.0, limit=10) == []


async def test_sessions_are_independent() -> None:
    ledger = InMemoryTurnLedger()
    assert await ledger.claim("a", 1, b"", worker="w", now=0.0, **CLAIM) is ClaimOutcome.CLAIMED
    assert await ledger.claim("b", 1, b"", worker="w", now=0.0, **CLAIM) is ClaimOutcome.CLAIMED
