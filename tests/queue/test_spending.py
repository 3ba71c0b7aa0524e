"""The spending ledger (app/queue/spending.py), on SQLite and on the real PostgreSQL: calls recorded per scope and
month, caps checked against what is spent and reserved, and the promise of CONTRACT section 9 under concurrency:
workers sharing one cap, each with its own engine, never jointly overshoot it by more than one call each (and by
less than one call in all when the reservations are large enough)."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from app.policy import Policy, Scope
from app.queue.db import Database
from app.queue.spending import Call, SpendCall, SpendCounter, Spender, SpendLedger, SpendReservation, overview

WIDGETS = Spender(42, "acme/widgets", "alice")
REPO_CAP = Scope("repository", "acme/widgets")


def call(cost: float, model: str = "claude-opus-5-5", kind: str = "agent", job_id: int | None = 1) -> Call:
    return Call(model=model, provider="anthropic", kind=kind, cost_usd=cost, job_id=job_id,
                usage={"input_tokens": 1000, "output_tokens": 100, "cache_read_input_tokens": 10})


def test_calls_count_against_every_scope_and_the_cap_refuses_once_reached(db: Database) -> None:
    ledger = SpendLedger(db)
    caps = {REPO_CAP: 1.0, Scope("requester", "alice"): 10.0}
    first = ledger.admit(WIDGETS, caps, 0.5, job_id=1)
    assert first.refusal is None and first.reservation is not None
    # The reservation counts: a second call may go while spent + reserved stays under the cap.
    second = ledger.admit(Spender(42, "acme/widgets", "bob"), caps, 0.5, job_id=2)
    assert second.refusal is None
    third = ledger.admit(Spender(42, "acme/widgets", "carol"), caps, 0.4, job_id=3)
    assert third.refusal is not None and third.refusal.scope == REPO_CAP
    assert (third.refusal.spent, third.refusal.reserved) == (0.0, pytest.approx(1.0))
    assert "has spent $0.00 of its $1 monthly cap, and model calls under way are expected to use the remaining $1.00" \
        in third.refusal.words
    ledger.record(WIDGETS, call(0.7), reservation=first.reservation)
    ledger.release(second.reservation)  # its call failed
    assert ledger.reached(WIDGETS, caps) is None  # $0.70 of $1
    ledger.record(WIDGETS, call(0.35, kind="judge"))
    reached = ledger.reached(WIDGETS, caps)
    assert reached is not None and reached.scope == REPO_CAP and reached.spent == pytest.approx(1.05)
    month = ledger.month()
    assert reached.words.startswith("the repository acme/widgets has spent $1.05 of its $1 monthly cap; it resets on ")
    assert month in reached.words or reached.words.endswith("-01 (UTC)")
    refused = ledger.admit(WIDGETS, caps, 0.5)
    assert refused.refusal is not None and refused.reservation is None
    # Another repository of the same organization is under no cap of these.
    assert ledger.admit(Spender(42, "acme/gadgets", "alice"), {Scope("repository", "acme/gadgets"): 1.0}, 0.5
                        ).refusal is None
    # Counters are kept for every scope (a cap added later applies to what was already spent), case-insensitively.
    with db.session() as session:
        counters = {(c.scope, c.key): (round(c.spent_usd, 6), c.calls) for c in session.scalars(select(SpendCounter))}
        rows = session.scalars(select(SpendCall).order_by(SpendCall.id)).all()
    assert counters == {("installation", "42"): (1.05, 2), ("organization", "acme"): (1.05, 2),
                        ("repository", "acme/widgets"): (1.05, 2), ("requester", "alice"): (1.05, 2),
                        ("repository", "acme/gadgets"): (0.0, 0), ("requester", "bob"): (0.0, 0),
                        ("requester", "carol"): (0.0, 0)}
    assert [(r.kind, r.model, r.provider, r.job_id, r.input_tokens, r.output_tokens, r.month) for r in rows] == [
        ("agent", "claude-opus-5-5", "anthropic", 1, 1000, 100, month),
        ("judge", "claude-opus-5-5", "anthropic", 1, 1000, 100, month)]
    assert ledger.reached(Spender(42, "ACME/Widgets", "Alice"), {Scope("repository", "ACME/Widgets"): 1.0})


def test_a_reservation_whose_worker_died_stops_counting_when_it_expires(db: Database) -> None:
    ledger = SpendLedger(db, reservation_seconds=0.5)
    caps = {REPO_CAP: 1.0}
    assert ledger.admit(WIDGETS, caps, 1.0).refusal is None  # and its worker is never heard of again
    assert ledger.admit(WIDGETS, caps, 0.1).refusal is not None
    time.sleep(0.7)
    admitted = ledger.admit(WIDGETS, caps, 0.1)
    assert admitted.refusal is None
    ledger.record(WIDGETS, call(0.1), reservation=admitted.reservation)
    time.sleep(0.6)
    ledger.record(WIDGETS, call(0.1))  # and clears the reservations long expired
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(SpendReservation)) == 0


def test_an_unsettled_reservation_of_the_same_gate_is_dropped_by_its_next_admission(db: Database) -> None:
    ledger = SpendLedger(db)
    caps = {REPO_CAP: 1.0}
    failed = ledger.admit(WIDGETS, caps, 0.6)  # the call failed, nothing was recorded
    again = ledger.admit(WIDGETS, caps, 0.6, release=failed.reservation)
    assert again.refusal is None
    with db.session() as session:
        assert session.scalars(select(SpendReservation.id)).all() == [again.reservation]


def test_reports_by_every_dimension_with_days_months_and_caps(db: Database) -> None:
    ledger = SpendLedger(db)
    ledger.record(WIDGETS, call(1.25))
    ledger.record(WIDGETS, call(0.5, model="claude-sonnet-4-5", kind="judge"))
    ledger.record(Spender(7, "globex/app", "bob"), call(3.0))
    ledger.record(Spender(7, "globex/app", None), call(0.25, job_id=None))
    policy = Policy.model_validate({"caps": {"repository": {"acme/widgets": 2}, "default": {"organization": 3}}})
    month = ledger.month()

    repos = ledger.report(by="repo", policy=policy)
    assert repos.month == month and repos.total_usd == pytest.approx(5.0) and repos.calls == 4
    assert [(line.key, line.calls, round(line.cost_usd, 2), line.cap) for line in repos.lines] == [
        ("globex/app", 2, 3.25, None), ("acme/widgets", 2, 1.75, 2.0)]
    assert repos.lines[1].used == pytest.approx(0.875)
    assert repos.lines[0].tokens == {"input_tokens": 2000, "output_tokens": 200, "cache_creation_input_tokens": 0,
                                     "cache_read_input_tokens": 20}
    orgs = ledger.report(by="org", policy=policy)
    assert [(line.key, line.cap) for line in orgs.lines] == [("globex", 3.0), ("acme", 3.0)]
    assert [line.key for line in ledger.report(by="requester").lines] == ["bob", "alice", "—"]
    assert [line.key for line in ledger.report(by="model").lines] == ["claude-opus-5-5", "claude-sonnet-4-5"]
    assert [line.key for line in ledger.report(by="installation").lines] == ["7", "42"]
    assert [(line.key, line.calls) for line in ledger.report(by="month").lines] == [(month, 4)]
    # Every day of the month, today's with the day's spending.
    days = dict(repos.days)
    assert len(days) >= 28 and sum(days.values()) == pytest.approx(5.0)
    assert repos.months == [(month, pytest.approx(5.0), 4)]
    assert ledger.report("1999-01").lines == [] and ledger.report("1999-01").total_usd == 0

    text = repos.text()
    assert f"Spending in {month} (UTC) by repository" in text and "acme/widgets" in text and "88%" in text
    assert text.splitlines()[-1].split() == ["total", "4", "4,440", "$5.00"]
    body = repos.to_dict()
    assert body["rows"][1]["cap"] == 2.0 and body["total_usd"] == 5.0 and body["dimension"] == "repository"
    summary, as_json = overview(ledger, None, None, policy)
    assert summary.startswith(f"Spending in {month} (UTC): $5.00 in 4 model calls")
    assert "by organization" in summary and "by model" in summary and "by requester" in summary
    assert set(as_json["by"]) == {"org", "repo", "requester", "model"} and as_json["total_usd"] == 5.0


# Concurrency: the promise that matters

@dataclass
class Spree:
    total: float  # what the ledger holds
    counter: float  # what the cap's counter holds
    calls: int
    largest: float  # the dearest call


def spree(url: str, *, workers: int, cap: float, largest: float, estimate: float, seed: int) -> Spree:
    """`workers` threads, each with its own engine and its own requester, making calls of up to `largest` dollars
    against one repository's cap until it refuses them; each waits a little while "the model" answers."""
    start = threading.Barrier(workers)
    errors: list[BaseException] = []
    dearest = [0.0]

    def work(number: int) -> None:
        db = Database(url)
        ledger = SpendLedger(db)
        spender = Spender(42, "acme/widgets", f"worker{number}")
        rng = random.Random(seed * 100 + number)
        try:
            start.wait()
            while True:
                admission = ledger.admit(spender, {REPO_CAP: cap}, estimate, job_id=number)
                if admission.refusal is not None:
                    return
                time.sleep(rng.uniform(0, 0.004))  # the model call
                cost = largest * rng.uniform(0.3, 1.0)
                dearest[0] = max(dearest[0], cost)
                ledger.record(spender, call(cost, job_id=number), reservation=admission.reservation)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    db = Database(url)
    with db.session() as session:
        total = session.scalar(select(func.sum(SpendCall.cost_usd))) or 0.0
        calls = session.scalar(select(func.count()).select_from(SpendCall)) or 0
        counter = session.scalar(select(SpendCounter.spent_usd).where(SpendCounter.scope == "repository")) or 0.0
    db.dispose()
    return Spree(total, counter, calls, dearest[0])


@pytest.mark.parametrize("estimate", ["exact", "too_small"])
@pytest.mark.parametrize("cap", [0.35, 3.0], ids=["burst", "long"])
def test_concurrent_workers_never_jointly_overshoot_a_cap(db: Database, database_url: str, estimate: str,
                                                          cap: float) -> None:
    """`burst`: sixteen workers start at once against a cap of a few calls, so that their first admissions collide
    (without the counter row's lock, PostgreSQL lets most of them through: about $0.99 spent against $0.35).
    `long`: they spend side by side until the cap stops them."""
    workers, largest = 16, 0.1
    result = spree(database_url, workers=workers, cap=cap, largest=largest,
                   estimate=largest if estimate == "exact" else 0.0001, seed=len(estimate))
    assert result.total >= cap  # they did spend up to the cap
    assert result.counter == pytest.approx(result.total)  # the counter is the ledger's sum
    # However wrong the estimates: no call is admitted once the recorded spending reaches the cap, and each worker
    # has one call in flight at most.
    assert result.total < cap + workers * result.largest, (result, cap)
    if estimate == "exact":
        # Reservations at least as large as the calls: one call's overshoot in all, not one per worker.
        assert result.total < cap + result.largest, (result, cap)
