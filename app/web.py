"""The HTTP face (CONTRACT section 2): webhooks, health, the status page and job JSON."""

from __future__ import annotations

import hmac
import ipaddress
from datetime import datetime
from html import escape
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from app import webhooks
from app.models import Job, JobEvent
from app.state import HonkState


def create_app(state: HonkState) -> FastAPI:
    app = FastAPI(title="Honk", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.honk = state
    app.include_router(webhooks.router)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if await run_in_threadpool(state.db.ping):
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "detail": "the database is not answering"},
                            status_code=503)

    @app.get("/", response_class=HTMLResponse)
    async def home() -> HTMLResponse:
        missing = state.settings.missing_github()
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


def dashboard_access(request: Request) -> None:
    """Job pages show code and transcripts: they need HONK_DASHBOARD_TOKEN, or a loopback-only Honk."""
    state: HonkState = request.app.state.honk
    token = state.settings.honk_dashboard_token
    if token is None:
        if _is_loopback(state.listen_host):
            return
        raise HTTPException(403, "job pages are off while Honk listens beyond loopback; set "
                                 "HONK_DASHBOARD_TOKEN to turn them on")
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                          token.get_secret_value().encode()):
        return
    raise HTTPException(401, "this page needs the dashboard token (Authorization: Bearer <token>)",
                        headers={"WWW-Authenticate": "Bearer"})


def serialise_job(job: Job, events: list[JobEvent]) -> dict[str, Any]:
    result = job.result or {}
    end = job.finished_at
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
        "result": result,
        "trigger": job.payload,
        "events": [{"at": _iso(e.at), "kind": e.kind, "data": e.data} for e in events],
    }


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
