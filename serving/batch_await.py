"""A batched call's concurrent future on an event loop: the awaitable a
request task waits on (`batch_outcome`), and the same kind of future for a
version its batcher does not batch (`run_in_future`). The call itself runs
on the loop only when its batcher measured it cheaper than handing it to a
thread (serving.call_costs)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from serving.core.status import unavailable


def batch_outcome(future: concurrent.futures.Future[Any], withdraw: bool = False,
                  ) -> asyncio.Future[Any]:
    """An awaitable for a batch's future. Unlike asyncio.wrap_future,
    cancelling the awaiting task leaves the batch's own future alone (the
    batch still runs, completes it, and releases the handle), unless
    `withdraw`: then a call not yet started is taken back (its future is
    cancelled, which releases the handle at once; a started one runs on)."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[Any] = loop.create_future()

    def settle(done: concurrent.futures.Future[Any]) -> None:
        if waiter.cancelled():
            return
        if done.cancelled():  # withdrawn, or its pool shut down before it ran
            waiter.set_exception(unavailable("The call was cancelled before it ran"))
            return
        error = done.exception()
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(done.result())

    if future.done():  # it ran on the loop: no wake-up from another thread to wait for
        settle(future)
        return waiter
    future.add_done_callback(lambda done: loop.call_soon_threadsafe(settle, done))
    if withdraw:
        waiter.add_done_callback(lambda w: future.cancel() if w.cancelled() else None)
    return waiter


def run_in_future(runner: Any, key: str, tensors: Mapping[str, np.ndarray],
                  output_keys: Sequence[str] | None,
                  executor: concurrent.futures.Executor | None,
                  ) -> concurrent.futures.Future[dict[str, np.ndarray]]:
    """`runner.run` in `executor` (None: the loop's default), its answer in a
    future like a batcher's; cancelled before it starts, it never runs."""
    done: concurrent.futures.Future[dict[str, np.ndarray]] = concurrent.futures.Future()

    def call() -> None:
        if not done.set_running_or_notify_cancel():
            return
        try:
            done.set_result(runner.run(key, tensors, output_keys))
        except BaseException as exc:
            done.set_exception(exc)

    asyncio.get_running_loop().run_in_executor(executor, call)
    return done
