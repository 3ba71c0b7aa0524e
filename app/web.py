"""The HTTP face (CONTRACT section 2): webhooks, health, the status page and job JSON (the job pages are
app/pages.py, behind the same access rule).

The dashboard rule, in one place (`dashboard_refusal`), for every page and JSON that shows jobs:
- with HONK_DASHBOARD_TOKEN set, a bearer token or the login form's session cookie, else 401;
- without it, only while every socket Honk bound is loopback (learnt from the sockets themselves once uvicorn
  has bound them: `--host ""` or a hostname may mean every interface), and only for requests whose `Host`
  names loopback, so that a web page cannot reach the dashboard by rebinding its own DNS name to 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import time
from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
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
    async def metrics(request: Request) -> Response:
        # With a dashboard token the figures (repositories, requesters, spend) need it too; Prometheus sends it
        # as a bearer token (`authorization: {credentials: ...}` in its scrape config). Without one, /metrics
        # stays open as the CONTRACT has it.
        token = state.settings.honk_dashboard_token
        if token is not None and not has_token(request, token.get_secret_value()):
            return PlainTextResponse("/metrics needs the dashboard token: send Authorization: Bearer "
                                     "<HONK_DASHBOARD_TOKEN>\n", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        # Rendering queries the database: off the event loop, so webhooks keep answering meanwhile.
        body = await run_in_threadpool(app.state.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    # Imported here because app/pages.py builds on this module (the access rule, serialise_job).
    from app.pages import LoginThrottle
    from app.pages import router as pages_router
    app.include_router(pages_router)
    app.state.login_throttle = LoginThrottle()  # failed sign-ins per client, for this app

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
            return setup_flow.guarded_setup_page(request)
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
        if not listens_on_loopback(state):
            return HTTPException(403, "job pages are off while Honk listens beyond loopback; set "
                                      "HONK_DASHBOARD_TOKEN to turn them on")
        if not host_names_loopback(request.headers.get("host")):
            # DNS rebinding: a page on attacker.example whose name now resolves to 127.0.0.1 reaches a
            # loopback-only Honk from the victim's browser, but its requests still say `Host: attacker.example`.
            return HTTPException(403, "without HONK_DASHBOARD_TOKEN the job pages answer only requests addressed "
                                      "to this machine by a loopback name (localhost, 127.0.0.1 or [::1]), not "
                                      f"{_shown(request.headers.get('host'))}: open "
                                      f"{loopback_url(request)}, or set HONK_DASHBOARD_TOKEN")
        return None
    if has_token(request, token.get_secret_value()):
        return None
    return HTTPException(401, "this page needs the dashboard token (Authorization: Bearer <token>)",
                         headers={"WWW-Authenticate": "Bearer"})


def has_token(request: Request, token: str) -> bool:
    """The dashboard token as a bearer token, or a valid session cookie from the login form."""
    return bearer_matches(request, token) or session_valid(request.cookies.get(SESSION_COOKIE), token)


# Where Honk listens, and what a request says about it

_LOOPBACK_HOST = re.compile(r"(?:localhost|(?P<v4>127\.\d{1,3}\.\d{1,3}\.\d{1,3})|\[::1\])(?::\d{1,5})?",
                            re.IGNORECASE)


def host_names_loopback(host: str | None) -> bool:
    """Whether a `Host` header names loopback: `localhost`, `127.x.y.z` or `[::1]`, each with an optional port.
    Nothing else, not even a name that resolves to 127.0.0.1: that is what DNS rebinding relies on."""
    match = _LOOPBACK_HOST.fullmatch((host or "").strip())
    if match is None:
        return False
    return match["v4"] is None or all(int(part) <= 255 for part in match["v4"].split("."))


def is_loopback_name(host: str) -> bool:
    """Whether `--host` certainly means loopback without looking at what was bound: a loopback IP literal or
    `localhost`. "" (every interface, to uvicorn and asyncio) and other names are not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def sockets_are_loopback(addresses: Iterable[Any]) -> bool:
    """Whether every bound address (as `socket.getsockname()` gives it) is loopback; False for none at all.
    A Unix socket's path is not: who may connect to it is the file system's business, not ours."""
    seen = False
    for address in addresses:
        host = address[0] if isinstance(address, tuple) and address else None
        if not isinstance(host, str):
            return False
        try:
            if not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:  # "fe80::1%eth0": drop the zone
                return False
        except ValueError:
            return False
        seen = True
    return seen


def listens_on_loopback(state: HonkState) -> bool:
    """What the server actually bound, once it has said (app/cli.py); before that, the `--host` text, read
    strictly: "" and hostnames count as beyond loopback."""
    if state.bound_loopback is not None:
        return state.bound_loopback
    return is_loopback_name(state.listen_host)


def client_is_loopback(request: Request) -> bool:
    """A request from this machine, not relayed: the peer is a loopback address and no proxy header says the
    request came from elsewhere. (uvicorn already replaces the peer with X-Forwarded-For's client when the
    peer is a trusted local proxy; a proxy that sends only `Forwarded` or `X-Real-IP` is caught here.)"""
    if any(name in request.headers for name in ("forwarded", "x-forwarded-for", "x-real-ip")):
        return False
    peer = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(peer.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def loopback_url(request: Request) -> str:
    """This request's path on loopback, at the port it came in on: the address the loopback-only rules want.
    The local address the connection used when that is loopback (so [::1] for an IPv6-only Honk), else
    127.0.0.1."""
    server = request.scope.get("server")
    local, port = (server[0], server[1]) if isinstance(server, tuple | list) and len(server) > 1 else ("", None)
    try:
        address = ipaddress.ip_address(str(local).split("%", 1)[0])
        host = (f"[{address}]" if address.version == 6 else str(address)) if address.is_loopback else "127.0.0.1"
    except ValueError:
        host = "127.0.0.1"
    return f"http://{host}" + (f":{port}" if port else "") + request.url.path


def origin_of(url: str | None) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, lower-cased and without a default port, as browsers send
    `Origin`; None for anything else (including the opaque origin `null`)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host or any(c in host for c in "/\\@ "):
        return None
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def cross_origin_refusal(request: Request) -> str | None:
    """Why a state-changing form post is refused as coming from another site (CSRF), or None. The browser's
    `Origin` (else `Referer`) must be Honk's own origin as the browser addressed it (scheme and `Host`), or
    HONK_PUBLIC_URL's. A request with neither header (curl, scripts) is no browser acting for someone else."""
    claimed = request.headers.get("origin")
    header = "Origin"
    if claimed is None:
        claimed, header = request.headers.get("referer"), "Referer"
        if claimed is None:
            return None
    state: HonkState = request.app.state.honk
    allowed = {origin_of(f"{request.url.scheme}://{request.headers.get('host', '')}"),
               origin_of(state.settings.honk_public_url), origin_of(state.public_url)} - {None}
    if origin_of(claimed) in allowed:
        return None
    return f"this form was sent from another site ({header}: {_shown(claimed)}); use Honk's own pages"


def _shown(value: str | None, limit: int = 100) -> str:
    """Untrusted header text, quoted and cut short, for an error message."""
    if value is None:
        return "none"
    return repr(value if len(value) <= limit else value[:limit] + "…")


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

