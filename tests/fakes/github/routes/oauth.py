"""GitHub's OAuth web flow for the App's user authorization, and what a user token may then read.

- `GET /login/oauth/authorize?client_id&redirect_uri&state[&login]`: GitHub's page where the user approves.
  The fake has no browser and no page: the user chosen by the test approves at once and the fake answers
  GitHub's `302` to `redirect_uri?code=...&state=...`. Who approves: the `login` query parameter (a real
  GitHub parameter, "suggest this account"; a test appends it to Honk's authorize URL), else
  `oauth(gh).approve_as`. With neither, nobody is signed in: `200` and a sign-in page, no redirect. With
  `oauth(gh).deny = True` the user clicks Cancel: `302` to `redirect_uri?error=access_denied&...&state=...`.
  An unknown `client_id` gets GitHub's `404`; a `redirect_uri` not among `callback_urls` (when a test set
  them) is sent to the first one with `error=redirect_uri_mismatch`.
- `POST /login/oauth/access_token` (form, JSON or query string: `client_id`, `client_secret`, `code`,
  `redirect_uri`): a code works once, for ten minutes, for the client and redirect it was issued to. GitHub
  answers its refusals with `200` and `{"error": "bad_verification_code" | "incorrect_client_credentials" |
  "redirect_uri_mismatch", "error_description", "error_uri"}`; and, like GitHub, answers form-encoded unless the
  request says `Accept: application/json`. A good answer: `{"access_token": "ghu_...", "expires_in": 28800,
  "refresh_token": "ghr_...", "refresh_token_expires_in": ..., "token_type": "bearer", "scope": ""}`.
- `GET /user` with `Authorization: Bearer|token <user token>`: the user, as GitHub answers it. An installation
  token gets GitHub's `403` ("Resource not accessible by integration"); anything else `401`.
- `DELETE /applications/{client_id}/token` (Basic auth: client id and secret; JSON `{"access_token"}`): revokes
  the token, `204`.

The App's OAuth client: `oauth(gh).client_id` (the fake App's, `Iv1.<app id in hex>`, as `GET /app` says) and
`oauth(gh).client_secret` (fixed per App id; a secret handed out by the manifest flow works too). `oauth(gh).env()`
gives them as GITHUB_CLIENT_ID / GITHUB_CLIENT_SECRET. A test reads `authorizations`, `exchanges` and
`user_tokens` (token -> login; revoked ones are gone) afterwards.

    flow = oauth(gh)
    flow.approve_as = "alice"
    answer = httpx.get(authorize_url, follow_redirects=False)   # 302 to the callback
    params = parse_qs(urlsplit(answer.headers["location"]).query)  # code and state
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from tests.fakes.github.api import GitHub, base, gate
from tests.fakes.github.auth import token_installation
from tests.fakes.github.errors import error, not_found
from tests.fakes.github.fake import FakeGitHub

router = APIRouter()

CODE_LIFETIME = 600.0  # GitHub: "codes expire after 10 minutes"
TOKEN_LIFETIME = 28_800  # seconds: a GitHub App's expiring user token lives eight hours
REFRESH_LIFETIME = 15_811_200  # its refresh token six months
_TROUBLESHOOTING = ("https://docs.github.com/apps/oauth-apps/maintaining-oauth-apps/"
                    "troubleshooting-oauth-app-access-token-request-errors")
_OAUTH_ERRORS = {
    "bad_verification_code": "The code passed is incorrect or expired.",
    "incorrect_client_credentials": "The client_id and/or client_secret passed are incorrect.",
    "redirect_uri_mismatch": "The redirect_uri MUST match the registered callback URL for this application.",
}


@dataclass
class Grant:
    """A code GitHub issued on an approval, until it is exchanged or expires."""

    code: str
    client_id: str
    login: str
    redirect_uri: str
    expires: float  # time.monotonic()


@dataclass
class OAuthFlow:
    """The App's OAuth client and the web flow's state, for one `FakeGitHub` (see `oauth`)."""

    client_id: str
    client_secret: str
    approve_as: str | None = None  # who approves on GitHub's page when the request names no `login`
    deny: bool = False  # the user clicks Cancel instead
    callback_urls: list[str] | None = None  # the App's registered callbacks; None: any redirect_uri is taken
    code_lifetime: float = CODE_LIFETIME
    authorizations: list[dict[str, Any]] = field(default_factory=list)  # each authorize request's parameters
    exchanges: list[dict[str, Any]] = field(default_factory=list)  # each token request: code, and error or login
    user_tokens: dict[str, str] = field(default_factory=dict)  # live user token -> login
    codes: dict[str, Grant] = field(default_factory=dict)
    token_expiry: dict[str, float] = field(default_factory=dict)  # user token -> time.monotonic() it expires

    def env(self) -> dict[str, str]:
        return {"GITHUB_CLIENT_ID": self.client_id, "GITHUB_CLIENT_SECRET": self.client_secret}

    def expire_codes(self) -> None:
        """Every code issued so far expires now (GitHub's ten minutes, passed)."""
        for grant in self.codes.values():
            grant.expires = time.monotonic() - 1

    def expire_tokens(self) -> None:
        for token in self.token_expiry:
            self.token_expiry[token] = time.monotonic() - 1

    def login_of(self, token: str) -> str | None:
        """The login of a live (issued, unrevoked, unexpired) user token."""
        login = self.user_tokens.get(token)
        if login is None or self.token_expiry.get(token, float("inf")) <= time.monotonic():
            return None
        return login


def oauth(gh: FakeGitHub) -> OAuthFlow:
    """The fake's OAuth flow, made on first use with the fake App's client id and a client secret fixed per App
    id (kept on the fake itself, so every test and route of one fake sees the same one)."""
    with gh._lock:
        flow = vars(gh).get("oauth")
        if not isinstance(flow, OAuthFlow):
            secret = hashlib.sha1(f"honk-fake-client-secret:{gh.app_id}".encode()).hexdigest()  # 40 hex, as GitHub's
            flow = OAuthFlow(client_id=f"Iv1.{gh.app_id:016x}", client_secret=secret)
            vars(gh)["oauth"] = flow
        return flow


def _secret_ok(gh: FakeGitHub, flow: OAuthFlow, secret: str) -> bool:
    """The configured secret, or one the manifest flow handed out (an App may have several client secrets)."""
    known = [flow.client_secret, *(str(a.get("client_secret")) for a in gh.registered_apps if a.get("client_secret"))]
    return any(secrets.compare_digest(secret.encode(), k.encode()) for k in known)


def _redirect(url: str, params: dict[str, str]) -> Response:
    joiner = "&" if "?" in url else "?"
    return Response(status_code=302, headers={"location": f"{url}{joiner}{urlencode(params)}"})


@router.get("/login/oauth/authorize")
async def oauth_authorize(request: Request, gh: GitHub) -> Response:
    await gate(gh, request, "oauth_authorize")
    flow = oauth(gh)
    query = request.query_params
    client_id, state = query.get("client_id", ""), query.get("state")
    with gh._lock:
        flow.authorizations.append(dict(query))
    if client_id != flow.client_id:
        return HTMLResponse("<h1>404</h1><p>This is not the web page you are looking for.</p>", status_code=404)
    redirect = query.get("redirect_uri") or (flow.callback_urls[0] if flow.callback_urls else "")
    if not redirect:
        return HTMLResponse("<p>The redirect_uri is missing and the App has no callback URL.</p>", status_code=422)
    with_state = {"state": state} if state is not None else {}
    if flow.callback_urls is not None and redirect not in flow.callback_urls:
        return _redirect(flow.callback_urls[0], {
            "error": "redirect_uri_mismatch", "error_description": _OAUTH_ERRORS["redirect_uri_mismatch"],
            "error_uri": f"{_TROUBLESHOOTING}#redirect-uri-mismatch", **with_state})
    if flow.deny:
        return _redirect(redirect, {"error": "access_denied",
                                    "error_description": "The user has denied your application access.",
                                    "error_uri": f"{_TROUBLESHOOTING}#access-denied", **with_state})
    login = query.get("login") or flow.approve_as
    if not login:
        return HTMLResponse("<h1>Sign in to GitHub</h1><p>to continue to Honk (test)</p>")
    gh.register_user(login)
    code = secrets.token_hex(10)
    with gh._lock:
        flow.codes[code] = Grant(code, client_id, login, redirect, time.monotonic() + flow.code_lifetime)
    return _redirect(redirect, {"code": code, **with_state})


async def _params(request: Request) -> dict[str, str]:
    """The token request's parameters, from the query string, a form or JSON, as GitHub reads them."""
    params = dict(request.query_params)
    raw = await request.body()
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            data = {}
        if isinstance(data, dict):
            params.update({k: str(v) for k, v in data.items()})
    elif raw:
        params.update(dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True)))
    return params


def _oauth_answer(request: Request, body: dict[str, Any]) -> Response:
    """GitHub answers in the format asked for: JSON with `Accept: application/json`, else form-encoded."""
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(body)
    return Response(urlencode({k: str(v) for k, v in body.items()}), media_type="application/x-www-form-urlencoded")


def _oauth_error(request: Request, code: str) -> Response:
    anchor = code.replace("_", "-")
    return _oauth_answer(request, {"error": code, "error_description": _OAUTH_ERRORS[code],
                                   "error_uri": f"{_TROUBLESHOOTING}#{anchor}"})


@router.post("/login/oauth/access_token")
async def oauth_access_token(request: Request, gh: GitHub) -> Response:
    await gate(gh, request, "oauth_access_token")
    flow = oauth(gh)
    params = await _params(request)
    code = params.get("code", "")
    with gh._lock:
        grant = flow.codes.pop(code, None)  # a code is spent by its first exchange, good or not
        record: dict[str, Any] = {"code": code, "client_id": params.get("client_id"),
                                  "redirect_uri": params.get("redirect_uri")}
        flow.exchanges.append(record)
    if params.get("client_id") != flow.client_id or not _secret_ok(gh, flow, params.get("client_secret", "")):
        record["error"] = "incorrect_client_credentials"
        return _oauth_error(request, "incorrect_client_credentials")
    if grant is None or grant.expires <= time.monotonic() or grant.client_id != flow.client_id:
        record["error"] = "bad_verification_code"
        return _oauth_error(request, "bad_verification_code")
    if params.get("redirect_uri") and params["redirect_uri"] != grant.redirect_uri:
        record["error"] = "redirect_uri_mismatch"
        return _oauth_error(request, "redirect_uri_mismatch")
    token = "ghu_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b")[:36]
    refresh = "ghr_" + secrets.token_hex(38)
    with gh._lock:
        flow.user_tokens[token] = grant.login
        flow.token_expiry[token] = time.monotonic() + TOKEN_LIFETIME
        record["login"] = grant.login
    return _oauth_answer(request, {"access_token": token, "expires_in": TOKEN_LIFETIME, "refresh_token": refresh,
                                   "refresh_token_expires_in": REFRESH_LIFETIME, "token_type": "bearer",
                                   "scope": ""})


@router.get("/user")
async def get_authenticated_user(request: Request, gh: GitHub) -> dict[str, Any]:
    await gate(gh, request, "get_authenticated_user")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    login = oauth(gh).login_of(token.strip()) if scheme.lower() in ("bearer", "token") else None
    if login is None:
        if scheme.lower() in ("bearer", "token") and token_installation(gh, token.strip()) is not None:
            raise error(403, "Resource not accessible by integration")
        raise error(401, "Bad credentials")
    user = gh._user(base(request), login)
    return {**user, "name": login.title(), "company": None, "blog": "", "location": None, "email": None,
            "hireable": None, "bio": None, "twitter_username": None, "notification_email": None, "public_repos": 0,
            "public_gists": 0, "followers": 0, "following": 0, "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z"}


@router.delete("/applications/{client_id}/token", status_code=204)
async def revoke_user_token(client_id: str, request: Request, gh: GitHub) -> Response:
    await gate(gh, request, "revoke_user_token")
    flow = oauth(gh)
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":") if scheme.lower() == "basic" \
            else ("", "", "")
    except (ValueError, UnicodeDecodeError):
        user, password = "", ""
    if client_id != flow.client_id or user != flow.client_id or not _secret_ok(gh, flow, password):
        raise not_found()  # GitHub hides the endpoint from wrong client credentials
    try:
        token = str(json.loads(await request.body() or b"{}").get("access_token") or "")
    except (ValueError, AttributeError):
        raise error(400, "Problems parsing JSON") from None
    with gh._lock:
        if flow.user_tokens.pop(token, None) is None:
            raise not_found()
        flow.token_expiry.pop(token, None)
    return Response(status_code=204)
