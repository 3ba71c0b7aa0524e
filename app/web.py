"""The HTTP face (CONTRACT section 2): webhooks, health, the status page and job JSON (the job pages are
app/pages.py, behind the same access rule)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from datetime import datetime
from html import escape
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from app import setup_flow, webhooks
from app.metrics import CONTENT_TYPE, Metrics
from app.models import Job, JobEvent
from app.state import HonkState


def create_app(state: HonkState) -> FastAPI:
    app = FastAPI(title="Honk", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.honk = state
    app.state.metrics = Metrics(state.db)  # one registry per app; the webhook route counts into it
    app.include_router(webhooks.router)
    app.include_router(setup_flow.router)

    @app.get("/metrics")
    async def metrics() -> Response:
        # Rendering queries the database: off the event loop, so webhooks keep answering meanwhile.
        body = await run_in_threadpool(app.state.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    # Imported here because app/pages.py builds on this module (the access rule, serialise_job).
    from app.pages import router as pages_router
    app.include_router(pages_router)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if await run_in_threadpool(state.db.ping):
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "detail": "the database is not answering"},
                            status_code=503)

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> HTMLResponse:
        missing = state.settings.missing_github()
        if missing:  # first run: offer to register the App (the page never shows once one is configured)
            return setup_flow.setup_page(request)
        depth = await run_in_threadpool(_depth_or_none, state)
        rows = "".join(f"<li>{escape(name)}</li>" for name in missing)
        config = (f"<p><strong>Honk cannot act on GitHub yet.</strong> Set these variables (in the environment "
                  f"or <code>.env</code>) and restart:</p><ul>{rows}</ul>" if missing
                  else "<p>The GitHub App is configured.</p>")
        queue = ("<p>The database is not answering.</p>" if depth is None else
                 "<p>Jobs: " + (", ".join(f"{escape(k)} {v}" for k, v in sorted(depth.items())) or "none yet")
                 + "</p>")
        return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'><title>Honk</title></head>"
                            f"<body><h1>Honk</h1>{config}{queue}</body></html>")

    @app.get("/api/jobs/{job_id}", dependencies=[Depends(dashboard_access)])
    async def job_json(job_id: int) -> JSONResponse:
        job = await run_in_threadpool(state.queue.get, job_id)
        if job is None:
            raise HTTPException(404, f"there is no job {job_id}")
        events = await run_in_threadpool(state.queue.events, job_id)
        return JSONResponse(serialise_job(job, events))

    return app


SESSION_COOKIE = "honk_session"
SESSION_SECONDS = 7 * 24 * 3600


def dashboard_access(request: Request) -> None:
    """Job pages show code and transcripts: they need HONK_DASHBOARD_TOKEN, or a loopback-only Honk."""
    refusal = dashboard_refusal(request)
    if refusal is not None:
        raise refusal


def dashboard_refusal(request: Request) -> HTTPException | None:
    """Why this request may not see the job pages (403: they are off; 401: no valid token), or None.
    With a token set, either `Authorization: Bearer <token>` or the session cookie of the login form will do."""
    state: HonkState = request.app.state.honk
    token = state.settings.honk_dashboard_token
    if token is None:
        if _is_loopback(state.listen_host):
            return None
        return HTTPException(403, "job pages are off while Honk listens beyond loopback; set "
                                  "HONK_DASHBOARD_TOKEN to turn them on")
    secret = token.get_secret_value()
    if bearer_matches(request, secret) or session_valid(request.cookies.get(SESSION_COOKIE), secret):
        return None
    return HTTPException(401, "this page needs the dashboard token (Authorization: Bearer <token>)",
                         headers={"WWW-Authenticate": "Bearer"})


def bearer_matches(request: Request, token: str) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token_matches(value.strip(), token)


def token_matches(given: str, token: str) -> bool:
    # Compare digests so that the comparison's time depends on neither the token nor the guess's length.
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(token.encode()).digest())


def session_cookie(token: str, now: float | None = None) -> str:
    """A login session: its expiry and an HMAC of it keyed by the token. The cookie never holds the token
    itself, expires on its own, and every session ends when the token changes."""
    expires = int((time.time() if now is None else now) + SESSION_SECONDS)
    return f"{expires}.{_session_mac(token, expires)}"


def session_valid(value: str | None, token: str, now: float | None = None) -> bool:
    expires, _, mac = (value or "").partition(".")
    if not expires.isdigit() or int(expires) <= (time.time() if now is None else now):
        return False
    return hmac.compare_digest(mac.encode(), _session_mac(token, int(expires)).encode())


def _session_mac(token: str, expires: int) -> str:
    return hmac.new(token.encode(), f"honk-dashboard-session:{expires}".encode(), hashlib.sha256).hexdigest()


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
    return {"turns": len(rows), **{name: sum(row[name] for row in rows) for name in TOKEN_FIELDS},
            "cost_usd": round(sum(row["cost_usd"] for row in rows), 6),
            "duration_s": round(sum(row["duration_s"] or 0.0 for row in rows), 3)}


def _depth_or_none(state: HonkState) -> dict[str, int] | None:
    try:
        return state.queue.depth()
    except Exception:
        return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
