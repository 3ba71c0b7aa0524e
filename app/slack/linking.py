"""Linking a Slack user to a GitHub login, through the GitHub App's user authorization (OAuth's web flow).

1. Honk answers an unlinked Slack user with `link_url(settings, make_state(...))`: `GET /slack/link?state=...`.
2. That route sends the browser to `authorize_url(settings, state, redirect_uri(settings))` on GitHub.
3. GitHub sends it back to `GET /auth/github/callback?code=...&state=...`; the route checks the state with
   `read_state`, *records its nonce* and refuses a nonce seen before (this module keeps no store: single use is
   the caller's, in its database, until `expires`), then calls `identify(settings, code, redirect_uri)`.
4. `identify` exchanges the code for a user token, reads `GET /user` with it, and revokes it: the token is used
   for that one request, never stored, logged or returned. Honk keeps only the login and its id.

The state is `base64url(json).base64url(hmac_sha256)`: bound to the Slack team and user, expiring (`ttl`,
ten minutes by default, as GitHub's codes), unforgeable without the secret (`state_secret`: derived from
SLACK_SIGNING_SECRET, so no new setting). It carries no secret itself and may appear in URLs and logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from app.settings import Settings, github_web_root
from app.untyped import as_dict, as_id, as_str

LINK_PATH = "/slack/link"
CALLBACK_PATH = "/auth/github/callback"
STATE_TTL = 600  # seconds a link stays good: as long as GitHub's authorization codes
_STATE_CONTEXT = b"honk slack link state v1"
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_TIMEOUT = httpx.Timeout(15.0)
_API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}

# GitHub's error codes of the token exchange and the callback, in words for the person linking.
_SENTENCES = {
    "bad_verification_code": "GitHub did not accept the sign-in code: it was used already or has expired. Ask "
                             "Honk in Slack again for a new link.",
    "incorrect_client_credentials": "Honk's GitHub App credentials are wrong (GITHUB_CLIENT_ID or "
                                    "GITHUB_CLIENT_SECRET); tell whoever runs Honk.",
    "redirect_uri_mismatch": "GitHub refused Honk's callback address: the GitHub App's settings must list "
                             "{redirect} as a callback URL; tell whoever runs Honk.",
    "unverified_user_email": "GitHub needs the email address of your account verified first; verify it and try "
                             "again.",
    "access_denied": "The authorization was cancelled on GitHub, so nothing was linked.",
    "application_suspended": "Honk's GitHub App is suspended on GitHub; tell whoever runs Honk.",
}


class LinkError(Exception):
    """A link that cannot be made: `code` names why (`tampered`, `expired`, GitHub's error codes, `github_http`,
    `github_unreachable`, `not_configured`); the message is a sentence for the person linking."""

    def __init__(self, message: str, code: str = "link_failed") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class LinkState:
    """Who asked for a link: the Slack team and user; `nonce` to record for single use; `expires` (epoch s)."""

    team_id: str
    user_id: str
    nonce: str
    expires: float


@dataclass(frozen=True)
class GitHubIdentity:
    login: str
    id: int


# ------------------------------------------------------------------------------------------------ the state


def state_secret(settings: Settings) -> bytes:
    """The key of link states: derived from SLACK_SIGNING_SECRET (its own purpose, so a state's MAC is never
    a valid Slack signature or the other way round)."""
    if settings.slack_signing_secret is None or not settings.slack_signing_secret.get_secret_value():
        raise LinkError("Slack is not configured: set SLACK_SIGNING_SECRET.", "not_configured")
    key = settings.slack_signing_secret.get_secret_value().encode()
    return hmac.new(key, _STATE_CONTEXT, hashlib.sha256).digest()


def make_state(team_id: str, user_id: str, secret: bytes, now: float, ttl: float = STATE_TTL) -> str:
    """A signed state for `user_id` of `team_id`, good until `now + ttl` (epoch seconds)."""
    if not secret:
        raise ValueError("the state secret is empty")
    payload = {"t": team_id, "u": user_id, "n": secrets.token_urlsafe(16), "e": int(now + ttl)}
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_b64(_mac(secret, body))}"


def read_state(state: str, secret: bytes, now: float) -> LinkState:
    """The state's contents if Honk signed it with `secret` and it has not expired; else `LinkError` with code
    `tampered` or `expired`. It does not know whether the state was used before: the caller records `nonce`."""
    tampered = LinkError("This link is not valid: it was changed, or Honk did not make it. Ask Honk in Slack "
                         "again for a new link.", "tampered")
    body, dot, mac = state.partition(".")
    if not dot or not body or not mac or len(state) > 1024:
        raise tampered
    try:
        given = _unb64(mac)
    except ValueError:
        raise tampered from None
    if not hmac.compare_digest(given, _mac(secret, body)):
        raise tampered
    try:
        payload = as_dict(json.loads(_unb64(body)))
    except ValueError:
        raise tampered from None
    team, user, nonce, expires = (as_str(payload.get("t")), as_str(payload.get("u")), as_str(payload.get("n")),
                                  payload.get("e"))
    if not (team and user and nonce) or type(expires) is not int:
        raise tampered
    if now >= expires:
        raise LinkError("This link has expired (links work for 10 minutes). Ask Honk in Slack again for a new one.",
                        "expired")
    return LinkState(team, user, nonce, float(expires))


def _mac(secret: bytes, body: str) -> bytes:
    return hmac.new(secret, _STATE_CONTEXT + b"." + body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    # Strictly the URL-safe alphabet: Python's decoder would skip other characters, and one state must have one
    # spelling.
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64") from exc


# ------------------------------------------------------------------------------------------------ addresses


web_root = github_web_root  # the one rule, in app/settings.py


def redirect_uri(settings: Settings) -> str:
    """Where GitHub sends the browser back: HONK_PUBLIC_URL + /auth/github/callback (one of the App's callback
    URLs, as GitHub requires)."""
    return _public(settings) + CALLBACK_PATH


def link_url(settings: Settings, state: str) -> str:
    """The address in the Slack prompt: Honk's `/slack/link`, which goes on to GitHub."""
    return f"{_public(settings)}{LINK_PATH}?{urlencode({'state': state})}"


def authorize_url(settings: Settings, state: str, redirect_uri: str) -> str:
    """GitHub's authorization page for the App's OAuth client (`GITHUB_CLIENT_ID`). A GitHub App's user
    authorization takes no scopes: what the user token may do is the App's permissions and the user's own.
    `allow_signup=false`: linking needs an account that can already be a writer somewhere."""
    client_id = _client_id(settings)
    query = urlencode({"client_id": client_id, "redirect_uri": redirect_uri, "state": state,
                       "allow_signup": "false"})
    return f"{web_root(settings.github_api_url)}/login/oauth/authorize?{query}"


def _public(settings: Settings) -> str:
    if not settings.honk_public_url:
        raise LinkError("HONK_PUBLIC_URL is not set, so GitHub cannot send anyone back to Honk.", "not_configured")
    return settings.honk_public_url.rstrip("/")


def _client_id(settings: Settings) -> str:
    if not settings.github_client_id:
        raise LinkError("Linking is not configured: set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET (the GitHub "
                        "App's client ID and a client secret).", "not_configured")
    return settings.github_client_id


def _client_secret(settings: Settings) -> str:
    secret = settings.github_client_secret.get_secret_value() if settings.github_client_secret else ""
    if not secret:
        raise LinkError("Linking is not configured: set GITHUB_CLIENT_SECRET (a client secret of the GitHub App).",
                        "not_configured")
    return secret


def callback_error(code: str, redirect: str = "") -> LinkError:
    """The `LinkError` for an `error=` GitHub put on the callback (`access_denied` when the user cancelled) or in
    the token exchange's answer."""
    sentence = _SENTENCES.get(code)
    if sentence is None:
        return LinkError(f"GitHub refused to link the account ({code}). Ask Honk in Slack again for a new link.",
                         code or "link_failed")
    return LinkError(sentence.format(redirect=redirect or "Honk's /auth/github/callback"), code)


# ------------------------------------------------------------------------------------------------ GitHub calls


async def exchange_code(settings: Settings, code: str, redirect_uri: str, *,
                        client: httpx.AsyncClient | None = None) -> str:
    """The user token GitHub gives for the callback's `code` (`POST /login/oauth/access_token`, JSON asked for).
    GitHub answers its refusals with HTTP 200 and an `error`; those become `LinkError`s with its code. The token
    is returned to the caller only: `identify` uses it once and drops it."""
    form = {"client_id": _client_id(settings), "client_secret": _client_secret(settings), "code": code,
            "redirect_uri": redirect_uri}
    url = f"{web_root(settings.github_api_url)}/login/oauth/access_token"
    response = await _send(client, "POST", url, data=form, headers={"Accept": "application/json"})
    if response.status_code != 200:
        raise LinkError(f"GitHub answered HTTP {response.status_code} to the sign-in; try again in a minute.",
                        "github_http")
    answer = _json(response)
    token = as_str(answer.get("access_token"))
    if token:
        return token
    raise callback_error(as_str(answer.get("error")) or "link_failed", redirect_uri)


async def github_login(settings: Settings, user_token: str, *,
                       client: httpx.AsyncClient | None = None) -> tuple[str, int]:
    """Whose token it is: `GET {GITHUB_API_URL}/user` -> (login, id)."""
    url = f"{settings.github_api_url.rstrip('/')}/user"
    response = await _send(client, "GET", url, headers={**_API_HEADERS, "Authorization": f"Bearer {user_token}"})
    if response.status_code == 401:
        raise LinkError("GitHub did not accept the sign-in it just gave; ask Honk in Slack again for a new link.",
                        "bad_credentials")
    if response.status_code != 200:
        raise LinkError(f"GitHub answered HTTP {response.status_code} when asked who you are; try again in a "
                        f"minute.", "github_http")
    user = _json(response)
    login, uid = as_str(user.get("login")), as_id(user.get("id"))
    if not login or uid is None:
        raise LinkError("GitHub's answer did not say who you are; try again.", "github_http")
    return login, uid


async def revoke_token(settings: Settings, user_token: str, *, client: httpx.AsyncClient | None = None) -> bool:
    """Revoke a user token (`DELETE /applications/{client_id}/token`, the App's client credentials as Basic
    auth); only the token, not the user's authorization of the App. True when GitHub confirmed it; never raises:
    an unrevoked token still expires on its own (GitHub gives them eight hours), and Honk has already dropped it."""
    try:
        url = f"{settings.github_api_url.rstrip('/')}/applications/{_client_id(settings)}/token"
        response = await _send(client, "DELETE", url, json={"access_token": user_token}, headers=_API_HEADERS,
                               auth=(_client_id(settings), _client_secret(settings)))
    except LinkError:
        return False
    return response.status_code == 204


async def identify(settings: Settings, code: str, redirect_uri: str, *,
                   client: httpx.AsyncClient | None = None) -> GitHubIdentity:
    """The whole exchange for the callback: code -> user token -> `GET /user` -> revoke. Only the login and id
    leave this function."""
    token = await exchange_code(settings, code, redirect_uri, client=client)
    try:
        login, uid = await github_login(settings, token, client=client)
    finally:
        await revoke_token(settings, token, client=client)
    return GitHubIdentity(login, uid)


async def _send(client: httpx.AsyncClient | None, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request, on `client` or a short-lived one. Transport failures become a `LinkError` without the
    request (whose body or headers hold the client secret or the token)."""
    try:
        if client is not None:
            return await client.request(method, url, **kwargs)
        async with httpx.AsyncClient(timeout=_TIMEOUT) as own:
            return await own.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise LinkError(f"GitHub could not be reached ({type(exc).__name__}); try again in a minute.",
                        "github_unreachable") from None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        return as_dict(response.json())
    except ValueError:
        return {}
