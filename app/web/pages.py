"""The job pages (README, "Routes"): `/jobs`, every job newest first, filterable and paginated, and
`/jobs/{id}`, one job's trigger, timeline, transcript, verification, diff, pull request and cost. Plus the
login form that guards them when HONK_DASHBOARD_TOKEN is set.

Server-rendered with Jinja2, autoescaping everything: transcripts hold text written by strangers (issue text,
file contents, command output). The pages also run no script at all, and say so in their
Content-Security-Policy, so that a slip in escaping still could not run anything.

The login form is throttled per client (`LoginThrottle`: at most 10 failed sign-ins per 5 minutes, then 429
with Retry-After), and it and the logout form refuse posts from other sites by their `Origin`/`Referer`.
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.process import HonkState
from app.queue.db import Database
from app.queue.models import Job, JobEvent, JobStatus
from app.untyped import MAX_ID, as_dict, as_text
from app.web.auth import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    cross_origin_refusal,
    dashboard_access,
    dashboard_refusal,
    session_cookie,
    session_valid,
    token_matches,
)

TEMPLATES = Path(__file__).parent / "templates"
PER_PAGE = 50
MAX_PER_PAGE = 200
FOLD_LINES = 40  # longer outputs show this many lines and fold the rest
FOLD_CHARS = 6_000
MAX_FORM_BYTES = 16_384

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # Job URLs stay out of the logs of the sites they link to. Not "no-referrer": with it, browsers send
    # `Origin: null` on the pages' own form posts, which the login form's cross-site check must refuse.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter()


# Queries (read-only; the queue owns every write)

@dataclass
class JobRow:
    job: Job
    turns: int
    cost_usd: float | None
    duration_s: float | None


@dataclass
class JobList:
    rows: list[JobRow]
    total: int
    page: int
    per_page: int
    repositories: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def list_jobs(db: Database, *, status: str | None = None, repo: str | None = None, page: int = 1,
              per_page: int = PER_PAGE) -> JobList:
    """One page of jobs, newest first, with each job's model turns and cost summed over all its attempts."""
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    page = max(1, min(page, MAX_ID // per_page))  # the OFFSET must fit in 64 bits
    with db.session() as session:
        query = select(Job)
        if status:
            query = query.where(Job.status == status)
        if repo:
            query = query.where(Job.repo == as_text(repo))  # PostgreSQL refuses NUL even to compare with
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        jobs = list(session.scalars(query.order_by(Job.id.desc()).offset((page - 1) * per_page).limit(per_page)))
        spend = _spend(session, [job.id for job in jobs])
        now = db.now(session)
        repositories = list(session.scalars(select(Job.repo).distinct().order_by(Job.repo)))
    rows = [JobRow(job, *spend.get(job.id, (0, None)), duration_s=_duration(job, now)) for job in jobs]
    return JobList(rows, total, page, per_page, repositories)


def _spend(session: Session, job_ids: list[int]) -> dict[int, tuple[int, float | None]]:
    """Turns and cost per job, summed in the database from the model.response events."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(JobEvent.job_id, func.count(), func.sum(JobEvent.data["cost_usd"].as_float()))
        .where(JobEvent.job_id.in_(job_ids), JobEvent.kind == "model.response")
        .group_by(JobEvent.job_id)).all()
    return {job_id: (turns, cost) for job_id, turns, cost in rows}


def _duration(job: Job, now: datetime) -> float | None:
    if job.started_at is None:
        return None
    return ((job.finished_at or now) - job.started_at).total_seconds()


def load_job(state: HonkState, job_id: int) -> tuple[Job, list[JobEvent]] | None:
    job = state.queue.get(job_id)
    return None if job is None else (job, state.queue.events(job_id))


# What the job page shows, built from the audit trail

TRANSCRIPT_NOTES = {"model.retry", "model.more_room", "context.cleared", "sandbox.unsafe"}
TRANSCRIPT = {"agent.start", "message.user", "model.request", "model.response", "tool.call", "tool.result",
              "agent.stop", *TRANSCRIPT_NOTES}


def job_view(job: Job, events: list[JobEvent]) -> dict[str, Any]:
    summary = serialise_job(job, events)
    summary.pop("events")
    return {
        "job": summary,
        "trigger": trigger_view(job.payload or {}),
        "timeline": [timeline_entry(e) for e in events if e.kind not in TRANSCRIPT],
        "transcript": transcript(events),
        "verifications": [e.data for e in events if e.kind == "verify.tests"],
        "judgements": [e.data for e in events if e.kind == "judge.verdict"],
        "setups": [e.data for e in events if e.kind == "verify.setup"],
        "refusals": [r for e in events if e.kind == "guard.refused" for r in e.data.get("refusals") or []],
        "pushes": [e.data for e in events if e.kind == "git.pushed"],
        "pulls": [e.data for e in events if e.kind == "pull_request"],
    }


def trigger_view(payload: dict[str, Any]) -> dict[str, Any]:
    """Who asked, how, and where on GitHub (a link to the comment, review or issue)."""
    kind = payload.get("type") or ""
    subject = as_dict(payload.get("pull_request")) or as_dict(payload.get("issue"))
    said = as_dict(payload.get("comment")) or as_dict(payload.get("review"))
    how = {"label": f"added the label “{payload.get('label', '')}”", "issue_comment": "asked in a comment",
           "pr_comment": "asked in a comment on the pull request", "review": "asked in a review",
           "review_comment": "asked in a review comment",
           "command": f"gave the command “{payload.get('command', '')}”"}.get(kind, kind or "asked")
    return {"sender": as_dict(payload.get("sender")).get("login"), "how": how, "event": payload.get("event"),
            "action": payload.get("action"), "delivery": payload.get("delivery_id"),
            "title": subject.get("title"), "number": subject.get("number"),
            "subject_url": safe_url(subject.get("html_url")),
            "url": safe_url(said.get("html_url")) or safe_url(subject.get("html_url")),
            "body": said.get("body") if said else None}


def timeline_entry(event: JobEvent) -> dict[str, Any]:
    d = event.data
    what = {
        "job.queued": lambda: f"queued ({d.get('kind')}) for {d.get('requester')}",
        "job.started": lambda: f"attempt {d.get('attempt')} started on {d.get('worker')}",
        "job.retry": lambda: f"attempt {d.get('attempt')} failed, retrying in {d.get('retry_in_seconds')} s: "
                             f"{d.get('error')}",
        "job.succeeded": lambda: "succeeded",
        "job.failed": lambda: f"failed: {d.get('error')}",
        "job.reclaimed": lambda: f"worker {d.get('lost_worker')} stopped answering; back in the queue",
        "job.released": lambda: f"given back by {d.get('worker')}, which was stopping",
        "job.cancel_requested": lambda: "cancel requested",
        "job.cancelled": lambda: f"cancelled: {d.get('error')}",
        "authorisation": lambda: f"{d.get('requester')} has {d.get('role') or 'no'} access: "
                                 + ("allowed" if d.get("allowed") else "not allowed to ask Honk"),
        "workspace": lambda: f"workspace on branch {d.get('branch')}" + (" (continued)" if d.get("continued")
                                                                          else f" from {d.get('default_branch')}"),
        "verify.setup": lambda: "setup " + ("ran" if d.get("ok") else "failed"),
        "verify.tests": lambda: f"tests {str(d.get('status', '')).replace('_', ' ')}"
                                + (f": {d.get('command')}" if d.get("command") else f" ({d.get('reason')})"),
        "guard.refused": lambda: "refused to push: " + "; ".join(d.get("refusals") or []),
        "git.pushed": lambda: f"pushed {str(d.get('commit') or '')[:10]} to {d.get('branch')} "
                              f"({_plural(len(d.get('files') or []), 'file')})",
        "pull_request": lambda: ("opened" if d.get("opened") else "updated") + f" pull request #{d.get('number')}"
                                + (" (draft)" if d.get("draft") else ""),
    }.get(event.kind)
    text = what() if what else _compact(d)
    return {"at": event.at, "kind": event.kind, "text": text,
            "bad": event.kind in ("job.failed", "job.retry", "guard.refused", "job.cancelled")
            or (event.kind == "authorisation" and not d.get("allowed"))
            or (event.kind == "verify.tests" and d.get("status") == "failed")}


def transcript(events: list[JobEvent]) -> list[dict[str, Any]]:
    """The conversation in order: prompts, model turns (text, thinking), each tool call with its result."""
    entries: list[dict[str, Any]] = []
    calls: dict[tuple[int, str], dict[str, Any]] = {}
    attempt = 0
    for event in events:
        d, kind = event.data, event.kind
        if kind == "job.started":
            attempt = d.get("attempt") or attempt + 1
        elif kind == "agent.start":
            entries.append({"type": "start", "attempt": attempt, "at": event.at, "model": d.get("model"),
                            "budget": d.get("budget") or {}, "system": _text(d.get("system")),
                            "tools": [as_dict(t).get("name") for t in d.get("tools") or []],
                            "sandbox": d.get("sandbox"), "tool_style": d.get("tool_style")})
        elif kind == "message.user":
            entries.append({"type": "user", "text": "\n\n".join(_text(as_dict(b).get("text"))
                                                                for b in d.get("content") or [])})
        elif kind == "model.response":
            entries.append({"type": "model", "turn": d.get("turn"), "attempt": attempt,
                            "blocks": [_block(b) for b in d.get("content") or []
                                       if as_dict(b).get("type") != "tool_use"],
                            "stop_reason": d.get("stop_reason"), "usage": d.get("usage") or {},
                            "cost_usd": d.get("cost_usd"), "total_cost_usd": d.get("total_cost_usd"),
                            "duration_s": d.get("duration_s")})
        elif kind == "tool.call":
            entry = {"type": "tool", "name": d.get("name"), "summary": tool_summary(d.get("name"), d.get("input")),
                     "input": tool_input(d.get("input")), "result": None}
            calls[(attempt, str(d.get("id")))] = entry
            entries.append(entry)
        elif kind == "tool.result":
            result = {"content": _text(d.get("content")), "is_error": bool(d.get("is_error")),
                      "duration_s": d.get("duration_s")}
            entry = calls.get((attempt, str(d.get("id"))))
            if entry is None:  # a result whose call is not in the trail: show it on its own
                entry = {"type": "tool", "name": d.get("name"), "summary": d.get("name"), "input": []}
                entries.append(entry)
            entry["result"] = result
        elif kind == "agent.stop":
            entries.append({"type": "stop", **{k: d.get(k) for k in ("stop", "turns", "cost_usd", "duration_s",
                                                                      "budget", "error", "tool_calls")}})
        elif kind in TRANSCRIPT_NOTES:
            entries.append({"type": "note", "kind": kind, "text": _compact(d)})
    return entries


def tool_summary(name: Any, tool_input: Any) -> str:
    args = as_dict(tool_input)
    if name == "bash":
        command = _text(args.get("command")).strip().splitlines()
        return "$ " + (command[0][:160] + (" …" if len(command) > 1 or len(command[0]) > 160 else "")
                       if command else "(restart)" if args.get("restart") else "")
    if "command" in args and "path" in args:
        return f"{args['command']} {args['path']}"
    return str(name)


def tool_input(tool_input: Any) -> list[tuple[str, str]]:
    """The call's arguments as (name, text) pairs, strings shown as they are, anything else as JSON."""
    if not isinstance(tool_input, dict):
        return [("input", _text(tool_input))]
    return [(str(key), _text(value)) for key, value in tool_input.items()]


def _block(block: Any) -> dict[str, Any]:
    b = as_dict(block)
    kind = b.get("type")
    if kind == "text":
        return {"kind": "text", "text": _text(b.get("text"))}
    if kind == "thinking":
        return {"kind": "thinking", "text": _text(b.get("thinking"))}
    if kind == "redacted_thinking":
        return {"kind": "redacted_thinking", "text": "(thinking the API keeps encrypted)"}
    return {"kind": str(kind), "text": _text(b)}


# Template helpers

def fold(text: Any, lines: int = FOLD_LINES, chars: int = FOLD_CHARS) -> dict[str, Any]:
    """Split a long output into what shows and what folds away behind a <details>."""
    text = _text(text)
    head = "".join(text.splitlines(keepends=True)[:lines])[:chars]
    rest = text[len(head):]
    return {"head": head.removesuffix("\n"), "rest": rest, "hidden_lines": len(rest.splitlines())}


def diff_lines(diff: Any) -> list[tuple[str, str]]:
    """(css class, line) for a unified diff."""
    out = []
    for line in _text(diff).splitlines():
        if line.startswith(("diff --git", "+++", "---", "index ", "new file", "deleted file")):
            css = "file"
        elif line.startswith("@@"):
            css = "hunk"
        elif line.startswith("+"):
            css = "add"
        elif line.startswith("-"):
            css = "del"
        else:
            css = ""
        out.append((css, line))
    return out


def safe_url(url: Any) -> str | None:
    """Only http(s) URLs become links: a `javascript:` URL is escaped text but would still run when clicked."""
    if isinstance(url, str) and urlsplit(url).scheme in ("http", "https"):
        return url
    return None


def money(value: Any) -> str:
    if value is None:
        return "—"
    value = float(value)
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def tokens(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def share(value: Any) -> str:
    return "—" if value is None else f"{value:.0%}"


def seconds(value: Any) -> str:
    if value is None:
        return "—"
    total = float(value)
    if total < 60:
        return f"{total:.1f} s"
    minutes, secs = divmod(int(total), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def when(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.removesuffix("Z"))
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, datetime) else "—"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _compact(data: dict[str, Any], limit: int = 300) -> str:
    text = json.dumps(data, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + " …"


templates = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, lstrip_blocks=True)
templates.filters.update(money=money, tokens=tokens, share=share, seconds=seconds, when=when, fold=fold,
                         diff_lines=diff_lines, safe_url=safe_url)


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(signed_in=_signed_in(request), **context)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


# The job as JSON (`/api/jobs/{id}`)

def serialise_job(job: Job, events: list[JobEvent]) -> dict[str, Any]:
    result = job.result or {}
    end = job.finished_at
    per_turn = turn_figures(events)
    return {
        "id": job.id,
        "kind": job.kind,
        "subject": job.subject,
        "repo": job.repo,
        "number": job.number,
        "requester": job.requester,
        "status": job.status,
        # Who waits on it: "person" first; "background" (a campaign's repository) yields to it (README, "Campaigns").
        "priority": "background" if job.priority else "person",
        "run_after": _iso(job.run_after),  # when a queued job may next run: "retry at" after a wait for GitHub
        "outcome": result.get("outcome"),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "error": job.error,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(end),
        "duration_seconds": (end - job.started_at).total_seconds() if end and job.started_at else None,
        "cost_usd": result.get("cost_usd"),
        "turns": result.get("turns"),
        # Every model call of every attempt, and their sums (result's figures cover the last attempt only).
        "per_turn": per_turn,
        "totals": turn_totals(per_turn),
        "runs": run_totals(per_turn),  # the same sums per attempt, each with its prompt-cache share
        "result": result,
        "trigger": job.payload,
        "events": [{"at": _iso(e.at), "kind": e.kind, "data": e.data} for e in events],
    }


TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def turn_figures(events: list[JobEvent]) -> list[dict[str, Any]]:
    """One row per model response: which attempt and turn, its tokens, cost and time."""
    rows: list[dict[str, Any]] = []
    attempt = 0
    for event in events:
        if event.kind == "job.started":
            attempt = event.data.get("attempt") or attempt + 1
        elif event.kind == "model.response":
            data, usage = event.data, event.data.get("usage") or {}
            rows.append({"attempt": attempt, "turn": data.get("turn"), "at": _iso(event.at),
                         "stop_reason": data.get("stop_reason"),
                         **{name: int(usage.get(name) or 0) for name in TOKEN_FIELDS},
                         "cost_usd": float(data.get("cost_usd") or 0.0), "duration_s": data.get("duration_s")})
    return rows


def turn_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    totals = {"turns": len(rows), **{name: sum(row[name] for row in rows) for name in TOKEN_FIELDS},
              "cost_usd": round(sum(row["cost_usd"] for row in rows), 6),
              "duration_s": round(sum(row["duration_s"] or 0.0 for row in rows), 3)}
    return {**totals, "cache_share": cache_share(totals)}


def run_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`turn_totals` for each attempt (run) of the job, oldest first."""
    attempts = sorted({row["attempt"] for row in rows})
    return [{"attempt": a, **turn_totals([row for row in rows if row["attempt"] == a])} for a in attempts]


def cache_share(usage: dict[str, Any]) -> float | None:
    """The share of input tokens read from the prompt cache: cache_read / (input + cache_creation + cache_read);
    None without input."""
    read = usage.get("cache_read_input_tokens") or 0
    total = (usage.get("input_tokens") or 0) + (usage.get("cache_creation_input_tokens") or 0) + read
    return round(read / total, 4) if total else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


# Access

LOGIN_FAILURES_ALLOWED = 10  # failed sign-ins per client within the window; the next attempt gets 429
LOGIN_WINDOW_SECONDS = 300.0
LOGIN_CLIENTS_TRACKED = 10_000  # beyond this the client seen longest ago is forgotten: memory stays bounded


@dataclass
class LoginThrottle:
    """Failed sign-ins per client, in a sliding window. A client with `limit` failures in the last `window`
    seconds is refused, even with the right token, until the oldest of them leaves the window. Successful
    sign-ins are not counted. Kept in memory: a restart forgets it, and each web process counts its own."""

    limit: int = LOGIN_FAILURES_ALLOWED
    window: float = LOGIN_WINDOW_SECONDS
    max_clients: int = LOGIN_CLIENTS_TRACKED
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until `client` may try again, or None when it may now."""
        failures = self._recent(client)
        if failures is None or len(failures) < self.limit:
            return None
        return max(1, math.ceil(failures[0] + self.window - self.clock()))

    def failed(self, client: str) -> None:
        failures = self._recent(client)
        if failures is None:
            failures = self._failures[client] = deque(maxlen=self.limit)  # the newest `limit` decide
        failures.append(self.clock())
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def _recent(self, client: str) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures


def client_key(request: Request) -> str:
    """Who is signing in, for the throttle: the client's address (behind a local proxy, uvicorn takes it from
    X-Forwarded-For), an IPv6 client by its /64, which one machine usually holds whole."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is the IPv4 client 192.0.2.1
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _throttle(request: Request) -> LoginThrottle:
    app_state = request.app.state
    if not hasattr(app_state, "login_throttle"):  # an app assembled without create_app
        app_state.login_throttle = LoginThrottle()
    return app_state.login_throttle


def _cross_site(request: Request) -> Response | None:
    reason = cross_origin_refusal(request)
    if reason is None:
        return None
    return render(request, "message.html", 403, title="Not allowed", message=reason[0].upper() + reason[1:] + ".")


def _signed_in(request: Request) -> bool:
    token = _state(request).settings.honk_dashboard_token
    return token is not None and session_valid(request.cookies.get(SESSION_COOKIE), token.get_secret_value())


def _refusal(request: Request) -> Response | None:
    """None when the request may see the pages. A browser without credentials goes to the login form; a
    wrong bearer token gets 401, and pages switched off (beyond loopback, no token) get 403."""
    refusal = dashboard_refusal(request)
    if refusal is None:
        return None
    if refusal.status_code == 401 and "authorization" not in request.headers:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
    response = render(request, "message.html", refusal.status_code, title="Not allowed", message=refusal.detail)
    response.headers.update(refusal.headers or {})
    return response


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never `//elsewhere` or `https://elsewhere` (an open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/jobs"


def _state(request: Request) -> HonkState:
    return request.app.state.honk


# Routes

@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    if _state(request).settings.honk_dashboard_token is None:
        refusal = _refusal(request)  # no token: either open on loopback, or off
        return refusal or RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", next=_safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    if (cross_site := _cross_site(request)) is not None:
        return cross_site
    token = _state(request).settings.honk_dashboard_token
    body = await request.body()
    form = parse_qs(body[:MAX_FORM_BYTES].decode(errors="replace"))
    given, target = (form.get("token") or [""])[0], _safe_next((form.get("next") or [""])[0])
    if token is None:
        return _refusal(request) or RedirectResponse(target, status_code=303)
    throttle, client = _throttle(request), client_key(request)
    # Checked before the token, and whatever the token: a guesser who hits the right one while throttled
    # must not learn that it was right.
    wait = throttle.retry_after(client)
    if wait is not None:
        response = render(request, "login.html", 429, next=target,
                          error=f"Too many wrong tokens from your address: try again in {wait} seconds (Honk "
                                f"allows {throttle.limit} failed sign-ins per {_duration_words(throttle.window)}).")
        response.headers["Retry-After"] = str(wait)
        return response
    if not token_matches(given, token.get_secret_value()):
        throttle.failed(client)
        return render(request, "login.html", 401, next=target, error="That is not the dashboard token.")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, session_cookie(token.get_secret_value()), max_age=SESSION_SECONDS,
                        path="/", httponly=True, samesite="strict", secure=_https(request))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    if (cross_site := _cross_site(request)) is not None:  # another site must not sign you out either
        return cross_site
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_https(request))
    return response


@router.get("/jobs", response_class=HTMLResponse)
async def jobs_page(request: Request, status: str | None = None, repo: str | None = None, page: str | None = None,
                    per: str | None = None) -> Response:
    if (refusal := _refusal(request)) is not None:
        return refusal
    status = status if status in set(JobStatus) else None
    repo = as_text(repo)
    per_page = _positive(per, PER_PAGE, MAX_PER_PAGE)
    listing = await run_in_threadpool(list_jobs, _state(request).db, status=status, repo=repo or None,
                                      page=_positive(page, 1, MAX_ID), per_page=per_page)
    filters = {k: v for k, v in {"status": status, "repo": repo or None,
                                 "per": per_page if per_page != PER_PAGE else None}.items() if v}
    return render(request, "jobs.html", listing=listing, status=status, repo=repo or "", statuses=list(JobStatus),
                  page_url=lambda n: "/jobs?" + urlencode({**filters, "page": n}))


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: int) -> Response:
    if (refusal := _refusal(request)) is not None:
        return refusal
    found = await _find_job(request, job_id)
    if found is None:
        return render(request, "message.html", 404, title="No such job", message=f"There is no job {job_id}.")
    return render(request, "job.html", **job_view(*found))


@router.get("/api/jobs/{job_id}", dependencies=[Depends(dashboard_access)])
async def job_json(request: Request, job_id: int) -> JSONResponse:
    found = await _find_job(request, job_id)
    if found is None:
        raise HTTPException(404, f"there is no job {job_id}")
    return JSONResponse(serialise_job(*found))


async def _find_job(request: Request, job_id: int) -> tuple[Job, list[JobEvent]] | None:
    if not 1 <= job_id <= MAX_ID:  # no job has it, and a database driver cannot even send it
        return None
    return await run_in_threadpool(load_job, _state(request), job_id)


def _duration_words(seconds: float) -> str:
    minutes = seconds / 60
    if minutes >= 1 and minutes == int(minutes):
        return "minute" if minutes == 1 else f"{int(minutes)} minutes"
    return f"{seconds:g} seconds"


def _positive(value: str | None, default: int, maximum: int) -> int:
    """A whole number from 1 written in ASCII digits, `maximum` if it is bigger; anything else is `default`.
    (`str.isdigit` alone also takes "²", which `int` refuses, and any number of digits.)"""
    digits = value.lstrip("0") if value and value.isascii() and value.isdigit() else ""
    if not digits:
        return default
    return maximum if len(digits) > len(str(maximum)) else min(maximum, int(digits))


def _https(request: Request) -> bool:
    """Secure cookies when users reach Honk over https, directly or (per HONK_PUBLIC_URL) through a proxy."""
    public = _state(request).settings.honk_public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")
