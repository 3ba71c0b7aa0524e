"""Group commit for the webhook route: deliveries that arrive together are stored together.

Every delivery must be durable before GitHub gets its answer, and a durable commit costs the same for one row
as for a hundred. So the route hands its delivery to the one writer thread and waits; the writer takes every
delivery that is waiting (up to `max_batch`), stores them all in one transaction (`JobQueue.accept_deliveries`)
and then answers each of them. While one batch commits, the next one gathers: under load batches grow on their
own, and a lone delivery is written at once, with no added wait. Nothing is answered before its row is committed;
a crash loses only deliveries that had no answer yet, which GitHub delivers again.

The event loop never blocks: it only appends to a list and awaits a future that the writer resolves.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.queue.store import Accepted, Incoming, JobQueue

log = logging.getLogger("honk.intake")

MAX_BATCH = 256  # deliveries per transaction; more wait for the next one


@dataclass
class _Waiting:
    item: Incoming
    future: asyncio.Future[Accepted]
    loop: asyncio.AbstractEventLoop


class DeliveryWriter:
    """One writer thread per process, started on first use, storing deliveries in batches."""

    def __init__(self, queue: JobQueue, *, max_batch: int = MAX_BATCH,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.queue = queue
        self.max_batch = max_batch
        self.on_batch = on_batch  # told each batch's size (metrics, tests)
        self._waiting: list[_Waiting] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def accept(self, item: Incoming) -> Accepted:
        """Store one delivery (with the others waiting now) and answer once it is committed. Raises what the
        database raised when the batch could not be stored."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(item, loop.create_future(), loop)
        with self._ready:
            if self._closed:
                raise RuntimeError("the delivery writer is closed")
            self._waiting.append(waiting)
            self._ready.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_forever, name="honk-delivery-writer", daemon=True)
                self._thread.start()
        return await waiting.future

    def close(self, timeout: float = 5.0) -> None:
        """Store what is waiting, then stop the thread."""
        with self._ready:
            self._closed = True
            self._ready.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _write_forever(self) -> None:
        while True:
            with self._ready:
                while not self._waiting and not self._closed:
                    self._ready.wait()
                if not self._waiting:
                    return  # closed, and nothing left to store
                batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
            self._write(batch)

    def _write(self, batch: list[_Waiting]) -> None:
        try:
            answers: list[Accepted | BaseException] = list(self.queue.accept_deliveries([w.item for w in batch]))
        except Exception as exc:
            if len(batch) == 1:
                answers = [exc]
            else:
                # One bad delivery must not cost the others their answer: store them one by one.
                log.warning("a batch of %d deliveries could not be stored together (%s); storing them one by one",
                            len(batch), exc)
                answers = [self._write_one(w.item) for w in batch]
        if self.on_batch is not None:
            self.on_batch(len(batch))
        for waiting, answer in zip(batch, answers, strict=True):
            waiting.loop.call_soon_threadsafe(_settle, waiting.future, answer)

    def _write_one(self, item: Incoming) -> Accepted | BaseException:
        try:
            return self.queue.accept_deliveries([item])[0]
        except Exception as exc:
            return exc


def _settle(future: asyncio.Future[Accepted], answer: Accepted | BaseException) -> None:
    if future.done():  # the request was cancelled (client gone) while its delivery was being stored
        return
    if isinstance(answer, BaseException):
        future.set_exception(answer)
    else:
        future.set_result(answer)
