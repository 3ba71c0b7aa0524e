"""`GET /metrics`: Prometheus text format (README, "Routes").

Two kinds of figures, because `honk web` may serve /metrics while `honk worker`s run on other hosts:

- Job-level figures come from the database at scrape time (`DatabaseCollector`), so any web process shows the
  whole fleet's jobs, queue, run times, tokens and cost, whichever process ran them. Every web process reports
  the same values for these: aggregate them across instances with max(), not sum().
- Request-level figures are counters in this process, fed from where the requests happen: the webhook route
  (deliveries, acknowledgement latency), `JobAudit.record` (sandbox commands, Anthropic errors, model usage as
  it arrives) and a response hook on the githubkit clients (GitHub errors). They are cheap (a dict lookup and
  an add) so the webhook hot path does not notice them.

Each app gets its own `CollectorRegistry` (never the global default), so tests can build several apps in one
process. The figures fed from workers and GitHub clients have no app at hand, so they are process-wide objects
(`app.telemetry.PROCESS`) that every app's registry includes.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, Engine, create_engine, event, extract, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from starlette.responses import Response

from app.queue.models import Job, JobEvent, JobStatus
from app.telemetry import PROCESS, TOKEN_TYPES

if TYPE_CHECKING:
    from app.queue.db import Database

R = TypeVar("R", bound=Response)

log = logging.getLogger("honk.metrics")

# The `_created` series double every counter's output and say nothing a restart does not; Honk owns the process.
disable_created_metrics()

# The classic text format: every Prometheus version reads it (3.x refuses unknown types), and Honk's metric
# names need none of the newer format's escaping.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Acknowledgement latency: GitHub gives up at 10 s, the target is p99 < 25 ms; resolve both ends.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# GitHub event names are lower-case words joined by underscores; anything else is not worth a label value.
_EVENT_NAME = re.compile(r"[a-z_]{1,50}")
# Events are append-only, but on PostgreSQL a lower id may commit after a higher one: each scrape re-reads
# this many ids below the highest it has seen, and counts each event once by remembering their ids.
RESCAN_IDS = 2000


# One app's metrics: its webhook figures, the database collector, and the process-wide figures.

class Metrics:
    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter("honk_webhook_deliveries", "webhook deliveries answered, by event (\"unverified\" "
                                  "before the signature is checked), outcome (queued, ignored, duplicate, "
                                  "rejected, error) and HTTP status", ["event", "outcome", "status"],
                                  registry=self.registry)
        self.ack_seconds = Histogram("honk_webhook_ack_seconds", "time from the webhook route starting to its "
                                     "answer", buckets=ACK_BUCKETS, registry=self.registry)
        for collector in PROCESS.collectors:
            self.registry.register(collector)
        self.database = DatabaseCollector(db)
        self.registry.register(self.database)

    def delivery(self, event: str | None, outcome: str, status: int, seconds: float) -> None:
        label = event if event and _EVENT_NAME.fullmatch(event) else ("unverified" if event is None else "other")
        self.deliveries.labels(label, outcome, str(status)).inc()
        self.ack_seconds.observe(seconds)

    def render(self) -> bytes:
        """The text exposition. Blocking (the database collector queries): call it off the event loop."""
        return generate_latest(self.registry)


# Job-level figures from the database, computed at scrape time.

class DatabaseCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db
        self._engine = _reader(db)
        self._lock = threading.Lock()  # scrapes may overlap; the token totals are updated in place
        self._high = 0  # highest model.response event id counted
        self._floor = 0  # events up to this id were summed in bulk by the first scrape
        self._counted: set[int] = set()  # counted ids within RESCAN_IDS of _high
        self._tokens: dict[tuple[str, str], int] = {}
        self._cost: dict[str, float] = {}
        self._responses: dict[str, int] = {}
        self._job_models: OrderedDict[int, str] = OrderedDict()

    def describe(self) -> Iterable[Metric]:
        # Names only, for the registry's duplicate check: describing must not query the database.
        return [GaugeMetricFamily("honk_database_up", ""), GaugeMetricFamily("honk_jobs", ""),
                GaugeMetricFamily("honk_queue_jobs", ""), GaugeMetricFamily("honk_queue_oldest_age_seconds", ""),
                GaugeMetricFamily("honk_queue_oldest_ready_seconds", ""),
                SummaryMetricFamily("honk_job_queue_wait_seconds", ""),
                SummaryMetricFamily("honk_job_duration_seconds", ""),
                CounterMetricFamily("honk_model_responses", ""), CounterMetricFamily("honk_model_tokens", ""),
                CounterMetricFamily("honk_model_cost_usd", ""),
                GaugeMetricFamily("honk_metrics_database_seconds", "")]

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        try:
            with self._lock:
                families = self._collect()
        except Exception as exc:  # the scrape still answers, saying the database is not answering
            log.warning("metrics: cannot read the database: %s", exc)
            yield GaugeMetricFamily("honk_database_up", "1 when the database answered this scrape's queries", 0)
            return
        yield GaugeMetricFamily("honk_database_up", "1 when the database answered this scrape's queries", 1)
        yield from families
        yield GaugeMetricFamily("honk_metrics_database_seconds", "time this scrape spent reading the database",
                                time.perf_counter() - started)

    def _collect(self) -> list[Metric]:
        with Session(self._engine) as session, session.begin():
            now = self.db.now(session)
            jobs = GaugeMetricFamily("honk_jobs", "jobs in the database, by kind and status", labels=["kind", "status"])
            counts = {(kind, status): count for kind, status, count in session.execute(
                select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status))}
            # Every status of every kind seen, zeros included, so that alerts on e.g. failed jobs have a series.
            for kind in sorted({kind for kind, _ in counts}):
                for status in JobStatus:
                    jobs.add_metric([kind, status.value], counts.get((kind, status.value), 0))

            queued = Job.status == JobStatus.QUEUED
            ready, delayed = (session.scalar(select(func.count()).where(queued, cond)) or 0
                              for cond in (Job.run_after <= now, Job.run_after > now))
            running = session.scalar(select(func.count()).where(Job.status == JobStatus.RUNNING)) or 0
            depth = GaugeMetricFamily("honk_queue_jobs", "jobs waiting or running: ready (may run now), delayed "
                                      "(retry backoff), running", labels=["state"])
            for state, count in (("ready", ready), ("delayed", delayed), ("running", running)):
                depth.add_metric([state], count)

            oldest = session.scalar(select(func.min(Job.created_at)).where(queued))
            oldest_ready = session.scalar(select(func.min(Job.run_after)).where(queued, Job.run_after <= now))
            age = GaugeMetricFamily("honk_queue_oldest_age_seconds", "age of the oldest queued job (0 when none)",
                                    _seconds_since(now, oldest))
            waiting = GaugeMetricFamily("honk_queue_oldest_ready_seconds", "how long the longest-waiting runnable "
                                        "job has been ready to run without a worker taking it (0 when none)",
                                        _seconds_since(now, oldest_ready))

            wait = SummaryMetricFamily("honk_job_queue_wait_seconds", "time from a job's creation to its first "
                                       "start, over every job that started", labels=["kind"])
            gap = self._seconds(Job.started_at, Job.created_at)
            for kind, count, total in session.execute(
                    select(Job.kind, func.count(), func.sum(gap)).where(Job.started_at.is_not(None))
                    .group_by(Job.kind)):
                wait.add_metric([kind], count, float(total or 0.0))

            duration = SummaryMetricFamily("honk_job_duration_seconds", "time from a job's first start to its "
                                           "end (retries included), over finished jobs", labels=["kind", "status"])
            run = self._seconds(Job.finished_at, Job.started_at)
            for kind, status, count, total in session.execute(
                    select(Job.kind, Job.status, func.count(), func.sum(run))
                    .where(Job.finished_at.is_not(None), Job.started_at.is_not(None))
                    .group_by(Job.kind, Job.status)):
                duration.add_metric([kind, status], count, float(total or 0.0))

            self._count_model_responses(session)
        responses = CounterMetricFamily("honk_model_responses", "model responses recorded in every job's audit "
                                        "trail, by model", labels=["model"])
        for model, count in sorted(self._responses.items()):
            responses.add_metric([model], count)
        tokens = CounterMetricFamily("honk_model_tokens", "tokens used by every job's model responses, by model "
                                     "and type (input, output, cache_read, cache_write)", labels=["model", "type"])
        for (model, kind), count in sorted(self._tokens.items()):
            tokens.add_metric([model, kind], count)
        cost = CounterMetricFamily("honk_model_cost_usd", "cost of every job's model responses, by model",
                                   labels=["model"])
        for model, usd in sorted(self._cost.items()):
            cost.add_metric([model], round(usd, 6))
        return [jobs, depth, age, waiting, wait, duration, responses, tokens, cost]

    def _seconds(self, end: Any, start: Any) -> ColumnElement[Any]:
        if self.db.is_sqlite:
            return (func.julianday(end) - func.julianday(start)) * 86400.0
        return extract("epoch", end - start)

    def _count_model_responses(self, session: Session) -> None:
        """Add the model.response events not counted yet. The events table holds every transcript, so it is
        read incrementally: the first scrape sums all but the newest events in SQL (per job, to learn each
        job's model), later ones read only the events within RESCAN_IDS of the highest counted."""
        if self._high == 0:
            self._count_in_bulk(session)
        rows = session.execute(
            select(JobEvent.id, JobEvent.job_id, *_usage_columns(), JobEvent.data["cost_usd"].as_float())
            .where(JobEvent.kind == "model.response", JobEvent.id > max(self._floor, self._high - RESCAN_IDS))
            .order_by(JobEvent.id)).all()
        fresh = [row for row in rows if row[0] not in self._counted]
        self._learn_models(session, {row[1] for row in fresh})
        for event_id, job_id, *counts, cost in fresh:
            self._add(job_id, 1, counts, cost)
            self._counted.add(event_id)
            self._high = max(self._high, event_id)
        low = self._high - RESCAN_IDS
        self._counted = {i for i in self._counted if i > low}
        while len(self._job_models) > 4096:
            self._job_models.popitem(last=False)

    def _count_in_bulk(self, session: Session) -> None:
        top = session.scalar(select(func.max(JobEvent.id)).where(JobEvent.kind == "model.response"))
        if top is None or top <= RESCAN_IDS:
            return  # few enough to read one by one
        floor = top - RESCAN_IDS
        sums = session.execute(
            select(JobEvent.job_id, func.count(), *(func.sum(c) for c in _usage_columns()),
                   func.sum(JobEvent.data["cost_usd"].as_float()))
            .where(JobEvent.kind == "model.response", JobEvent.id <= floor).group_by(JobEvent.job_id)).all()
        self._learn_models(session, {row[0] for row in sums})
        for job_id, responses, *counts, cost in sums:
            self._add(job_id, responses, counts, cost)
        self._floor = self._high = floor  # events up to here are never read again

    def _learn_models(self, session: Session, job_ids: set[int]) -> None:
        """Each job's model, from its agent.start event (model.response does not repeat it)."""
        unknown = sorted(job_ids - self._job_models.keys())
        for i in range(0, len(unknown), 500):
            for job_id, model in session.execute(
                    select(JobEvent.job_id, JobEvent.data["model"].as_string())
                    .where(JobEvent.kind == "agent.start", JobEvent.job_id.in_(unknown[i:i + 500]))
                    .order_by(JobEvent.id)):
                self._job_models[job_id] = model or "unknown"

    def _add(self, job_id: int, responses: int, counts: list[Any], cost: Any) -> None:
        model = self._job_models.get(job_id, "unknown")
        if job_id in self._job_models:
            self._job_models.move_to_end(job_id)  # recently active jobs stay in the bounded cache
        self._responses[model] = self._responses.get(model, 0) + int(responses)
        for kind, count in zip(TOKEN_TYPES.values(), counts, strict=True):
            self._tokens[(model, kind)] = self._tokens.get((model, kind), 0) + int(count or 0)
        self._cost[model] = self._cost.get(model, 0.0) + float(cost or 0.0)


def _reader(db: Database) -> Engine:
    """The engine scrapes read through. Honk's SQLite engine opens every transaction with BEGIN IMMEDIATE (the
    write lock), which would make webhook writes wait for each scrape; a query-only connection of its own reads
    beside them (WAL) instead. One connection per scrape (NullPool), so an app that goes away leaves none open."""
    database = db.url.database
    if not db.is_sqlite or database in (None, "", ":memory:"):
        return db.engine
    engine = create_engine(db.url, poolclass=NullPool, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA query_only=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def _usage_columns() -> list[ColumnElement[Any]]:
    usage = JobEvent.data["usage"]
    return [usage[key].as_integer() for key in TOKEN_TYPES]


def _seconds_since(now: datetime, then: datetime | None) -> float:
    return max((now - then).total_seconds(), 0.0) if then is not None else 0.0
