"""Benchmark of `honk audit verify`: checking every hash chain of 100,000 events (goal: under 2 s here).

Prints figures and ratios against baselines measured in the same run; asserts nothing.

For each database (SQLite in a temp dir; PostgreSQL when it answers at $HONK_TEST_POSTGRES_URL, default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres, in a fresh database dropped at the end; skipped with the
reason otherwise):
- build: --jobs jobs (default 2,000) through the real store: intake's `accept_deliveries` (batches of 100, the
  genesis links computed in Python), then per job one transaction adding its other 49 events through the ORM, each
  linked by the chain's listener (lock the job row, read the head, move it), as a worker's appends are. The 50
  events of a job have a resolve run's shapes and sizes: queued, started, authorisation, agent.start (a 6 KB system
  prompt, tool definitions), the task, ten turns of model.request / model.response (~1.5 KB) / tool.call /
  tool.result (~2 KB), agent.stop, verify.tests, git.pushed (a 4 KB diff), pull_request, succeeded.
- baselines: `SELECT` of the columns verify reads, every row, paged the same way (what reading costs at best),
  and SHA-256 alone over the same texts in memory (what hashing costs at best);
- verify: `app.queue.chain.verify` (the function behind `honk audit verify`), median of --runs runs, and its ratio
  to the SELECT baseline; then `honk audit verify` itself in a subprocess once (interpreter start, imports and the
  migration check included);
- after retention (`purge` with every job old enough), verify again: purged events take the slower path.

Run: .venv/bin/python bench/audit.py [--jobs 2000] [--runs 3] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from sqlalchemy import Text, bindparam, cast, func, select, update
from sqlalchemy.engine import make_url

from app.queue import chain
from app.queue.db import Database
from app.queue.models import Job, JobEvent
from app.queue.requests import JobKind, JobRequest
from app.queue.store import Incoming, JobQueue
from tests.support import postgres_problem

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("HONK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
EVENTS = JobEvent.__table__
TURNS = 10
T = TypeVar("T")
rng = random.Random(16)


def words(chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9)))
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:chars]


SYSTEM = words(6_000)
TOOLS = [{"name": name, "description": words(400), "input_schema": {"type": "object", "properties": {
    "command": {"type": "string", "description": words(120)}}}} for name in ("bash", "str_replace_based_edit_tool",
                                                                            "verify", "web_fetch")]


def run_events(number: int) -> list[tuple[str, dict[str, object]]]:
    """A job's events after job.queued, 49 of them."""
    events: list[tuple[str, dict[str, object]]] = [
        ("job.started", {"worker": "host:123:abcdef", "attempt": 1}),
        ("authorisation", {"requester": "alice", "role": "write", "allowed": True}),
        ("agent.start", {"model": "claude-sonnet-4-5", "provider": "anthropic", "root": f"/w/{number}",
                         "repository": "acme/widgets", "sandbox": "bwrap", "tool_style": "native",
                         "budget": {"max_turns": 50, "max_cost_usd": 5.0}, "max_tokens": 8192, "system": SYSTEM,
                         "tools": TOOLS, "priced": True}),
        ("message.user", {"content": [{"type": "text", "text": "Your task:\n" + words(1_500)}]}),
    ]
    for turn in range(1, TURNS + 1):
        call = f"toolu_{number}_{turn}"
        command = "grep -rn " + words(60)
        events += [
            ("model.request", {"turn": turn, "max_tokens": 8192, "messages": 2 * turn, "context_tokens": 9000 * turn,
                               "stream": True}),
            ("model.response", {"turn": turn, "provider": "anthropic", "model": "claude-sonnet-4-5",
                                "stop_reason": "tool_use", "stop_details": None,
                                "content": [{"type": "text", "text": words(rng.randint(600, 1_400))},
                                            {"type": "tool_use", "id": call, "name": "bash",
                                             "input": {"command": command}}],
                                "usage": {"input_tokens": 1200, "output_tokens": 300, "cache_read_input_tokens": 9000,
                                          "cache_creation_input_tokens": 400}, "cost_usd": 0.0123,
                                "total_usage": {"input_tokens": 1200 * turn}, "total_cost_usd": 0.0123 * turn,
                                "duration_s": 2.5}),
            ("tool.call", {"id": call, "name": "bash", "input": {"command": command}}),
            ("tool.result", {"id": call, "name": "bash", "is_error": False, "content": words(rng.randint(200, 4_000)),
                             "duration_s": 0.05}),
        ]
    events += [
        ("agent.stop", {"stop": "completed", "summary": words(600), "turns": TURNS, "usage": {"input_tokens": 12000},
                        "cost_usd": 0.123, "duration_s": 60.2, "tool_calls": TURNS}),
        ("verify.tests", {"status": "passed", "command": "pytest -q", "output": words(2_000)}),
        ("git.pushed", {"branch": f"honk/{number}", "commit": uuid.uuid4().hex + "abcdefgh",
                        "files": ["src/widget.py", "tests/test_widget.py"], "seconds": 0.4, "diff": words(4_000)}),
        ("pull_request", {"number": number, "url": f"https://github.com/acme/widgets/pull/{number}", "opened": True,
                          "draft": False}),
        ("job.succeeded", {}),
    ]
    return events


def build(db: Database, jobs: int) -> tuple[float, int]:
    """Fill the database through the real store; returns (seconds, events)."""
    queue = JobQueue(db)
    started = time.perf_counter()
    ids: list[int] = []
    for first in range(0, jobs, 100):
        batch = [Incoming(f"bench-{n}", "issues", "labeled",
                          JobRequest(kind=JobKind.RESOLVE_ISSUE, repo="acme/widgets", number=n, requester="alice",
                                     installation_id=42, trigger={"delivery_id": f"bench-{n}", "event": "issues"}))
                 for n in range(first, min(first + 100, jobs))]
        ids += [answer.job_id for answer in queue.accept_deliveries(batch) if answer.job_id]
    for number, job_id in enumerate(ids):
        with db.session() as session:
            at = db.now(session)
            for step, (kind, data) in enumerate(run_events(number)):
                session.add(JobEvent(job_id=job_id, at=at + timedelta(milliseconds=step), kind=kind, data=data))
    with db.session() as session:  # finished long ago, for the retention pass
        session.execute(update(Job).values(status="succeeded", finished_at=db.now(session) - timedelta(days=400)))
        events = session.scalar(select(func.count()).select_from(EVENTS)) or 0
    return time.perf_counter() - started, events


def select_all(db: Database) -> list[str]:
    """The baseline: every row of the columns verify reads, keyset-paged like verify; returns the data texts."""
    texts: list[str] = []
    columns = (EVENTS.c.id, EVENTS.c.job_id, EVENTS.c.at, EVENTS.c.kind, cast(EVENTS.c.data, Text),
               EVENTS.c.prev_hash, EVENTS.c.digest, EVENTS.c.hash)
    page = select(*columns).where(EVENTS.c.id > bindparam("after")).order_by(EVENTS.c.id).limit(chain.PAGE)
    with db.snapshot() as conn:
        after = 0
        while rows := conn.execute(page, {"after": after}).all():
            texts += [row[4] for row in rows]
            after = rows[-1][0]
    return texts


def timed(fn: Callable[[], T], runs: int) -> tuple[float, T]:
    times: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def cli_verify(url: str, tmp: Path) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "HONK_", "ANTHROPIC_"))}
    env.update({"HONK_DATABASE_URL": url, "HONK_DATA_DIR": str(tmp / "data"), "HONK_LOG_LEVEL": "WARNING"})
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "app", "audit", "verify"], env=env, cwd=tmp, capture_output=True,
                          text=True, timeout=600)
    return time.perf_counter() - started, (done.stdout + done.stderr).strip() + f" [exit {done.returncode}]"


def measure(name: str, url: str, jobs: int, runs: int, tmp: Path) -> None:
    db = Database(url)
    try:
        db.migrate()
        build_s, events = build(db, jobs)
        print(f"\n== {name}: {jobs:,} jobs, {events:,} events, built in {build_s:.1f} s "
              f"({build_s / events * 1e6:.0f} µs per event through the store)")
        select_s, texts = timed(lambda: select_all(db), runs)
        sizes = [len(t) for t in texts]
        print(f"data per event: mean {statistics.mean(sizes):,.0f} B, median {statistics.median(sizes):,.0f} B, "
              f"total {sum(sizes) / 1e6:,.1f} MB")
        hash_s, _ = timed(lambda: [hashlib.sha256(t.encode()).digest() for t in texts], runs)
        verify_s, report = timed(lambda: chain.verify(db), runs)
        print(f"baseline SELECT of every row:   {select_s:6.3f} s")
        print(f"baseline SHA-256 alone:         {hash_s:6.3f} s")
        print(f"chain.verify (median of {runs}):   {verify_s:6.3f} s  = {verify_s / select_s:.2f}x the SELECT, "
              f"{events / verify_s:,.0f} events/s; intact={report.intact}, {report.events:,} events, "
              f"{report.jobs:,} jobs  (goal: < 2 s)")
        cli_s, said = cli_verify(url, tmp)
        print(f"`honk audit verify` end to end: {cli_s:6.3f} s  -> {said}")
        purge_started = time.perf_counter()
        purged = chain.purge(db, 30)
        purge_s = time.perf_counter() - purge_started
        after_s, report = timed(lambda: chain.verify(db), runs)
        print(f"retention purge: {purged.events:,} events of {purged.jobs:,} jobs, {purged.bytes / 1e6:,.1f} MB "
              f"dropped in {purge_s:.1f} s; verify afterwards: {after_s:.3f} s, intact={report.intact}, "
              f"{report.purged:,} purged events checked by their stored digests")
    finally:
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    print(f"honk audit verify benchmark: commit {commit.strip()} (plus uncommitted changes, if any), "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "sqlite"):
            measure("SQLite", f"sqlite:///{tmp}/bench.db", args.jobs, args.runs, Path(tmp))
        if args.only in (None, "postgres"):
            problem = postgres_problem(PG_ADMIN_URL)
            if problem:
                print(f"\n== PostgreSQL: skipped: {problem}")
                return
            admin = make_url(PG_ADMIN_URL)
            name = f"honk_bench_{uuid.uuid4().hex[:10]}"
            params = {"host": admin.host, "port": admin.port or 5432, "user": admin.username,
                      "password": admin.password, "dbname": admin.database, "autocommit": True}
            with psycopg.connect(**params) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            try:
                measure("PostgreSQL", admin.set(database=name).render_as_string(hide_password=False), args.jobs,
                        args.runs, Path(tmp))
            finally:
                with psycopg.connect(**params) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
