"""Group commit (app/intake/writer.py, `JobQueue.accept_deliveries`): deliveries that arrive together are
stored in one transaction, each answered only once its row is committed, and one bad delivery never costs the
others their answer. On SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from app.intake.writer import DeliveryWriter
from app.queue.db import Database
from app.queue.models import Delivery, Job, JobEvent
from app.queue.requests import JobKind, JobRequest
from app.queue.store import Accepted, Incoming, JobBackoff, JobQueue


def labeled(delivery: str, number: int = 7) -> Incoming:
    request = JobRequest(kind=JobKind.RESOLVE_ISSUE, repo="acme/widgets", number=number, requester="alice",
                         installation_id=42, trigger={"type": "label", "delivery_id": delivery})
    return Incoming(delivery, "issues", "labeled", request)


def ping(delivery: str) -> Incoming:
    return Incoming(delivery, "ping", None, None, "not an event Honk acts on")


@pytest.fixture
def queue(db: Database) -> JobQueue:
    return JobQueue(db, JobBackoff(max_attempts=3))


class HeldFirst(JobQueue):
    """A queue whose first batch waits for `release`, so that more deliveries gather behind it."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, JobBackoff(max_attempts=3))
        self.release, self.started = threading.Event(), threading.Event()

    def accept_deliveries(self, batch: list[Incoming]) -> list[Accepted]:
        if not self.started.is_set():
            self.started.set()
            self.release.wait(10)
        return super().accept_deliveries(batch)


def count(db: Database, what: Any) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(what)) or 0


def test_a_batch_answers_each_delivery_as_if_it_came_alone(queue: JobQueue, db: Database) -> None:
    assert queue.accept_delivery("seen-before", "ping", None, None, "ignored") == Accepted(duplicate=False)
    answers = queue.accept_deliveries([labeled("a"), ping("b"), labeled("a"), ping("seen-before"), labeled("c", 8)])
    assert [a.duplicate for a in answers] == [False, False, True, True, False]
    assert answers[0].job_id is not None and answers[4].job_id is not None and answers[0].job_id != answers[4].job_id
    assert answers[1] == Accepted(duplicate=False) and answers[2].job_id is None
    with db.session() as session:
        stored = {d.id: (d.outcome, d.job_id) for d in session.scalars(select(Delivery))}
        jobs = {j.id: j for j in session.scalars(select(Job))}
        queued_events = session.scalars(select(JobEvent.job_id).where(JobEvent.kind == "job.queued")).all()
    assert stored == {"seen-before": ("ignored", None), "a": ("queued", answers[0].job_id),
                      "b": ("ignored", None), "c": ("queued", answers[4].job_id)}
    assert {j.number for j in jobs.values()} == {7, 8} and sorted(queued_events) == sorted(jobs)
    assert jobs[answers[0].job_id].delivery_id == "a"  # type: ignore[index]


def test_waiting_deliveries_are_stored_together_and_answered_after_their_commit(queue: JobQueue,
                                                                               db: Database) -> None:
    """The first delivery's commit is held up; twenty more arrive meanwhile and share the next transaction.
    None of them is answered before its row is in the database."""
    held = HeldFirst(db)
    release, started = held.release, held.started
    batches: list[int] = []
    writer = DeliveryWriter(held, on_batch=batches.append)

    async def scenario() -> list[Accepted]:
        first = asyncio.ensure_future(writer.accept(labeled("first")))
        await asyncio.to_thread(started.wait, 10)
        rest = [asyncio.ensure_future(writer.accept(labeled(f"d{n}", n))) for n in range(20)]
        await asyncio.sleep(0.05)
        assert not any(f.done() for f in [first, *rest])  # nothing answered before its commit
        assert count(db, Delivery) == 0
        release.set()
        return await asyncio.gather(first, *rest)

    answers = asyncio.run(scenario())
    writer.close()
    assert batches == [1, 20]
    assert all(a.job_id is not None for a in answers) and len({a.job_id for a in answers}) == 21
    assert count(db, Delivery) == 21 and count(db, Job) == 21


def test_one_bad_delivery_does_not_cost_the_others_their_answer(queue: JobQueue, db: Database) -> None:
    """A value the database cannot hold (a 20-digit issue number) fails its own delivery only."""
    held = HeldFirst(db)
    release, started = held.release, held.started
    writer = DeliveryWriter(held)

    async def scenario() -> list[Accepted | BaseException]:
        first = asyncio.ensure_future(writer.accept(ping("first")))
        await asyncio.to_thread(started.wait, 10)
        batch = [asyncio.ensure_future(writer.accept(item)) for item in
                 (labeled("good-1"), labeled("bad", 10**20), ping("good-2"))]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(first, *batch, return_exceptions=True)

    first, good_1, bad, good_2 = asyncio.run(scenario())
    writer.close()
    assert isinstance(bad, Exception)
    assert isinstance(good_1, Accepted) and good_1.job_id is not None
    assert good_2 == Accepted(duplicate=False) and first == Accepted(duplicate=False)
    with db.session() as session:
        assert set(session.scalars(select(Delivery.id))) == {"first", "good-1", "good-2"}


def test_a_closed_writer_stores_what_was_waiting_then_refuses(queue: JobQueue, db: Database) -> None:
    writer = DeliveryWriter(queue)

    async def scenario() -> None:
        assert (await writer.accept(ping("before"))).duplicate is False
        writer.close()
        with pytest.raises(RuntimeError, match="closed"):
            await writer.accept(ping("after"))

    asyncio.run(scenario())
    with db.session() as session:
        assert set(session.scalars(select(Delivery.id))) == {"before"}
