"""A thread pool that counts what is submitted to it: tests that check which work hops to a thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.jobs = 0

    def submit(self, fn, /, *args, **kwargs):
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)
