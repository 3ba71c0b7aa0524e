"""First run, the Probot way: register a GitHub App from `app.yml` through GitHub's manifest flow.

While no App is configured, `/` (and `/setup`) shows a page whose one button posts the manifest to GitHub
(https://docs.github.com/apps/sharing-github-apps/registering-a-github-app-from-a-manifest). GitHub sends the
browser back to `/setup/callback` with a one-hour code and the `state` Honk issued; Honk trades the code for
the App's credentials (`POST /app-manifests/{code}/conversions`), writes them to `.env` (mode 0600), reloads its
settings and links to the App's installation page.

Only whoever runs Honk may register its App (whoever does holds the App's key and webhook secret, so could
send Honk forged work). The setup page and the callback answer a browser on the machine itself (a loopback
peer, not relayed by a proxy, whose `Host` names loopback), or anyone who gives the setup code that
`honk serve`/`honk web` write to their log at start ("First-run setup: open http://HOST:PORT/setup?setup_code=…",
the way Jenkins guards its first run). A right code sets an HttpOnly, SameSite=Lax cookie, so that the browser's
return from GitHub to the callback (a top-level navigation, which Lax lets the cookie ride) is accepted too.
The parameter is `setup_code`, not `code`: GitHub's callback carries its own `code`.

Beyond that the page only exists while no App is configured (every `/setup*` route answers 404 afterwards, so
nobody can register over a running App) and the callback only accepts a state this process issued, once,
within the hour.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import yaml
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from app.process import HonkState
from app.settings import Settings, SettingsError, github_web_root, load_settings
from app.slack.linking import CALLBACK_PATH as LINK_CALLBACK_PATH
from app.web.auth import client_is_loopback, host_names_loopback, loopback_url, origin_of
from app.web.pages import templates

log = logging.getLogger("honk.setup")
router = APIRouter()

WEBHOOK_PATH = "/api/github/webhooks"
CALLBACK_PATH = "/setup/callback"
STATE_TTL_SECONDS = 3600.0  # GitHub's manifest code lives an hour; a state need not outlive it
MAX_PENDING_STATES = 1000  # the page is public until configured: page views must not grow memory without end
SETUP_CODE_PARAM = "setup_code"  # never `code`: GitHub's callback has a `code` of its own
SETUP_COOKIE = "honk_setup"
SETUP_COOKIE_SECONDS = 24 * 3600  # longer than a state lives, so a registration started in time can finish
_ORGANIZATION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_CODE = re.compile(r"[A-Za-z0-9_-]{1,200}")


# ------------------------------------------------------------------------------------------ the manifest


def manifest_path() -> Path:
    """`app.yml`: a copy inside the package wins (for builds that ship one), else the one next to `app/`,
    which is where a checkout and `pip install -e .` both have it."""
    package = Path(__file__).resolve().parents[1]  # app/, above app/web/
    for candidate in (package / "app.yml", package.parent / "app.yml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"app.yml is neither in {package} nor in {package.parent}")


def build_manifest(public_url: str, template: Mapping[str, Any] | None = None, *,
                   relay_url: str | None = None) -> dict[str, Any]:
    """The App manifest for a Honk reachable at `public_url`: webhooks and the callback point here (webhooks to
    the relay's channel instead, when Honk reads one: HONK_WEBHOOK_PROXY_URL); the rest (name, url, permissions,
    events) is kept from `app.yml`."""
    manifest = dict(template if template is not None else yaml.safe_load(manifest_path().read_text()))
    base = public_url.rstrip("/")
    manifest["hook_attributes"] = {**(manifest.get("hook_attributes") or {}),
                                   "url": relay_url or base + WEBHOOK_PATH}
    manifest["redirect_url"] = base + CALLBACK_PATH
    if "callback_urls" in manifest:  # app.yml's placeholders would point at someone's localhost
        # The setup's return, and the OAuth return that links Slack users to GitHub logins (app/web/slack_link.py):
        # GitHub sends a user authorization back only to a registered callback URL.
        manifest["callback_urls"] = [base + CALLBACK_PATH, base + LINK_CALLBACK_PATH]
    return manifest


web_root = github_web_root  # the one rule, in app/settings.py


def registration_url(api_url: str, state: str, organization: str | None = None) -> str:
    """Where the manifest form posts: the user's new-App page, or an organization's."""
    owner = f"/organizations/{quote(organization)}" if organization else ""
    return f"{web_root(api_url)}{owner}/settings/apps/new?state={quote(state)}"


# ------------------------------------------------------------------------------------------ states


@dataclass
class PendingStates:
    """The `state` values this process handed out, each good for one callback within `ttl` seconds. Kept in
    memory on purpose: a restart simply means pressing the button again."""

    ttl: float = STATE_TTL_SECONDS
    limit: int = MAX_PENDING_STATES
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def issue(self) -> str:
        self._forget_expired()
        while len(self._expiry) >= self.limit:
            self._expiry.popitem(last=False)  # the oldest page view gives way
        state = secrets.token_urlsafe(24)
        self._expiry[state] = self.clock() + self.ttl
        return state

    def take(self, state: str) -> bool:
        """True once for a state issued here and not yet expired; never again afterwards."""
        expiry = self._expiry.pop(state, None)
        return expiry is not None and expiry > self.clock()

    def _forget_expired(self) -> None:
        now = self.clock()
        for state in [s for s, expiry in self._expiry.items() if expiry <= now]:
            del self._expiry[state]


def pending_states(request: Request) -> PendingStates:
    app_state = request.app.state
    if not hasattr(app_state, "honk_setup_states"):
        app_state.honk_setup_states = PendingStates()
    return app_state.honk_setup_states


def _write_lock(request: Request) -> asyncio.Lock:
    app_state = request.app.state
    if not hasattr(app_state, "honk_setup_lock"):
        app_state.honk_setup_lock = asyncio.Lock()
    return app_state.honk_setup_lock


# ------------------------------------------------------------------------------------------ .env


ENV_KEYS = ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET", "GITHUB_CLIENT_ID",
            "GITHUB_CLIENT_SECRET")
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.:/+=@ \\-]*")


def _env_line(key: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"{key}: a .env value must be one line")
    # Unquoted when python-dotenv (and docker's --env-file) read it back verbatim; single quotes otherwise.
    if _PLAIN_VALUE.fullmatch(value) and value == value.strip():
        return f"{key}={value}"
    if "'" in value or "\\" in value:
        raise ValueError(f"{key}: cannot write this value to .env safely")
    return f"{key}='{value}'"


def _env_key(line: str) -> str | None:
    text = line.strip()
    if not text or text.startswith("#") or "=" not in text:
        return None
    return text.removeprefix("export ").split("=", 1)[0].strip().upper()


def update_env_file(path: Path, values: Mapping[str, str]) -> Path:
    """Merge `values` into the .env at `path`: other lines stay as they are, these keys are replaced in place
    (later duplicates dropped) or appended. The new file is written beside the old one with mode 0600 from
    its creation and renamed over it, so a crash never leaves half a file and the secrets are never readable
    by others, not even for a moment. Returns the path written."""
    target = path.resolve() if path.is_symlink() else path  # keep the operator's symlink pointing at the secrets
    try:
        old = target.read_text().splitlines()
    except FileNotFoundError:
        old = []
    wanted = {key.upper(): _env_line(key.upper(), value) for key, value in values.items()}
    lines: list[str] = []
    written: set[str] = set()
    for line in old:
        key = _env_key(line)
        if key in wanted:
            if key not in written:
                lines.append(wanted[key])
                written.add(key)
            continue
        lines.append(line)
    lines += [line for key, line in wanted.items() if key not in written]
    data = ("\n".join(lines) + "\n").encode()

    tmp = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only narrow 0600, but say exactly what is meant
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


# ------------------------------------------------------------------------------------------ routes


def setup_available(request: Request) -> None:
    """Every setup route disappears once an App is configured, so a running Honk cannot be re-registered."""
    honk: HonkState = request.app.state.honk
    if not honk.settings.missing_github():
        raise HTTPException(404, "Not Found")


def setup_url(base_url: str, code: str) -> str:
    """The address the log gives the operator: the setup page, with the code that opens it from anywhere."""
    return f"{base_url.rstrip('/')}/setup?{SETUP_CODE_PARAM}={quote(code, safe='')}"


def code_matches(given: str, code: str) -> bool:
    # Digests, so that the comparison's time depends on neither the code nor the guess's length.
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(code.encode()).digest())


def _cookie_value(code: str) -> str:
    """What the setup cookie holds: derived from the code, not the code itself (which stays in the log)."""
    return hmac.new(code.encode(), b"honk-setup-cookie", hashlib.sha256).hexdigest()


def setup_grant(request: Request) -> str | None:
    """How this request may use the setup pages: "local" (a browser on this machine), "cookie" (it gave the
    setup code earlier), "code" (it gives it now: set the cookie), or None."""

    honk: HonkState = request.app.state.honk
    given = request.query_params.get(SETUP_CODE_PARAM)
    if given is not None and code_matches(given, honk.setup_code):
        return "code"
    cookie = request.cookies.get(SETUP_COOKIE)
    if cookie is not None and hmac.compare_digest(cookie.encode(), _cookie_value(honk.setup_code).encode()):
        return "cookie"
    if client_is_loopback(request) and host_names_loopback(request.headers.get("host")):
        return "local"
    return None


def setup_refusal(request: Request) -> HTMLResponse:

    wrong = request.query_params.get(SETUP_CODE_PARAM) is not None
    first = ("That setup code is not this Honk's (every start makes a new one)." if wrong else
             "Only whoever runs this Honk may register its GitHub App, so this page asks for the setup code.")
    message = (f"{first} Open the address that honk serve (or honk web) wrote to its log when it started, on "
               f"the line “First-run setup: open …/setup?{SETUP_CODE_PARAM}=…”, or open "
               f"{loopback_url(request)} in a browser on the machine Honk runs on.")
    return _render("setup_message.html", 403, private=True, title="Honk: setup", message=message)


def remember_setup_code(request: Request, response: Response) -> None:
    """After a right setup code: the cookie that lets this browser back in, GitHub's redirect included.
    SameSite=Lax, not Strict: the return from GitHub is a cross-site navigation and must carry it."""
    honk: HonkState = request.app.state.honk
    response.set_cookie(SETUP_COOKIE, _cookie_value(honk.setup_code), max_age=SETUP_COOKIE_SECONDS, path="/",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")


def guarded_setup_page(request: Request, public_url: str | None = None,
                       organization: str | None = None) -> HTMLResponse:
    """The setup page for those allowed to register the App (see the module's docstring); 403 for others."""
    grant = setup_grant(request)
    if grant is None:
        return setup_refusal(request)
    response = setup_page(request, public_url, organization)
    if grant == "code":
        remember_setup_code(request, response)
    return response


@router.get("/setup", response_class=HTMLResponse, dependencies=[Depends(setup_available)])
async def setup(request: Request, public_url: str | None = None, organization: str | None = None) -> HTMLResponse:
    return guarded_setup_page(request, public_url, organization)


def setup_page(request: Request, public_url: str | None = None, organization: str | None = None) -> HTMLResponse:
    """The page `/` shows while no App is configured: what is missing, and the button that registers one.
    Unguarded: callers check `setup_grant` first (guarded_setup_page)."""

    honk: HonkState = request.app.state.honk
    settings = honk.settings
    default_url = honk.public_url or settings.honk_public_url or str(request.base_url).rstrip("/")
    problems = []
    url = (public_url or "").strip().rstrip("/") or default_url
    if not _is_http_url(url):
        problems.append(f"{url!r} is not an http:// or https:// address")
        url = default_url
    org = (organization or "").strip() or None
    if org is not None and not _ORGANIZATION.fullmatch(org):
        problems.append(f"{org!r} is not a GitHub organization name")
        org = None
    try:
        manifest = build_manifest(url, relay_url=settings.honk_webhook_proxy_url)
    except (OSError, yaml.YAMLError) as exc:
        return _render("setup_message.html", 500, title="Honk: setup",
                       message=f"Cannot read the App manifest: {exc}")

    state = pending_states(request).issue()
    root = web_root(settings.github_api_url)
    again = None
    here = origin_of(f"{request.url.scheme}://{request.headers.get('host', '')}")
    if origin_of(url) != here and not host_names_loopback(urlsplit(url).netloc):
        # GitHub sends the browser back to the public address, where it holds no setup cookie yet (and is no
        # longer "on this machine" to Honk): say so before the round trip, not after it.
        again = (setup_url(url, honk.setup_code) + (f"&public_url={quote(url, safe='')}" if public_url else "")
                 + (f"&organization={quote(org)}" if org else ""))
    page = _render(
        "setup.html", 400 if problems else 200,
        missing=settings.missing_github(), problems=problems, url=url, organization=org or "",
        action=registration_url(settings.github_api_url, state, org), root=root, state=state,
        # Dumped here, not with tojson: the form posts this text to GitHub as is, in app.yml's key order.
        manifest_json=json.dumps(manifest), manifest_text=json.dumps(manifest, indent=2),
        unreachable=(_is_local(url) and urlsplit(root).hostname == "github.com"
                     and not settings.honk_webhook_proxy_url),
        again=again, webhook_path=WEBHOOK_PATH, callback_path=CALLBACK_PATH, relay_url=settings.honk_webhook_proxy_url)
    # The address may hold the setup code: GitHub, where the form posts, gets only Honk's origin.
    page.headers["Referrer-Policy"] = "strict-origin"
    return page


@router.get(CALLBACK_PATH, response_class=HTMLResponse, dependencies=[Depends(setup_available)])
async def callback(request: Request, code: str = "", state: str = "") -> HTMLResponse:
    """GitHub's redirect after the App was created: trade the code for its credentials, keep them, reload."""
    honk: HonkState = request.app.state.honk
    if setup_grant(request) is None:  # before the state is taken: a refused request must not use it up
        return setup_refusal(request)
    if not state or not pending_states(request).take(state):
        return _failure("This setup link is unknown or has expired (links work once, for an hour, and only on "
                        "the Honk that made them).", status=400)
    if not _CODE.fullmatch(code):
        return _failure("GitHub's answer has no valid code.", status=400)

    try:
        app = await convert_manifest_code(honk.settings.github_api_url, code)
    except ManifestConversionError as exc:
        return _failure(str(exc), status=502)

    values = {"GITHUB_APP_ID": str(app["id"]),
              "GITHUB_PRIVATE_KEY": app["pem"].strip().replace("\r\n", "\n").replace("\n", "\\n"),
              "GITHUB_WEBHOOK_SECRET": app["webhook_secret"]}
    for key, field in (("GITHUB_CLIENT_ID", "client_id"), ("GITHUB_CLIENT_SECRET", "client_secret")):
        if isinstance(app.get(field), str) and app[field]:
            values[key] = app[field]
    # Two registrations finishing together must not both write .env: the first one wins, the second is told.
    async with _write_lock(request):
        if not honk.settings.missing_github():
            return _failure(f"Another registration finished first, so GitHub App {app['id']} is not used; delete "
                            f"it on GitHub.", status=409)
        try:
            env_file = await run_in_threadpool(update_env_file, Path.cwd() / ".env", values)
        except (OSError, ValueError) as exc:
            log.error("GitHub App %s was registered but its credentials could not be written to .env: %s",
                      app["id"], exc)
            return _failure(f"GitHub registered App {app['id']}, but Honk cannot write .env: {exc}. Delete that "
                            f"App on GitHub and start again.", status=500)
        log.info("registered GitHub App %r (id %s, slug %s); its credentials are in %s (mode 0600)",
                 app.get("name"), app["id"], app["slug"], env_file)
        try:
            reload_settings(honk, app["slug"])
        except SettingsError as exc:
            return _failure(f"The App's credentials are in {env_file}, but the settings do not load: {exc}",
                            status=500)
    overridden = _overridden_by_environment(honk.settings, values)
    if overridden:
        return _failure(f"The App's credentials are in {env_file}, but the environment sets "
                        f"{', '.join(overridden)}, which wins over .env. Unset "
                        f"{'it' if len(overridden) == 1 else 'them'} and restart Honk.", status=409)

    return _render("setup_done.html", 200, private=True, app_url=app["html_url"],
                   app_name=app.get("name") or app["slug"], app_id=app["id"], env_file=str(env_file),
                   install_url=f"{app['html_url'].rstrip('/')}/installations/new",
                   label=honk.settings.honk_label, slug=app["slug"])


class ManifestConversionError(Exception):
    """GitHub did not trade the code for an App; worded for the person at the browser."""


async def convert_manifest_code(api_url: str, code: str, timeout: float = 30.0) -> dict[str, Any]:
    """`POST /app-manifests/{code}/conversions`: the App's id, slug, key and secrets. Needs no credentials:
    the one-hour, single-use code is the credential."""
    url = f"{api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions"
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
               "User-Agent": "honk"}
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            answer = await client.post(url, headers=headers)
    except httpx.HTTPError as exc:
        raise ManifestConversionError(f"Cannot reach GitHub at {api_url} ({type(exc).__name__}).") from None
    if answer.status_code not in (200, 201):
        try:
            message = answer.json().get("message", "")
        except ValueError:
            message = ""
        raise ManifestConversionError(f"GitHub did not accept the code (HTTP {answer.status_code}"
                                      f"{': ' + message if message else ''}); a code works once, within an "
                                      f"hour.")
    try:
        app = answer.json()
    except ValueError:
        app = None
    if not isinstance(app, dict):
        raise ManifestConversionError("GitHub's answer is not a JSON object.")
    problems = [name for name, ok in (
        ("id", isinstance(app.get("id"), int)),
        ("slug", isinstance(app.get("slug"), str) and bool(app.get("slug"))),
        ("pem", isinstance(app.get("pem"), str) and "-----BEGIN" in app["pem"]),
        ("webhook_secret", isinstance(app.get("webhook_secret"), str) and bool(app.get("webhook_secret"))),
        ("html_url", isinstance(app.get("html_url"), str) and _is_http_url(app["html_url"])),
    ) if not ok]
    if problems:
        raise ManifestConversionError(f"GitHub's answer lacks {', '.join(problems)}.")
    return app


def reload_settings(honk: HonkState, slug: str | None = None) -> Settings:
    """Read the settings again (environment and the new .env) and hand them to everything that holds them."""
    settings = load_settings()
    # This run's default link root (http://<host>:<port>) lives only in memory: keep it.
    settings.honk_public_url = settings.honk_public_url or honk.public_url or honk.settings.honk_public_url
    honk.replace_settings(settings)
    if slug:
        honk.learn_app_slug(slug)
    return settings


def _overridden_by_environment(settings: Settings, written: Mapping[str, str]) -> list[str]:
    """The written variables that the environment shadows with a different value (the environment wins)."""
    env = {k.upper() for k in os.environ}
    wrong = []
    if str(settings.github_app_id) != written["GITHUB_APP_ID"]:
        wrong.append("GITHUB_APP_ID")
    if settings.webhook_secret != written["GITHUB_WEBHOOK_SECRET"].encode():
        wrong.append("GITHUB_WEBHOOK_SECRET")
    key = settings.github_private_key.get_secret_value() if settings.github_private_key else None
    if key != written["GITHUB_PRIVATE_KEY"].replace("\\n", "\n"):
        wrong.append("GITHUB_PRIVATE_KEY")
    return [name for name in wrong if name in env] or wrong


# ------------------------------------------------------------------------------------------ HTML


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in url)


def _is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def _failure(message: str, status: int) -> HTMLResponse:
    return _render("setup_message.html", status, private=True, title="Honk: setup did not finish",
                   message=message, start_again=True)


def _render(name: str, status: int, *, private: bool = False, **context: Any) -> HTMLResponse:
    """A first-run page from its template (autoescaped, like the job pages). `private` pages answer the
    callback, whose address holds GitHub's code: they send no referrer."""
    # The page holds a form that posts to GitHub: never cache it, never frame it.
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY"}
    if private:
        headers["Referrer-Policy"] = "no-referrer"
    return HTMLResponse(templates.get_template(name).render(**context), status_code=status, headers=headers)
