"""Linking a Slack user to a GitHub login (CONTRACT section 8): `GET /slack/link` and `GET /auth/github/callback`.

1. The SLACK job answers an unlinked user with `linking.link_url(...)`: `/slack/link?state=...`, a state signed for
   that Slack user and workspace, good for ten minutes.
2. `/slack/link` checks the state and shows who will be linked, with one "Continue to GitHub" button (a GET form to
   GitHub's authorization page). The page never redirects by itself: a link someone else made and slipped to a
   victim would otherwise tie the victim's GitHub account to the other person's Slack user (link CSRF) without the
   victim seeing it; here the victim reads whose Slack account it is and has to click.
3. GitHub sends the browser to `/auth/github/callback?code=...&state=...`: the state is checked again and its nonce
   used up (`SlackStore.use_nonce`: single use, in the database, so every web process agrees), the code becomes
   the GitHub login (`linking.identify`: the user token is used for one `GET /user` and revoked; it is never stored,
   logged or shown), and the link is stored. The user gets a page saying so and, best effort, a DM in Slack.

Every refusal is a 400 page saying why (a changed or expired link, one used before, GitHub's `error=access_denied`,
a code GitHub refused); a GitHub that cannot be reached is a 502; Slack or linking not configured a 404.

These pages are public: the dashboard token does not guard them (people follow them from Slack, not signed in to
Honk), the signed single-use state does. They keep a Host rule (app/web/auth.py's DNS-rebinding defence): they
answer only at HONK_PUBLIC_URL's host (where the links and GitHub's redirect point) or at a loopback name. They run no
script, cannot be framed, send no referrer and are never cached. The first-run `/setup/callback` is another route.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from app.process import HonkState
from app.queue.slack import SlackStore
from app.settings import Settings
from app.slack import blocks, linking
from app.slack.client import SlackClient, SlackError
from app.web.auth import host_names_loopback, origin_of
from app.web.pages import templates

log = logging.getLogger("honk.slack.link")
router = APIRouter()

NAME_TIMEOUT = 2  # seconds the confirmation page waits for Slack to name the user; else it shows the ids


@router.get(linking.LINK_PATH, response_class=HTMLResponse)
async def link_page(request: Request, state: str = "") -> HTMLResponse:
    """The confirmation page: whose Slack account, which workspace, and the button to GitHub."""
    honk: HonkState = request.app.state.honk
    settings = honk.settings
    refusal = _refusal(request, honk)
    if refusal is not None:
        return refusal
    try:
        link = linking.read_state(state, linking.state_secret(settings), time.time())
        authorize = linking.authorize_url(settings, state, linking.redirect_uri(settings))
    except linking.LinkError as exc:
        return _problem(exc, settings)
    action, fields = _form(authorize)
    who = await _slack_name(settings, link.user_id)
    return _page("slack_link.html", 200, settings, title="Link your GitHub account", user_id=link.user_id,
                 team_id=link.team_id, who=who, action=action, fields=fields,
                 minutes=max(1, int((link.expires - time.time()) // 60)))


@router.get(linking.CALLBACK_PATH, response_class=HTMLResponse)
async def github_callback(request: Request, code: str = "", state: str = "", error: str = "") -> HTMLResponse:
    """GitHub's return: the state (once), the code to a login, the link stored."""
    honk: HonkState = request.app.state.honk
    settings = honk.settings
    refusal = _refusal(request, honk)
    if refusal is not None:
        return refusal
    try:
        secret = linking.state_secret(settings)
        if error:  # the user cancelled on GitHub, or GitHub refused: the state stays usable for another try
            raise linking.callback_error(error[:100], _redirect_uri_or_empty(settings))
        if not state or not code:
            raise linking.LinkError("GitHub's answer lacks its code or state. Ask Honk in Slack again for a new "
                                    "link.", "bad_callback")
        link = linking.read_state(state, secret, time.time())
        expires = datetime.fromtimestamp(link.expires, UTC).replace(tzinfo=None)
        store = SlackStore(honk.db)
        if not await run_in_threadpool(store.use_nonce, link.nonce, expires):
            raise linking.LinkError("This link was used already: each link works once. Ask Honk in Slack again for "
                                    "a new one.", "used")
        identity = await linking.identify(settings, code, linking.redirect_uri(settings))
        await run_in_threadpool(store.link, link.team_id, link.user_id, identity.login, identity.id)
    except linking.LinkError as exc:
        return _problem(exc, settings)
    log.info("linked Slack user %s of %s to GitHub %s", link.user_id, link.team_id, identity.login)
    page = _page("slack_linked.html", 200, settings, title="Linked", user_id=link.user_id, team_id=link.team_id,
                 login=identity.login)
    page.background = BackgroundTask(_tell_in_slack, settings, link.user_id, identity.login)
    return page


# ------------------------------------------------------------------------------------------------ pieces


def _refusal(request: Request, honk: HonkState) -> HTMLResponse | None:
    """The Host rule: HONK_PUBLIC_URL's host (or this run's public address), or a loopback name."""
    host = request.headers.get("host", "")
    if host_names_loopback(host):
        return None
    for public in (honk.settings.honk_public_url, honk.public_url):
        if public and origin_of(f"{urlsplit(public).scheme}://{host}") == origin_of(public):
            return None
    shown = host if len(host) <= 100 else host[:100] + "…"
    where = honk.settings.honk_public_url or "Honk's public address (HONK_PUBLIC_URL)"
    return _page("slack_link.html", 400, honk.settings, title="Wrong address",
                 problem=f"This page answers only at {where}, not at {shown!r}. Open the link Honk gave you in "
                         f"Slack as it is.")


def _problem(error: linking.LinkError, settings: Settings) -> HTMLResponse:
    status = {"not_configured": 404, "github_http": 502, "github_unreachable": 502}.get(error.code, 400)
    return _page("slack_link.html", status, settings, title="Nothing was linked", problem=str(error),
                 code=error.code)


def _redirect_uri_or_empty(settings: Settings) -> str:
    try:
        return linking.redirect_uri(settings)
    except linking.LinkError:
        return ""


def _form(url: str) -> tuple[str, list[tuple[str, str]]]:
    """A GET form's action and hidden fields for `url`: a browser drops the action's own query string and sends
    the form's fields instead, so the query goes in as fields."""
    parts = urlsplit(url)
    return parts._replace(query="", fragment="").geturl(), parse_qsl(parts.query, keep_blank_values=True)


async def _slack_name(settings: Settings, user_id: str) -> str:
    """The Slack user's name as people see it, or "" when Slack does not say in time."""
    try:
        client = SlackClient.for_settings(settings, retries=0, timeout=NAME_TIMEOUT)
        user = await client.user(user_id)
    except (SlackError, OSError, TimeoutError) as exc:
        log.debug("could not name Slack user %s: %s", user_id, exc)
        return ""
    profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
    for name in (profile.get("display_name"), profile.get("real_name"), user.get("real_name"), user.get("name")):
        if isinstance(name, str) and name.strip():
            return name.strip()[:100]
    return ""


async def _tell_in_slack(settings: Settings, user_id: str, login: str) -> None:
    """The DM that confirms the link in Slack; best effort, after the page went out."""
    try:
        message = blocks.linked(login)
        await SlackClient.for_settings(settings, retries=1).post(user_id, message.blocks, message.text)
    except (SlackError, OSError, TimeoutError) as exc:
        log.warning("linked %s, but could not tell Slack user %s: %s", login, user_id, exc)


def _page(name: str, status: int, settings: Settings, **context: Any) -> HTMLResponse:
    """A public page: no script, no framing (the button must be clicked by whoever reads it), no referrer (the
    callback's address holds GitHub's code), never cached. Its one form may go to GitHub only."""
    github = origin_of(linking.web_root(settings.github_api_url)) or ""
    headers = {"Content-Security-Policy": f"default-src 'none'; style-src 'unsafe-inline'; form-action 'self' "
                                          f"{github}; frame-ancestors 'none'; base-uri 'none'",
               "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
               "Cache-Control": "no-store"}
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status, headers=headers)
