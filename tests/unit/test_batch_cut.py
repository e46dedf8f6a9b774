"""One group commit's share of the waiting writes (the writer thread and the loop writer cut
their batches by the same rule)."""

from __future__ import annotations

from service.store import MAX_BATCH, MAX_BATCH_BYTES, batch_cut


def test_small_writes_go_together_up_to_the_command_limit() -> None:
    assert batch_cut([100] * 7) == 7
    assert batch_cut([100] * (MAX_BATCH + 20)) == MAX_BATCH
    assert batch_cut([]) == 0


def test_the_write_that_reaches_the_byte_limit_is_the_last_one_taken() -> None:
    half = MAX_BATCH_BYTES // 2
    assert batch_cut([half, half - 1, 10, 10]) == 3
    assert batch_cut([half, half, 10]) == 2
    assert batch_cut([MAX_BATCH_BYTES * 3, 10]) == 1  # never none: a big write goes alone
