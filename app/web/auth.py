"""Who may see what: the dashboard rule for the job pages and their JSON, the login session, and the checks
the first-run setup and the login form rely on (loopback, `Host`, `Origin`).

- With HONK_DASHBOARD_TOKEN set, a bearer token or the login form's session cookie, else 401.
- Without it, only while every socket Honk bound is loopback (learnt from the sockets themselves once uvicorn
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
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from app.process import HonkState

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
