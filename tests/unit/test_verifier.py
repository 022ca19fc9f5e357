"""The units' signature checker (``pyao._verify.Verifier``): every item is checked before it is
answered (a small one on the spot, a large one batched on the worker thread), except one whose
check already passed in this process."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from pyao._verify import Verifier
from pyao.data import DataItem, Ed25519Signer
from pyao.errors import SignatureError
from tests.unit._executors import CountingExecutor


class Plain(Ed25519Signer):  # not a self-verifying signer: what it signs is not known valid
    pass


def test_checked_items_skip_the_worker_and_unchecked_ones_are_checked():
    async def main() -> None:
        executor = CountingExecutor()
        verifier = Verifier(executor, inline_bytes=0)  # every unchecked item goes to the worker
        signer = Plain.from_seed(bytes([7]) * 32)
        fresh = [DataItem.from_bytes(DataItem.create(f"m{n}", signer=signer).to_bytes()) for n in range(3)]
        assert not any(item.known_valid for item in fresh)
        await asyncio.gather(*(verifier.verify(item) for item in fresh))
        assert all(item.known_valid for item in fresh) and 1 <= executor.jobs <= 3
        jobs = executor.jobs
        await verifier.verify(fresh[0])  # the SU of `pyao up` taking what the MU checked
        own = DataItem.create(b"signed here", signer=Ed25519Signer.from_seed(bytes([8]) * 32))
        await verifier.verify(own)
        assert executor.jobs == jobs
        forged = dataclasses.replace(fresh[1], data=b"other")  # a copy does not carry the passed check
        with pytest.raises(SignatureError):
            await verifier.verify(forged)
        assert executor.jobs == jobs + 1
        executor.shutdown()

    asyncio.run(main())


def test_small_items_are_checked_on_the_spot_and_large_ones_on_the_worker():
    async def main() -> None:
        executor = CountingExecutor()
        verifier = Verifier(executor, inline_bytes=1024)
        signer = Plain.from_seed(bytes([9]) * 32)
        small, large = (
            DataItem.from_bytes(DataItem.create(data, signer=signer).to_bytes()) for data in (b"s" * 1024, b"l" * 1025)
        )
        await verifier.verify(small)
        assert small.known_valid and executor.jobs == 0
        with pytest.raises(SignatureError):  # a bad signature is refused on the spot too
            await verifier.verify(dataclasses.replace(small, data=b"t" * 1024))
        assert executor.jobs == 0
        await verifier.verify(large)
        assert large.known_valid and executor.jobs == 1
        with pytest.raises(SignatureError):
            await verifier.verify(dataclasses.replace(large, data=b"m" * 1025))
        assert executor.jobs == 2
        executor.shutdown()

    asyncio.run(main())
