"""`honk audit verify | export | purge`: the audit trail's hash chains checked, exported and trimmed.

- `verify [--job N]` checks every job's chain (app/queue/chain.py) and names each broken chain's first broken
  link; exit 0 when all are intact, 1 when one is not.
- `export [--since DATE] [--repo OWNER/NAME] [--output FILE]` writes JSON Lines, one object per job (oldest
  first), derived from the job's row and its events: who asked and through which channel, the request as it
  arrived, what the model was given, every model call (model, provider, tokens, cost), every tool call with its
  (redacted when recorded) result, the verifiers' and the judge's results, the commits pushed, the pull
  requests, the check runs, the cost; and the job's chain (its head, events, purged events, whether it is
  intact), so that a copy of the export can later show the database still holds the same history.
- `purge [--days N]` applies retention (HONK_AUDIT_RETENTION_DAYS by default) now.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.queue import chain
from app.queue.db import Database
from app.queue.models import Job, JobEvent
from app.settings import Settings
from app.untyped import as_dict

SHOW_BROKEN = 20  # broken chains listed by `verify`; the count covers the rest
JOBS_PER_QUERY = 200


def add_parser(commands: Any) -> None:
    """The `audit` subcommand's arguments, on the `honk` parser's subcommands."""
    audit = commands.add_parser("audit", help="check, export or trim the tamper-evident audit trail")
    actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = actions.add_parser("verify", help="check every job's hash chain; exit 1 naming the first broken link")
    verify.add_argument("--job", type=int, default=None, metavar="N", help="check job N only")
    export = actions.add_parser("export", help="write the audit trail as JSON Lines, one job per line")
    export.add_argument("--since", type=since_date, default=None, metavar="DATE",
                        help="jobs created on or after DATE (YYYY-MM-DD, or an ISO-8601 time; UTC)")
    export.add_argument("--repo", default=None, metavar="OWNER/NAME", help="jobs on this repository only")
    export.add_argument("--output", type=Path, default=None, metavar="FILE", help="write here (default stdout)")
    purge = actions.add_parser("purge", help="drop bulky transcripts older than the retention, keeping the chains")
    purge.add_argument("--days", type=int, default=None, metavar="N",
                       help="jobs finished more than N days ago (default HONK_AUDIT_RETENTION_DAYS)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a report, not the migration's chatter
    try:
        db.migrate()  # a database from before the chains gets them here (migration 0002)
        if args.audit_command == "verify":
            return _verify(db, args.job)
        if args.audit_command == "export":
            if args.output is None:
                count = export(db, sys.stdout, since=args.since, repo=args.repo)
            else:
                with args.output.open("w", encoding="utf-8") as out:
                    count = export(db, out, since=args.since, repo=args.repo)
            print(f"exported {count:,} job{'s' * (count != 1)}", file=sys.stderr)
            return 0
        days = args.days if args.days is not None else settings.honk_audit_retention_days
        if days is None or days < 1:
            print("honk audit purge: give --days N (at least 1) or set HONK_AUDIT_RETENTION_DAYS", file=sys.stderr)
            return 2
        done = chain.purge(db, days)
        print(f"purged {done.events:,} events of {done.jobs:,} jobs finished more than {days} days ago "
              f"({done.bytes:,} bytes of data); their hashes are kept, so their chains still verify")
        return 0
    finally:
        db.dispose()


def _verify(db: Database, job_id: int | None) -> int:
    report = chain.verify(db, job_id)
    if job_id is not None and report.jobs == 0:
        print(f"honk audit verify: there is no job {job_id}", file=sys.stderr)
        return 1
    purged = (f", {report.purged:,} of them purged by retention and checked by their stored digests"
              if report.purged else "")
    if report.intact:
        print(f"audit trail intact: {report.jobs:,} job{'s' * (report.jobs != 1)}, {report.events:,} events"
              f"{purged}; checked in {report.seconds:.2f} s")
        return 0
    print(f"audit trail BROKEN: first broken link at {report.broken[0]}")
    for broken in report.broken[1:SHOW_BROKEN]:
        print(f"  also broken: {broken}")
    if len(report.broken) > SHOW_BROKEN:
        print(f"  ... and {len(report.broken) - SHOW_BROKEN:,} more")
    print(f"{len(report.broken):,} of {report.jobs:,} jobs have a broken chain ({report.events:,} events{purged})")
    return 1


def since_date(text: str) -> datetime:
    """`--since`: a date (midnight UTC) or an ISO-8601 time (UTC unless it says otherwise), as a naive UTC time."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time())
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD) or ISO-8601 time: {text!r}") from None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


# Export


def export(db: Database, out: TextIO, *, since: datetime | None = None, repo: str | None = None) -> int:
    """Write one JSON object per job (oldest first) to `out`; returns how many. Reads one consistent snapshot."""
    count = 0
    for record in records(db, since=since, repo=repo):
        out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        count += 1
    return count


def records(db: Database, *, since: datetime | None = None, repo: str | None = None) -> Iterator[dict[str, Any]]:
    with db.snapshot() as conn, Session(conn) as session:
        after = 0
        while True:
            query = select(Job).where(Job.id > after).order_by(Job.id).limit(JOBS_PER_QUERY)
            if since is not None:
                query = query.where(Job.created_at >= since)
            if repo is not None:
                query = query.where(Job.repo == repo)
            jobs = list(session.scalars(query))
            if not jobs:
                return
            after = jobs[-1].id
            events: dict[int, list[JobEvent]] = {job.id: [] for job in jobs}
            for e in session.scalars(select(JobEvent).where(JobEvent.job_id.in_(list(events)))
                                     .order_by(JobEvent.job_id, JobEvent.id)):
                events[e.job_id].append(e)
            for job in jobs:
                yield job_record(job, events[job.id])
            session.expunge_all()  # a page at a time in memory


def job_record(job: Job, events: list[JobEvent]) -> dict[str, Any]:
    """One job's line of the export."""
    payload = job.payload if isinstance(job.payload, dict) else {}
    record: dict[str, Any] = {
        "job": job.id, "kind": job.kind, "repo": job.repo, "number": job.number, "subject": job.subject,
        "status": job.status, "attempts": job.attempts, "error": job.error, "result": job.result,
        "created_at": _time(job.created_at), "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at),
        "requester": job.requester, "channel": payload.get("channel") or "github",
        "installation_id": job.installation_id, "delivery_id": job.delivery_id,
        "request": payload,  # the request as it arrived: the trigger's facts (event, comment, issue...)
        "task": [], "context": [], "messages": [], "model_calls": [], "tool_calls": [], "runs": [],
        "verifiers": [], "judge": [], "commits": [], "pull_requests": [], "checks": [], "authorisation": [],
        "ci": [], "cost_usd": 0.0,
    }
    model: str | None = None
    provider: str | None = None
    await_task = False
    calls: dict[tuple[int, str], dict[str, Any]] = {}
    attempt = 0
    for e in events:
        d = e.data if isinstance(e.data, dict) else {}
        at, kind = _time(e.at), e.kind
        purged = {"purged": d["purged"]} if isinstance(d.get("purged"), dict) else {}
        if kind == "job.started":
            attempt = d.get("attempt") or attempt + 1
        elif kind == "agent.start":
            model, provider = d.get("model"), d.get("provider")
            record["context"].append({"at": at, "attempt": attempt, "model": model, "provider": provider,
                                      "repository": d.get("repository"), "sandbox": d.get("sandbox"),
                                      "budget": d.get("budget"), "system": d.get("system"),
                                      "tools": [t.get("name") for t in d.get("tools") or [] if isinstance(t, dict)],
                                      "task": None, **purged})
            await_task = True
        elif kind == "message.user":
            text = "\n\n".join(str(b.get("text", "")) for b in d.get("content") or [] if isinstance(b, dict))
            if await_task and record["context"]:
                record["context"][-1]["task"] = text if not purged else None
                record["task"].append(text if not purged else None)
                await_task = False
            else:
                record["messages"].append({"at": at, "text": text if not purged else None, **purged})
        elif kind == "model.fallback":
            to = as_dict(d.get("to"))
            provider, model = to.get("provider", provider), to.get("model", model)
            record["model_calls"].append({"at": at, "role": "fallback", "from": d.get("from"), "to": to,
                                          "error": d.get("error")})
        elif kind == "model.response":
            record["model_calls"].append(_model_call(at, "agent", d, d.get("model") or model,
                                                     d.get("provider") or provider, purged))
        elif kind == "judge.verdict":
            record["judge"].append({"at": at, **d})
            record["model_calls"].append(_model_call(at, "judge", d, d.get("model"), d.get("provider"), purged))
        elif kind == "judge.request":
            record["judge"].append({"at": at, "kind": kind, **d})
        elif kind == "tool.call":
            entry = {"at": at, "id": d.get("id"), "name": d.get("name"), "input": d.get("input"), "result": None,
                     "is_error": None, "duration_s": None, **purged}
            calls[(attempt, str(d.get("id")))] = entry
            record["tool_calls"].append(entry)
        elif kind == "tool.result":
            found = calls.get((attempt, str(d.get("id"))))
            if found is None:
                found = {"at": at, "id": d.get("id"), "name": d.get("name"), "input": None}
                record["tool_calls"].append(found)
            found.update(result=d.get("content"), is_error=d.get("is_error"), duration_s=d.get("duration_s"))
            if purged:
                found["result_purged"] = purged["purged"]
        elif kind == "agent.stop":
            record["runs"].append({"at": at, **d})
        elif kind.startswith("verify."):
            record["verifiers"].append({"at": at, "kind": kind, **d})
        elif kind == "git.pushed":
            record["commits"].append({"at": at, **d})
        elif kind == "pull_request":
            record["pull_requests"].append({"at": at, **d})
        elif kind.startswith("check_run."):
            record["checks"].append({"at": at, "kind": kind, **d})
        elif kind == "authorisation":
            record["authorisation"].append({"at": at, **d})
        elif kind.startswith("ci."):
            record["ci"].append({"at": at, "kind": kind, **d})
    record["cost_usd"] = round(sum(c.get("cost_usd") or 0.0 for c in record["model_calls"]), 6)
    check = chain.check_events(job.id, job.chain_head, events)
    record["chain"] = {"head": events[-1].hash if events else None, "events": check.events, "purged": check.purged,
                       "intact": check.broken is None, "broken": str(check.broken) if check.broken else None}
    record["events"] = [{"id": e.id, "at": _time(e.at), "kind": e.kind, "hash": e.hash} for e in events]
    return record


def _model_call(at: str | None, role: str, d: dict[str, Any], model: Any, provider: Any,
                purged: dict[str, Any]) -> dict[str, Any]:
    usage = as_dict(d.get("usage"))
    return {"at": at, "role": role, "turn": d.get("turn"), "model": model, "provider": provider,
            "stop_reason": d.get("stop_reason"), "input_tokens": usage.get("input_tokens"),
            "output_tokens": usage.get("output_tokens"),
            "cache_read_input_tokens": usage.get("cache_read_input_tokens"),
            "cache_creation_input_tokens": usage.get("cache_creation_input_tokens"),
            "cost_usd": d.get("cost_usd"), "duration_s": d.get("duration_s"), **purged}


def _time(moment: datetime | None) -> str | None:
    return chain.at_text(moment) if moment is not None else None
