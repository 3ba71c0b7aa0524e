"""The tamper-evident audit trail: each job's events form a SHA-256 hash chain.

Schema. Every `job_events` row stores three hex SHA-256 values, and `jobs.chain_head` the newest link:

    digest    = sha256(content)                               the event's own content
    prev_hash = the `hash` of the job's event before it       "0" * 64 for the job's first event
    hash      = sha256(f"{prev_hash}:{job_id}:{digest}")      binds the content to its place in its job's chain

A job's chain is its events ordered by `id`. `jobs.chain_head` holds the chain's last `hash`; it is NULL while the
chain holds only its first event (the `job.queued` that intake writes in bulk: that way intake never writes a job
row twice). Deleting, reordering or editing any event breaks a link; deleting events at the end breaks the head.

Canonical content. `content` is the UTF-8 of

    {"at": "2025-01-31T12:00:00.123456Z", "data": <data>, "kind": <kind>}

built as Python's `json.dumps({"at": at, "data": data, "kind": kind})` with its defaults: separators ", " and
": ", non-ASCII escaped as \\uXXXX, and `data`'s keys in the order they were written (the stored order; JSON
objects read back from SQLite's text and PostgreSQL's `json` type, which keeps its input verbatim, keep it). `at`
is the event's UTC time with microseconds and a "Z". The `data` part is therefore exactly the text the database
stores in `job_events.data` (SQLAlchemy's JSON type writes `json.dumps(data)` on both backends; a test holds it to
that), so verifying hashes the stored text without parsing it. Should the stored text ever differ (a copy made by
a tool that re-serialises JSON), verification parses it and hashes `json.dumps` of the value instead, which
still matches unless something changed. Key order is part of the content (keys are not sorted): sorting would
mean parsing and re-serialising every event to verify it, about doubling `honk audit verify`'s time, and storing
sorted data would reorder what the job pages show. A move to JSONB (which reorders keys) would need the chains
re-anchored.

Appending. Every event added through the ORM (`session.add(JobEvent(...))`, which is how `JobQueue` records
lifecycle events and `append_event` the worker's and the agent's) is linked by a `before_insert` listener: in the
inserting transaction it locks the job's row (`SELECT ... FOR NO KEY UPDATE` on PostgreSQL; on SQLite every Honk
transaction is `BEGIN IMMEDIATE`, so writers are serialised already), reads the head, computes the link and moves
the head. Two processes appending to one job therefore queue on the row lock and can never both link to the same
predecessor; and since the event's `id` is drawn after the lock is taken, `id` order is chain order. Intake's bulk
`job.queued` inserts (Core statements) compute their first links in Python with `genesis`.

Verifying (`verify`, `honk audit verify`). One pass over all events in `id` order, keyset-paged, in one read-only
snapshot (so appends made meanwhile cause no false breaks), keeping a small state per job: recompute each digest
from the stored text, check the prev_hash against the hash before, the hash against its inputs, and at the end
each job's head. Each broken chain is reported at its first broken link (job and event id, and why).

Retention (`purge`, HONK_AUDIT_RETENTION_DAYS). For jobs that finished more than N days ago, each bulky event
(`data` over 1 KB) has its large top-level fields (over 512 bytes, e.g. `content`, `input`, `system`, `diff`)
replaced by `"purged": {"at", "bytes", "fields": {name: bytes}}`, keeping its small fields (turn, usage, cost,
tool name...) and, whatever their size, the files pushed (`PURGE_KEEP`). Its `digest` and `hash` stay, so every
link still checks: for a purged event `verify` takes the stored digest as its content's (it cannot recompute it)
and counts it. Each purge appends an `audit.purged` event to the job's chain naming the events it purged; a
purged event that no such record names is a broken link.

Limits. Without a secret key, anyone who can rewrite the database can also recompute every hash after an edit
and move the head; the chain proves that nothing changed since the heads were last seen, so keep the heads
(`honk audit export` prints each job's) somewhere else. A job deleted with all its events leaves no trace here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Text, bindparam, cast, event, func, select, update
from sqlalchemy.orm import Mapper, object_session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from app.queue.db import Database
from app.queue.models import Job, JobEvent

GENESIS = "0" * 64  # the prev_hash of a job's first event
PURGE_EVENT = "audit.purged"
PURGE_MIN_BYTES = 1024  # events with less data are kept whole
PURGE_FIELD_BYTES = 512  # top-level fields larger than this are dropped from a purged event
PURGE_KEEP = frozenset({"files", "usage", "total_usage", "events"})  # audit-worthy however large

_jobs = Job.__table__
_events = JobEvent.__table__


# The canonical form


def at_text(at: datetime) -> str:
    """An event's time as it is hashed: ISO-8601 UTC with microseconds and a Z."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds") + "Z"


def data_text(data: Any) -> str:
    """`data` as the database stores it and the chain hashes it."""
    return json.dumps(data)


def digest_of(at: datetime, kind: str, text: str) -> str:
    """The SHA-256 of an event's canonical content, `{"at": "<at>", "data": <text>, "kind": <kind>}`, given its
    data as text (`data_text`). Hashed in pieces, so that a large text is not copied into the whole first."""
    digest = hashlib.sha256(f'{{"at": "{at_text(at)}", "data": '.encode())
    digest.update(text.encode())
    digest.update(_kind_tail(kind))
    return digest.hexdigest()


@functools.lru_cache(maxsize=1024)
def _kind_tail(kind: str) -> bytes:
    return f', "kind": {json.dumps(kind)}}}'.encode()


def link(prev_hash: str, job_id: int, digest: str) -> str:
    return hashlib.sha256(f"{prev_hash}:{job_id}:{digest}".encode()).hexdigest()


def genesis(job_id: int, at: datetime, kind: str, data: dict[str, Any]) -> dict[str, str]:
    """The chain columns of a job's first event, for inserts that bypass the ORM (intake's bulk `job.queued`)."""
    digest = digest_of(at, kind, data_text(data))
    return {"prev_hash": GENESIS, "digest": digest, "hash": link(GENESIS, job_id, digest)}


# Appending


def advance(connection: Connection, job_id: int, at: datetime, kind: str, data: dict[str, Any]) -> tuple[str, str, str]:
    """Link a new event onto its job's chain in the caller's transaction: lock the job's row, read the head, move
    it. Returns the event's (prev_hash, digest, hash)."""
    row = connection.execute(select(_jobs.c.chain_head).where(_jobs.c.id == job_id)
                             .with_for_update(key_share=True)).first()
    if row is None:
        raise ValueError(f"cannot record {kind!r}: there is no job {job_id}")
    prev = row[0]
    if prev is None:  # the chain holds its first event only (or nothing yet)
        prev = connection.execute(select(_events.c.hash).where(_events.c.job_id == job_id)
                                  .order_by(_events.c.id).limit(1)).scalar() or GENESIS
    digest = digest_of(at, kind, data_text(data))
    new = link(prev, job_id, digest)
    connection.execute(update(_jobs).where(_jobs.c.id == job_id).values(chain_head=new))
    return prev, digest, new


@event.listens_for(JobEvent, "before_insert")
def _link_event(_mapper: Mapper[Any], connection: Connection, target: JobEvent) -> None:
    if target.hash is not None:  # linked already (a copy, or a test building a broken chain on purpose)
        return
    target.prev_hash, target.digest, target.hash = advance(connection, target.job_id, target.at, target.kind,
                                                           target.data)
    session = object_session(target)
    job = session.identity_map.get(identity_key(Job, target.job_id)) if session is not None else None
    if job is not None:  # keep a loaded job's head current without making the row dirty
        set_committed_value(job, "chain_head", target.hash)


# Verifying


@dataclass(frozen=True)
class Broken:
    """The first broken link of one job's chain."""

    job_id: int
    event_id: int | None  # None when the break is in the job row (its head) rather than at an event
    reason: str

    def __str__(self) -> str:
        where = f"job {self.job_id}" + (f", event {self.event_id}" if self.event_id is not None else "")
        return f"{where}: {self.reason}"


@dataclass
class Verification:
    jobs: int = 0
    events: int = 0
    purged: int = 0  # events whose bulky data retention replaced with a summary (checked by their stored digest)
    broken: list[Broken] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def intact(self) -> bool:
        return not self.broken


class ChainCheck:
    """Checks one job's chain, fed its events in `id` order."""

    __slots__ = ("broken", "covered", "events", "job_id", "last_id", "prev", "purged", "uncovered")

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.prev = GENESIS
        self.last_id: int | None = None
        self.events = 0
        self.purged = 0
        self.uncovered: list[int] = []  # purged events no audit.purged record has named (yet)
        self.covered: set[int] = set()
        self.broken: Broken | None = None

    def feed(self, event_id: int, at: datetime, kind: str, text: str, prev_hash: str | None, digest: str | None,
             hash_: str | None) -> None:
        self.events += 1
        if self.broken is not None:
            return
        if prev_hash is None or digest is None or hash_ is None:
            return self._break(event_id, "it has no hash: it was written around the chain")
        if digest_of(at, kind, text) != digest:
            # Not the stored text's digest: stored differently (parse and hash the value), purged, or changed.
            try:
                data = json.loads(text)
            except ValueError:
                return self._break(event_id, "its data is not JSON")
            if isinstance(data, dict) and isinstance(data.get("purged"), dict):
                self.purged += 1
                if event_id not in self.covered:
                    self.uncovered.append(event_id)
            elif digest_of(at, kind, data_text(data)) != digest:
                return self._break(event_id, "its content does not match its digest: its kind, time or data "
                                             "changed")
        if kind == PURGE_EVENT:
            self._cover(text)
        if prev_hash != self.prev:
            if self.last_id is None:
                return self._break(event_id, "the chain's first event does not start it (its prev_hash is not "
                                             "the genesis): events before it were deleted")
            return self._break(event_id, f"its prev_hash is not the hash of event {self.last_id}, the one before "
                                         "it: events between them were deleted, or the events were reordered")
        if link(prev_hash, self.job_id, digest) != hash_:
            return self._break(event_id, "its hash is not SHA-256 of its prev_hash, job and digest")
        self.prev, self.last_id = hash_, event_id

    def finish(self, chain_head: str | None) -> Broken | None:
        if self.broken is None:
            if self.events == 0:
                self._break(None, "it has no events (its job.queued event is gone)")
            elif chain_head is None and self.events > 1:
                self._break(None, "its chain_head is empty but the chain has more than one event")
            elif chain_head is not None and chain_head != self.prev:
                self._break(None, f"its chain_head is not the hash of its last event ({self.last_id}): events "
                                  "after it were deleted, or the head was changed")
            elif self.uncovered:
                self._break(self.uncovered[0], "its data is marked purged but no audit.purged record names it")
        return self.broken

    def _cover(self, text: str) -> None:
        try:
            named = json.loads(text).get("events") or []
        except (ValueError, AttributeError):
            return
        self.covered.update(i for i in named if isinstance(i, int))
        self.uncovered = [i for i in self.uncovered if i not in self.covered]

    def _break(self, event_id: int | None, reason: str) -> None:
        self.broken = Broken(self.job_id, event_id, reason)


PAGE = 5_000  # events per query while verifying


def verify(db: Database, job_id: int | None = None) -> Verification:
    """Check every job's chain (or one job's): one pass over the events in `id` order, keyset-paged, holding
    one small state per job; each event's stored data text is hashed as it is."""
    started = time.perf_counter()
    report = Verification()
    chains: dict[int, ChainCheck] = {}
    columns = (_events.c.id, _events.c.job_id, _events.c.at, _events.c.kind, cast(_events.c.data, Text),
               _events.c.prev_hash, _events.c.digest, _events.c.hash)
    with db.snapshot() as conn:  # the heads and the events as of one moment, while writers go on
        heads = select(_jobs.c.id, _jobs.c.chain_head).order_by(_jobs.c.id)
        if job_id is not None:
            heads = heads.where(_jobs.c.id == job_id)
        jobs = conn.execute(heads).all()
        if job_id is not None:
            rows: Iterable[Any] = conn.execute(select(*columns).where(_events.c.job_id == job_id)
                                               .order_by(_events.c.id))
            _feed(chains, rows)
        else:
            page = select(*columns).where(_events.c.id > bindparam("after")).order_by(_events.c.id).limit(PAGE)

            def fetch(after: int) -> list[Any]:
                return list(conn.execute(page, {"after": after}).all())

            # The next page is read on a helper thread (the driver lets go of the GIL while the database works)
            # while this one hashes the current page; only the helper touches the connection meanwhile.
            with ThreadPoolExecutor(1, thread_name_prefix="audit-verify") as reader:
                pending = reader.submit(fetch, 0)
                while rows := pending.result():
                    pending = reader.submit(fetch, rows[-1][0])
                    _feed(chains, rows)
    for job, head in jobs:
        check = chains.pop(job, None) or ChainCheck(job)
        report.jobs += 1
        report.events += check.events
        report.purged += check.purged
        if (broken := check.finish(head)) is not None:
            report.broken.append(broken)
    for job, check in sorted(chains.items()):  # events whose job row is gone (the foreign key forbids it)
        report.events += check.events
        report.broken.append(Broken(job, check.last_id, "its events have no job row"))
    report.seconds = time.perf_counter() - started
    return report


def _feed(chains: dict[int, ChainCheck], rows: Iterable[Any]) -> None:
    for event_id, job_id, at, kind, text, prev_hash, digest, hash_ in rows:
        check = chains.get(job_id)
        if check is None:
            check = chains[job_id] = ChainCheck(job_id)
        check.feed(event_id, at, kind, text, prev_hash, digest, hash_)


def check_events(job_id: int, chain_head: str | None, events: Iterable[JobEvent]) -> ChainCheck:
    """Check one job's chain from loaded events (in `id` order), e.g. while exporting them."""
    check = ChainCheck(job_id)
    for e in events:
        check.feed(e.id, e.at, e.kind, data_text(e.data), e.prev_hash, e.digest, e.hash)
    check.finish(chain_head)
    return check


# Retention


@dataclass
class Purged:
    jobs: int = 0
    events: int = 0
    bytes: int = 0  # of data text removed


def summarise(data: dict[str, Any], at: datetime) -> dict[str, Any] | None:
    """`data` with its bulky top-level fields dropped and named, or None when there is nothing to drop."""
    if not isinstance(data, dict) or "purged" in data:
        return None
    dropped = {key: size for key, value in data.items()
               if key not in PURGE_KEEP and (size := len(data_text(value))) > PURGE_FIELD_BYTES}
    if not dropped:
        return None
    kept = {key: value for key, value in data.items() if key not in dropped}
    return {**kept, "purged": {"at": at_text(at), "bytes": len(data_text(data)), "fields": dropped}}


def purge(db: Database, days: int, *, now: datetime | None = None, batch: int = 200) -> Purged:
    """Retention: drop the bulky fields of the events of jobs that finished more than `days` days ago, keep their
    hashes, and record each job's purge in its chain."""
    done = Purged()
    after = 0
    while True:
        with db.session() as session:
            moment = now or db.now(session)
            cutoff = moment - timedelta(days=days)
            jobs = session.scalars(select(_jobs.c.id).where(_jobs.c.finished_at < cutoff, _jobs.c.id > after)
                                   .order_by(_jobs.c.id).limit(batch)).all()
            if not jobs:
                return done
            after = jobs[-1]
            rows = session.execute(
                select(_events.c.id, _events.c.job_id, _events.c.data)
                .where(_events.c.job_id.in_(jobs), _events.c.kind != PURGE_EVENT,
                       func.length(cast(_events.c.data, Text)) > PURGE_MIN_BYTES)
                .order_by(_events.c.id)).all()
            changes: list[dict[str, Any]] = []
            per_job: dict[int, list[int]] = {}
            freed: dict[int, int] = {}
            for event_id, job, data in rows:
                summary = summarise(data, moment)
                if summary is None:
                    continue
                changes.append({"event": event_id, "summary": summary})
                per_job.setdefault(job, []).append(event_id)
                freed[job] = freed.get(job, 0) + len(data_text(data)) - len(data_text(summary))
            if changes:
                session.execute(update(_events).where(_events.c.id == bindparam("event"))
                                .values(data=bindparam("summary")), changes)
            for job, ids in per_job.items():
                session.add(JobEvent(job_id=job, at=moment, kind=PURGE_EVENT,
                                     data={"events": ids, "bytes": freed[job], "retention_days": days}))
                done.jobs += 1
                done.events += len(ids)
                done.bytes += freed[job]

