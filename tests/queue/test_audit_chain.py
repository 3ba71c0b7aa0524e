"""The tamper-evident audit trail (app/queue/chain.py, `honk audit`), on SQLite and on the real PostgreSQL.

These protect its promises (README, "Audit trail"): every way Honk writes an event links it onto its job's hash
chain, appends from several processes never fork a chain, any edit, deletion or reordering is named by
`honk audit verify` at its first broken link, retention drops transcripts but keeps every chain verifiable, the
export says who asked for what and what the model saw and did, and databases from before the chains get them.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, Text, bindparam, cast, delete, func, insert, select, text, update

from app.cli import main
from app.queue import chain
from app.queue.db import MIGRATIONS, Database
from app.queue.models import Job, JobEvent
from app.queue.requests import JobKind, JobRequest
from app.queue.store import Incoming, JobQueue

EVENTS = JobEvent.__table__


def request(number: int = 7, repo: str = "acme/widgets", **trigger: Any) -> JobRequest:
    return JobRequest(kind=JobKind.RESOLVE_ISSUE, repo=repo, number=number, requester="alice", installation_id=42,
                      trigger={"event": "issues", "action": "labeled", **trigger})


@pytest.fixture
def queue(db: Database) -> JobQueue:
    return JobQueue(db, lease_seconds=60)


def record_a_run(queue: JobQueue, job_id: int, *, turns: int = 2) -> None:
    """The events a resolve job writes, with their real shapes and realistic sizes."""
    add = queue.append_event
    add(job_id, "authorisation", {"requester": "alice", "role": "write", "allowed": True})
    add(job_id, "agent.start", {"model": "claude-sonnet-4-5", "provider": "anthropic", "root": "/w/1",
                                "repository": "acme/widgets", "sandbox": "bwrap", "budget": {"max_turns": 50},
                                "max_tokens": 8192, "system": "You are Honk. " * 200,
                                "tools": [{"name": "bash", "input_schema": {"type": "object"}},
                                          {"name": "verify", "input_schema": {"type": "object"}}], "priced": True})
    add(job_id, "message.user", {"content": [{"type": "text", "text": "Your task:\nMake the widgets spin forwards. "
                                              "Données: « ünïcode » ✓"}]})
    for turn in range(1, turns + 1):
        add(job_id, "model.request", {"turn": turn, "max_tokens": 8192, "messages": 2 * turn, "context_tokens": 900,
                                      "stream": True})
        add(job_id, "model.response", {"turn": turn, "provider": "anthropic", "model": "claude-sonnet-4-5",
                                       "stop_reason": "tool_use", "stop_details": None,
                                       "content": [{"type": "text", "text": "Let me look. " * 60},
                                                   {"type": "tool_use", "id": f"toolu_{turn}", "name": "bash",
                                                    "input": {"command": "grep -rn spin src/"}}],
                                       "usage": {"input_tokens": 1200, "output_tokens": 300,
                                                 "cache_read_input_tokens": 9000, "cache_creation_input_tokens": 0},
                                       "cost_usd": 0.0123, "total_cost_usd": 0.0123 * turn, "duration_s": 2.5})
        add(job_id, "tool.call", {"id": f"toolu_{turn}", "name": "bash", "input": {"command": "grep -rn spin src/"}})
        add(job_id, "tool.result", {"id": f"toolu_{turn}", "name": "bash", "is_error": False,
                                    "content": "src/widget.py:12: spin(-1)\n" * 80, "duration_s": 0.05})
    add(job_id, "agent.stop", {"stop": "completed", "summary": "Fixed the direction.", "turns": turns,
                               "usage": {"input_tokens": 2400}, "cost_usd": 0.0246, "duration_s": 9.1})
    add(job_id, "verify.tests", {"status": "passed", "command": "pytest -q", "output": "42 passed\n" * 150})
    add(job_id, "judge.request", {"model": "claude-opus-4-1", "provider": "bedrock", "diff_chars": 420})
    add(job_id, "judge.verdict", {"decision": "approve", "reason": "Does what was asked.", "model": "claude-opus-4-1",
                                  "provider": "bedrock", "cost_usd": 0.01, "usage": {"input_tokens": 700,
                                                                                     "output_tokens": 40}})
    add(job_id, "git.pushed", {"branch": "honk/7", "commit": "c0ffee" * 6 + "abcd", "files": ["src/widget.py"],
                               "seconds": 0.4, "diff": "-spin(-1)\n+spin(1)\n" * 50})
    add(job_id, "check_run.started", {"commit": "c0ffee" * 6 + "abcd", "check_run": 99})
    add(job_id, "pull_request", {"number": 12, "url": "https://github.com/acme/widgets/pull/12", "opened": True,
                                 "draft": False, "commit": "c0ffee" * 6 + "abcd"})


def finished_job(queue: JobQueue, number: int = 7, **trigger: Any) -> int:
    job_id = queue.enqueue(request(number, **trigger))
    claimed = queue.claim("w1")
    assert claimed is not None and claimed.id == job_id
    record_a_run(queue, job_id)
    assert queue.complete(job_id, "w1", {"pull_request": 12})
    return job_id


def chain_of(db: Database, job_id: int) -> list[tuple[int, str, str, str]]:
    with db.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(  # type: ignore[misc]
            select(EVENTS.c.id, EVENTS.c.prev_hash, EVENTS.c.digest, EVENTS.c.hash)
            .where(EVENTS.c.job_id == job_id).order_by(EVENTS.c.id))]


def head_of(db: Database, job_id: int) -> str | None:
    with db.engine.connect() as conn:
        return conn.execute(select(Job.__table__.c.chain_head).where(Job.__table__.c.id == job_id)).scalar()


def honk(args: list[str], url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str], **env: str) -> tuple[int, str, str]:
    """`honk ...` in this process, on this database; returns (exit code, stdout, stderr)."""
    for name in [n for n in os.environ if n.startswith(("GITHUB_", "HONK_", "ANTHROPIC_"))]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HONK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HONK_DATABASE_URL", url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


# Writing


def test_every_way_of_writing_events_links_them_into_one_chain_per_job(queue: JobQueue, db: Database) -> None:
    """Intake's bulk inserts, enqueue, the lifecycle transitions and the worker's and agent's appends all link
    their events onto the job's chain: each event's prev_hash is the hash before it, its digest is its canonical
    content's, its hash binds both to the job, and the job's head is the last hash."""
    taken = queue.accept_deliveries([Incoming(f"d{n}", "issues", "labeled", request(n, delivery_id=f"d{n}"))
                                     for n in range(3)])
    bulk = [answer.job_id for answer in taken]
    assert all(bulk)
    assert [head_of(db, job_id) for job_id in bulk] == [None] * 3, "intake writes each job row once"
    first = bulk[0]
    assert queue.claim("w1") is not None
    record_a_run(queue, first, turns=1)
    queue.absorb(first, "w1")  # none queued on its subject: nothing happens
    assert queue.complete(first, "w1", {})
    second = queue.enqueue(request(99))
    queue.cancel(second)
    for job_id in [*bulk, second]:
        links = chain_of(db, job_id)
        events = queue.events(job_id)
        prev = chain.GENESIS
        for (event_id, prev_hash, digest, hash_), e in zip(links, events, strict=True):
            assert event_id == e.id and prev_hash == prev
            assert digest == chain.digest_of(e.at, e.kind, json.dumps(e.data))
            assert hash_ == chain.link(prev_hash, job_id, digest)
            prev = hash_
        assert head_of(db, job_id) == prev or (head_of(db, job_id) is None and len(links) == 1)
    assert head_of(db, first) == chain_of(db, first)[-1][3]
    assert len(chain_of(db, first)) == 1 + 1 + 3 + 4 + 7 + 1  # queued, started, the run (one turn), succeeded
    report = queue.verify_chains()
    assert (report.intact, report.jobs, report.events, report.purged) == (
        True, 4, sum(len(chain_of(db, j)) for j in [*bulk, second]), 0)
    loaded = queue.get(first)
    assert loaded is not None and loaded.chain_head == chain_of(db, first)[-1][3]


def test_events_written_in_one_transaction_chain_in_order(queue: JobQueue, db: Database) -> None:
    """Several events of one job flushed together (and a job's head kept current on its loaded row)."""
    job_id = queue.enqueue(request())
    with db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        now = db.now(session)
        for n in range(5):
            session.add(JobEvent(job_id=job_id, at=now + timedelta(microseconds=n), kind="note", data={"n": n}))
        session.flush()
        assert job.chain_head == chain_of_in(session, job_id)[-1]
        job.error = "touched after"  # the row is written again; its head must survive
    assert queue.verify_chains(job_id).intact
    assert head_of(db, job_id) == chain_of(db, job_id)[-1][3]


def chain_of_in(session: Any, job_id: int) -> list[str]:
    return list(session.scalars(select(EVENTS.c.hash).where(EVENTS.c.job_id == job_id).order_by(EVENTS.c.id)))


def test_the_stored_data_text_is_what_the_chain_hashes(queue: JobQueue, db: Database) -> None:
    """The digest covers `json.dumps(data)`, which is byte for byte what both databases store, so verifying hashes
    the stored text without parsing it; key order, floats, non-ASCII, NUL and integer keys all survive."""
    job_id = queue.enqueue(request())
    data = {"z": 1, "a": [1.5, 1e-07, 1e300, -0.0, 2**62], "ünï": "« é » ✓ \u0000 \"q\" \\",
            "nested": {"b": None, "a": True, 3: (1, 2)}}
    queue.append_event(job_id, "odd", data)
    with db.engine.connect() as conn:
        stored = conn.execute(select(cast(EVENTS.c.data, Text)).where(EVENTS.c.kind == "odd")).scalar_one()
    assert stored == json.dumps(data)
    back = queue.events(job_id)[-1]
    assert list(back.data) == ["z", "a", "ünï", "nested"] and list(back.data["nested"]) == ["b", "a", "3"]
    assert chain.digest_of(back.at, back.kind, json.dumps(back.data)) == chain_of(db, job_id)[-1][2]
    assert queue.verify_chains().intact


def test_the_canonical_content_is_plain_json() -> None:
    """What an outside auditor recomputes: the digest is SHA-256 of `json.dumps({"at", "data", "kind"})` with
    Python's defaults and `at` in ISO-8601 UTC with microseconds; the link is SHA-256 of "prev:job:digest"."""
    data = {"turn": 3, "content": [{"type": "text", "text": "é ✓"}], "usage": {"input_tokens": 10}}
    at = datetime(2025, 1, 31, 12, 0, 0)
    whole = json.dumps({"at": "2025-01-31T12:00:00.000000Z", "data": data, "kind": "model.response"})
    digest = hashlib.sha256(whole.encode()).hexdigest()
    assert chain.digest_of(at, "model.response", json.dumps(data)) == digest
    aware = datetime(2025, 1, 31, 13, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert chain.digest_of(aware, "model.response", json.dumps(data)) == digest
    assert chain.link(chain.GENESIS, 7, digest) == hashlib.sha256(f"{'0' * 64}:7:{digest}".encode()).hexdigest()
    assert chain.genesis(7, at, "model.response", data) == {
        "prev_hash": chain.GENESIS, "digest": digest, "hash": chain.link(chain.GENESIS, 7, digest)}


def test_a_chain_written_on_one_database_verifies_on_the_other(tmp_path: Path, postgres_url: str) -> None:
    """Events read back from SQLite and written by value into PostgreSQL (and back) keep their digests: `at` and
    `data` survive both round trips exactly. A copy that re-serialises the JSON text (other spacing) still verifies,
    through the slower parse-and-hash path."""
    sqlite = Database(f"sqlite:///{tmp_path / 'a.db'}")
    postgres = Database(postgres_url)
    try:
        for database in (sqlite, postgres):
            database.migrate()
        source = JobQueue(sqlite)
        jobs = [finished_job(source, n) for n in (1, 2)]
        for origin, target in ((sqlite, postgres), (postgres, sqlite)):
            if origin is postgres:
                with target.engine.begin() as conn:  # empty the SQLite one, then copy PostgreSQL's back
                    conn.execute(delete(EVENTS))
                    conn.execute(delete(Job.__table__))
            copy_rows(origin, target)
            report = chain.verify(target)
            assert (report.intact, report.jobs) == (True, 2), report.broken
            assert chain.verify(target, jobs[0]).events == len(chain_of(origin, jobs[0]))
        with sqlite.engine.begin() as conn:  # another tool rewrote the text: same values, other spacing
            for event_id, data in conn.execute(select(EVENTS.c.id, cast(EVENTS.c.data, Text))).all():
                conn.execute(text("UPDATE job_events SET data = :d WHERE id = :i"),
                             {"d": json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False),
                              "i": event_id})
        assert chain.verify(sqlite).intact
    finally:
        sqlite.dispose()
        postgres.dispose()


def copy_rows(origin: Database, target: Database) -> None:
    with origin.engine.connect() as src, target.engine.begin() as dst:
        for table in (Job.__table__, EVENTS):
            rows = [dict(row._mapping) for row in src.execute(select(table).order_by(table.c.id))]
            dst.execute(insert(table), rows)
        if not target.is_sqlite:
            for table in ("jobs", "job_events"):
                dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT max(id) FROM {table}))"))


# Concurrency


def test_concurrent_appends_from_several_processes_never_fork_a_chain(
        queue: JobQueue, database_url: str, db: Database) -> None:
    """Workers and web processes (each with its own engine, as separate processes would have) append to one running
    job's chain at the same time, while its lifecycle moves: the chain holds every event once, in order, with no two
    events linked to the same predecessor."""
    job_id = queue.enqueue(request())
    assert queue.claim("w1") is not None
    others = [Database(database_url) for _ in range(4)]
    try:
        queues = [JobQueue(other, lease_seconds=60) for other in others]
        barrier = threading.Barrier(len(queues) + 1)

        def append(index: int) -> None:
            barrier.wait()
            for n in range(40):
                queues[index].append_event(job_id, "tool.result", {"writer": index, "n": n, "content": "x" * 300})

        def lifecycle() -> None:
            barrier.wait()
            for _ in range(10):
                queues[0].heartbeat(job_id, "w1")
            queues[1].cancel(job_id)  # a web process asks it to stop: job.cancel_requested

        with ThreadPoolExecutor(len(queues) + 1) as pool:
            for future in [pool.submit(append, i) for i in range(len(queues))] + [pool.submit(lifecycle)]:
                future.result()
        links = chain_of(db, job_id)
        assert len(links) == 1 + 1 + 4 * 40 + 1
        assert Counter(prev for _, prev, _, _ in links).most_common(1)[0][1] == 1, "a forked chain"
        assert [prev for _, prev, _, _ in links[1:]] == [hash_ for _, _, _, hash_ in links[:-1]]
        for index in range(4):
            assert [e.data["n"] for e in queue.events(job_id) if e.data.get("writer") == index] == list(range(40))
        report = queue.verify_chains()
        assert report.intact and report.events == len(links)
    finally:
        for other in others:
            other.dispose()


def test_verify_reads_a_consistent_snapshot_while_events_are_appended(queue: JobQueue, db: Database) -> None:
    """A verification that runs while workers append sees every chain as of one moment: no false breaks."""
    jobs = [finished_job(queue, n) for n in range(3)]
    stop = threading.Event()

    def append() -> None:
        n = 0
        while not stop.is_set():
            queue.append_event(jobs[n % 3], "note", {"n": n})
            n += 1

    thread = threading.Thread(target=append)
    thread.start()
    try:
        for _ in range(15):
            report = chain.verify(db)
            assert report.intact, report.broken
    finally:
        stop.set()
        thread.join()


# Tampering


def _edit_data(db: Database, job_id: int, ids: list[int]) -> int:
    with db.engine.begin() as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.id == ids[5]).values(data={"turn": 1, "cost_usd": 0.0}))
    return ids[5]


def _edit_time(db: Database, job_id: int, ids: list[int]) -> int:
    with db.engine.begin() as conn:
        at = conn.execute(select(EVENTS.c.at).where(EVENTS.c.id == ids[6])).scalar_one()
        conn.execute(update(EVENTS).where(EVENTS.c.id == ids[6]).values(at=at + timedelta(microseconds=1)))
    return ids[6]


def _delete_middle(db: Database, job_id: int, ids: list[int]) -> int:
    with db.engine.begin() as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.id == ids[4]))
    return ids[5]


def _delete_first(db: Database, job_id: int, ids: list[int]) -> int:
    with db.engine.begin() as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.id == ids[0]))
    return ids[1]


def _reorder(db: Database, job_id: int, ids: list[int]) -> int:
    """Swap two events whole (content and hashes), as if they had happened the other way round."""
    columns = ("at", "kind", "data", "prev_hash", "digest", "hash")
    with db.engine.begin() as conn:
        a, b = (conn.execute(select(*(EVENTS.c[c] for c in columns)).where(EVENTS.c.id == i)).one() for i in ids[7:9])
        conn.execute(update(EVENTS).where(EVENTS.c.id == ids[7]).values(dict(zip(columns, b, strict=True))))
        conn.execute(update(EVENTS).where(EVENTS.c.id == ids[8]).values(dict(zip(columns, a, strict=True))))
    return ids[7]


def _change_hash(db: Database, job_id: int, ids: list[int]) -> int:
    with db.engine.begin() as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.id == ids[3]).values(hash="f" * 64))
    return ids[3]


def _change_digest_to_match(db: Database, job_id: int, ids: list[int]) -> int:
    """Edit the data and store the new content's digest too: the hash no longer matches."""
    with db.engine.begin() as conn:
        at, kind = conn.execute(select(EVENTS.c.at, EVENTS.c.kind).where(EVENTS.c.id == ids[2])).one()
        data = {"requester": "mallory", "role": "admin", "allowed": True}
        conn.execute(update(EVENTS).where(EVENTS.c.id == ids[2]).values(
            data=data, digest=chain.digest_of(at, kind, json.dumps(data))))
    return ids[2]


def _forge_event(db: Database, job_id: int, ids: list[int]) -> int:
    """Add a well-formed event linked to the one before the last: a fork."""
    with db.engine.begin() as conn:
        at, prev = conn.execute(select(EVENTS.c.at, EVENTS.c.hash).where(EVENTS.c.id == ids[-2])).one()
        data = {"number": 13, "opened": True}
        digest = chain.digest_of(at, "pull_request", json.dumps(data))
        conn.execute(insert(EVENTS).values(job_id=job_id, at=at, kind="pull_request", data=data, prev_hash=prev,
                                           digest=digest, hash=chain.link(prev, job_id, digest)))
        return conn.execute(select(func.max(EVENTS.c.id))).scalar_one()


def _mark_purged(db: Database, job_id: int, ids: list[int]) -> int:
    """Pass an edit off as retention: data 'purged' without an audit.purged record naming it."""
    with db.engine.begin() as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.id == ids[10]).values(
            data={"id": "toolu_1", "purged": {"at": "2030-01-01T00:00:00.000000Z", "bytes": 1, "fields": {}}}))
    return ids[10]


@pytest.mark.parametrize(("tamper", "says"), [
    (_edit_data, "its content does not match its digest"),
    (_edit_time, "its content does not match its digest"),
    (_delete_middle, "its prev_hash is not the hash of event"),
    (_delete_first, "the chain's first event does not start it"),
    (_reorder, "its prev_hash is not the hash of event"),
    (_change_hash, "its hash is not SHA-256"),
    (_change_digest_to_match, "its hash is not SHA-256"),
    (_forge_event, "its prev_hash is not the hash of event"),  # a fork
    (_mark_purged, "its data is marked purged but no audit.purged record names it"),
], ids=lambda value: value.__name__.strip("_") if callable(value) else "")
def test_verify_names_the_first_broken_link(tamper: Callable[[Database, int, list[int]], int], says: str,
                                            queue: JobQueue, db: Database, database_url: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Each kind of tampering breaks the chain at the event it touched (or the one after a deletion), and
    `honk audit verify` exits 1 naming that job and event; the other jobs' chains stay intact."""
    intact, victim, other = (finished_job(queue, n) for n in (1, 2, 3))
    ids = [event_id for event_id, *_ in chain_of(db, victim)]
    code, out, _ = honk(["audit", "verify"], database_url, tmp_path, monkeypatch, capsys)
    assert code == 0 and "audit trail intact: 3 jobs" in out

    event_id = tamper(db, victim, ids)
    report = chain.verify(db)
    assert [(b.job_id, b.event_id) for b in report.broken] == [(victim, event_id)]
    assert says in report.broken[0].reason
    code, out, _ = honk(["audit", "verify"], database_url, tmp_path, monkeypatch, capsys)
    assert code == 1
    assert f"first broken link at job {victim}, event {event_id}: {says}" in out, out
    assert "1 of 3 jobs" in out
    assert chain.verify(db, intact).intact and chain.verify(db, other).intact
    code, out, _ = honk(["audit", "verify", "--job", str(other)], database_url, tmp_path, monkeypatch, capsys)
    assert code == 0 and "1 job," in out


def test_deleting_the_newest_events_breaks_the_head(queue: JobQueue, db: Database) -> None:
    """Events cut off the end of a chain leave a consistent prefix, but not the job's head."""
    job_id = finished_job(queue)
    ids = [event_id for event_id, *_ in chain_of(db, job_id)]
    with db.engine.begin() as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.id.in_(ids[-2:])))
    broken = chain.verify(db).broken
    assert [(b.job_id, b.event_id) for b in broken] == [(job_id, None)]
    assert f"its chain_head is not the hash of its last event ({ids[-3]})" in broken[0].reason
    with db.engine.begin() as conn:
        conn.execute(delete(EVENTS).where(EVENTS.c.job_id == job_id))
    assert "it has no events" in chain.verify(db).broken[0].reason


def test_verify_without_a_job_row_or_unknown_job(queue: JobQueue, database_url: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = honk(["audit", "verify"], database_url, tmp_path, monkeypatch, capsys)
    assert code == 0 and "0 jobs, 0 events" in out
    code, _, err = honk(["audit", "verify", "--job", "5"], database_url, tmp_path, monkeypatch, capsys)
    assert code == 1 and "there is no job 5" in err


# Retention


def test_retention_purges_transcripts_and_keeps_every_chain_verifiable(
        queue: JobQueue, db: Database, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Jobs finished more than N days ago lose their bulky fields (the model's replies, tool inputs and results,
    the system prompt, diffs) but keep their small ones (turns, usage, cost, names) and every hash; the purge is
    recorded in each chain, `verify` still checks every link and counts the purged events, and a second purge
    finds nothing more. Running and recent jobs are untouched."""
    old = finished_job(queue, 1)
    recent = finished_job(queue, 2)
    running = queue.enqueue(request(3))
    assert queue.claim("w1") is not None
    record_a_run(queue, running, turns=1)
    with db.engine.begin() as conn:
        conn.execute(update(Job.__table__).where(Job.__table__.c.id == old).values(
            finished_at=datetime(2020, 1, 1)))
    before = {e.id: e for e in queue.events(old)}

    code, out, _ = honk(["audit", "purge"], database_url, tmp_path, monkeypatch, capsys,
                        HONK_AUDIT_RETENTION_DAYS="30")
    assert code == 0 and "of 1 jobs finished more than 30 days ago" in out, out

    after = queue.events(old)
    purged = {e.id: e for e in after if isinstance(e.data.get("purged"), dict)}
    assert {before[i].kind for i in purged} == {"agent.start", "model.response", "tool.result", "verify.tests",
                                                "git.pushed"}
    response = next(e for e in purged.values() if e.kind == "model.response")
    assert "content" not in response.data and response.data["usage"]["input_tokens"] == 1200
    assert response.data["cost_usd"] == 0.0123 and response.data["purged"]["fields"]["content"] > 512
    start = next(e for e in purged.values() if e.kind == "agent.start")
    assert "system" not in start.data and start.data["model"] == "claude-sonnet-4-5"
    pushed = next(e for e in purged.values() if e.kind == "git.pushed")
    assert pushed.data["files"] == ["src/widget.py"] and "diff" not in pushed.data
    assert all((e.digest, e.hash) == (before[e.id].digest, before[e.id].hash) for e in purged.values())
    record = after[-1]
    assert record.kind == "audit.purged" and sorted(record.data["events"]) == sorted(purged)
    assert record.data["retention_days"] == 30 and record.data["bytes"] > 5_000
    assert not any("purged" in e.data for job in (recent, running) for e in queue.events(job))

    report = chain.verify(db)
    assert (report.intact, report.purged) == (True, len(purged)), report.broken
    code, out, _ = honk(["audit", "verify"], database_url, tmp_path, monkeypatch, capsys)
    assert code == 0 and f"{len(purged)} of them purged by retention" in out
    assert chain.purge(db, 30).events == 0, "nothing left to purge"

    # A purged event is checked by its stored digest: its link still cannot be moved.
    with db.engine.begin() as conn:
        conn.execute(update(EVENTS).where(EVENTS.c.id == response.id).values(digest="0" * 64))
    assert [(b.job_id, b.event_id) for b in chain.verify(db).broken] == [(old, response.id)]


def test_purge_needs_a_retention(database_url: str, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = honk(["audit", "purge"], database_url, tmp_path, monkeypatch, capsys)
    assert code == 2 and "HONK_AUDIT_RETENTION_DAYS" in err


# Export


def test_export_writes_who_asked_what_the_model_saw_and_did(
        queue: JobQueue, db: Database, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """One JSON line per job: requester and channel, the request and the task as given, the model's context, each
    model call (model, provider, tokens, cost), each tool call with its result, verifiers, judge, commits, pull
    requests, and the job's chain head; --repo and --since filter."""
    first = finished_job(queue, 1, issue={"title": "Widgets spin backwards", "body": "They should spin forwards."})
    slack = finished_job(queue, 2, channel="slack")
    elsewhere = queue.enqueue(request(3, repo="acme/gadgets"))
    out_file = tmp_path / "audit.jsonl"

    code, out, err = honk(["audit", "export", "--output", str(out_file)], database_url, tmp_path, monkeypatch,
                          capsys)
    assert code == 0 and "exported 3 jobs" in err
    lines = [json.loads(line) for line in out_file.read_text(encoding="utf-8").splitlines()]
    assert [line["job"] for line in lines] == [first, slack, elsewhere]
    one = lines[0]
    assert (one["requester"], one["channel"], one["repo"], one["number"], one["status"]) == (
        "alice", "github", "acme/widgets", 1, "succeeded")
    assert one["request"]["issue"]["title"] == "Widgets spin backwards"
    assert one["task"] == ["Your task:\nMake the widgets spin forwards. Données: « ünïcode » ✓"]
    context = one["context"][0]
    assert (context["model"], context["provider"], context["tools"]) == ("claude-sonnet-4-5", "anthropic",
                                                                         ["bash", "verify"])
    assert context["system"].startswith("You are Honk.")
    agent_calls = [c for c in one["model_calls"] if c["role"] == "agent"]
    assert [(c["turn"], c["model"], c["provider"], c["input_tokens"], c["output_tokens"], c["cost_usd"])
            for c in agent_calls] == [(1, "claude-sonnet-4-5", "anthropic", 1200, 300, 0.0123),
                                      (2, "claude-sonnet-4-5", "anthropic", 1200, 300, 0.0123)]
    judge_call = next(c for c in one["model_calls"] if c["role"] == "judge")
    assert (judge_call["model"], judge_call["provider"], judge_call["cost_usd"]) == ("claude-opus-4-1", "bedrock",
                                                                                     0.01)
    assert one["cost_usd"] == pytest.approx(0.0346)
    assert [(t["name"], t["input"], t["result"][:26], t["is_error"]) for t in one["tool_calls"]] == [
        ("bash", {"command": "grep -rn spin src/"}, "src/widget.py:12: spin(-1)", False)] * 2
    assert one["verifiers"][0]["status"] == "passed"
    assert [j.get("decision") for j in one["judge"]] == [None, "approve"]
    assert one["commits"][0]["files"] == ["src/widget.py"] and one["commits"][0]["branch"] == "honk/7"
    assert one["pull_requests"][0]["number"] == 12 and one["checks"][0]["check_run"] == 99
    assert one["authorisation"][0]["role"] == "write"
    assert one["chain"] == {"head": head_of(db, first), "events": len(one["events"]), "purged": 0, "intact": True,
                            "broken": None}
    assert lines[1]["channel"] == "slack"

    code, out, _ = honk(["audit", "export", "--repo", "acme/gadgets"], database_url, tmp_path, monkeypatch, capsys)
    assert code == 0 and [json.loads(line)["job"] for line in out.splitlines()] == [elsewhere]
    code, out, _ = honk(["audit", "export", "--since", "2999-01-01"], database_url, tmp_path, monkeypatch, capsys)
    assert code == 0 and out == ""
    code, out, _ = honk(["audit", "export", "--since", "2000-01-01T00:00:00+02:00", "--repo", "acme/widgets"],
                        database_url, tmp_path, monkeypatch, capsys)
    assert [json.loads(line)["job"] for line in out.splitlines()] == [first, slack]
    with pytest.raises(SystemExit):
        honk(["audit", "export", "--since", "yesterday"], database_url, tmp_path, monkeypatch, capsys)


# Migration


def test_the_migration_backfills_chains_for_existing_events(database_url: str) -> None:
    """A database from before the chains (revision 0001) gets every job's chain on upgrade, in id order, then
    verifies; new events link on. Jobs without events keep an empty head."""
    db = Database(database_url)
    try:
        with db.engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        now = datetime(2024, 5, 1, 12, 0, 0, 123456)
        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO jobs (id, kind, subject, repo, number, payload, status, attempts, max_attempts, "
                "run_after, cancel_requested, created_at, updated_at) VALUES (:id, 'resolve_issue', :s, "
                "'acme/widgets', :id, '{}', 'succeeded', 1, 3, :now, false, :now, :now)")
                .bindparams(bindparam("now", type_=DateTime())),
                [{"id": job_id, "s": f"acme/widgets#{job_id}", "now": now} for job_id in range(1, 4)])
            rows = [{"job": 1 + n % 3, "at": now + timedelta(seconds=n), "kind": "note",
                     "data": json.dumps({"n": n, "text": "é" * n})} for n in range(20)]
            conn.execute(text("INSERT INTO job_events (job_id, at, kind, data) VALUES (:job, :at, :kind, :data)")
                         .bindparams(bindparam("at", type_=DateTime())), rows)
            conn.execute(text("DELETE FROM job_events WHERE job_id = 3"))
        db.migrate()
        report = chain.verify(db)
        assert [(b.job_id, b.reason) for b in report.broken] == [(3, "it has no events (its job.queued event is gone)")]
        assert report.events == 14
        for job_id in (1, 2):
            links = chain_of(db, job_id)
            assert links[0][1] == chain.GENESIS and head_of(db, job_id) == links[-1][3]
            JobQueue(db).append_event(job_id, "note", {"after": True})
            assert chain.verify(db, job_id).intact
        assert head_of(db, 3) is None
    finally:
        db.dispose()

