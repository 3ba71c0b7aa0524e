"""The web app: one FastAPI application with every route (README, "Routes"): the webhook receiver
(app/intake/webhooks.py), the first-run setup (setup_flow.py), the job pages and their JSON (pages.py, behind
the rule in auth.py), the spending page (spend.py), Slack's requests (app/intake/slack.py) and the pages that link
a Slack user to a GitHub login (slack_link.py), `/metrics` (metrics.py), `/healthz` and the home page."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from app.intake import slack, webhooks
from app.intake.writer import DeliveryWriter
from app.process import HonkState
from app.web import campaigns, pages, setup_flow, slack_link, spend
from app.web.auth import has_token
from app.web.metrics import CONTENT_TYPE, Metrics


def create_app(state: HonkState) -> FastAPI:
    app = FastAPI(title="Honk", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.honk = state
    app.state.metrics = Metrics(state.db)  # one registry per app; the webhook route counts into it
    app.state.login_throttle = pages.LoginThrottle()  # failed sign-ins per client, for this app
    app.state.deliveries = DeliveryWriter(state.queue)  # the webhook route's group commit
    app.include_router(webhooks.router)
    app.include_router(setup_flow.router)
    app.include_router(pages.router)
    app.include_router(spend.router)  # /spend and /api/spend, protected like the job pages
    app.include_router(campaigns.router)  # /campaigns, /api/campaigns: protected like the job pages
    app.include_router(slack.router)  # POST /api/slack/events: 404 unless Slack is configured
    app.include_router(slack_link.router)  # /slack/link, /auth/github/callback: public, state-guarded

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        # With a dashboard token the figures (repositories, requesters, spend) need it too; Prometheus sends it
        # as a bearer token (`authorization: {credentials: ...}` in its scrape config). Without one, /metrics
        # stays open.
        token = state.settings.honk_dashboard_token
        if token is not None and not has_token(request, token.get_secret_value()):
            return PlainTextResponse("/metrics needs the dashboard token: send Authorization: Bearer "
                                     "<HONK_DASHBOARD_TOKEN>\n", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        # Rendering queries the database: off the event loop, so webhooks keep answering meanwhile.
        body = await run_in_threadpool(app.state.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        if await run_in_threadpool(state.db.ping):
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable", "detail": "the database is not answering"},
                            status_code=503)

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> HTMLResponse:
        if state.settings.missing_github():  # first run: offer to register the App (never once one is configured)
            return setup_flow.guarded_setup_page(request)
        depth = await run_in_threadpool(_depth_or_none, state)
        return pages.render(request, "home.html", depth=None if depth is None else sorted(depth.items()))

    return app


def _depth_or_none(state: HonkState) -> dict[str, int] | None:
    try:
        return state.queue.depth()
    except Exception:
        return None
