"""Where the SU slots a batch (``Sequencer(slot_inline=)``): a small batch on the event loop, a larger
one (or any, with ``slot_inline=0``) on the slotter thread; the schedule is the same either way."""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyao.data import DataItem, Ed25519Signer, Wallet, ao
from pyao.su import open_store, signs_fast
from pyao.su._core import check_item, next_hash_chain
from pyao.su._sequencer import Sequencer
from tests.unit._executors import CountingExecutor

SU_KEY = Ed25519Signer.from_seed(bytes([21]) * 32)
USER = Ed25519Signer.from_seed(bytes([22]) * 32)


def intake(item: DataItem):
    return check_item(item, item.to_bytes())


@pytest.mark.parametrize("slot_inline", [0, 4])
def test_small_batches_are_slotted_on_the_loop_and_large_ones_on_the_slotter(tmp_path, slot_inline):
    async def scenario() -> tuple[int, list]:
        store = open_store(f"sqlite:///{tmp_path}/su.db")
        slotter, writer = CountingExecutor(), ThreadPoolExecutor(1)
        sequencer = Sequencer(store, SU_KEY, writer=writer, slotter=slotter, slot_inline=slot_inline)
        runner = asyncio.create_task(sequencer.run())
        try:
            process = DataItem.create(b"p", signer=USER, tags=ao.process_tags("m" * 43, SU_KEY.address, []))
            entries = [await sequencer.submit(intake(process))]  # a batch of one
            messages = [
                DataItem.create(f"m{n}", signer=USER, tags=ao.message_tags([]), target=process.id) for n in range(10)
            ]
            entries += await asyncio.gather(*(sequencer.submit(intake(m)) for m in messages))  # one batch of ten
            return slotter.jobs, entries
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            slotter.shutdown()
            writer.shutdown()
            store.close()

    jobs, entries = asyncio.run(scenario())
    assert jobs == (2 if slot_inline == 0 else 1)  # with slot_inline=4, only the batch of ten left the loop
    assert [e.nonce for e in entries] == list(range(11))
    for before, after in itertools.pairwise(entries):
        assert after.hash_chain == next_hash_chain(before.hash_chain, before.assignment_id)


def test_only_signers_that_keep_the_gil_slot_on_the_loop(tmp_path):
    assert signs_fast(SU_KEY)
    assert not signs_fast(Wallet.generate())  # RSA: ~1.5 ms a signature, a thread helps
