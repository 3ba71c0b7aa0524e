"""GitHub's credentials, checked as GitHub checks them: App JWTs (RS256, signed with the App's key, at most
ten minutes ahead) for `/app/...`, installation tokens this fake issued and that have not expired for
repository routes and GraphQL, and Basic auth as `x-access-token:<token>` for git over HTTP."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import jwt
from fastapi import Request

from tests.fakes.github.errors import error

if TYPE_CHECKING:
    from tests.fakes.github.fake import FakeGitHub


def app_jwt(gh: FakeGitHub, request: Request) -> None:
    """Check the request's App JWT (`Authorization: Bearer <jwt>`)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise error(401, "A JSON web token could not be decoded")
    try:
        claims = jwt.decode(token, gh._public_key, algorithms=["RS256"], options={"require": ["exp", "iat"]})
    except jwt.ExpiredSignatureError:
        raise error(401, "'Expiration time' claim ('exp') must be a numeric value representing the "
                         "future time at which the assertion expires") from None
    except jwt.PyJWTError:
        raise error(401, "A JSON web token could not be decoded") from None
    if claims["exp"] - time.time() > 660:
        raise error(401, "'Expiration time' claim ('exp') is too far in the future")
    if str(claims.get("iss")) != str(gh.app_id):
        raise error(401, "Integration not found")


def token_installation(gh: FakeGitHub, token: str) -> int | None:
    """The installation an unexpired token was issued for, or None."""
    with gh._lock:
        installation = gh.tokens.get(token)
        expiry = gh.token_expiry.get(token)
    if installation is None or (expiry is not None and expiry <= datetime.now(UTC)):
        return None
    return installation


def installation_token(gh: FakeGitHub, request: Request, *, message: str = "Bad credentials") -> int:
    """The installation of the request's token (`Authorization: token|Bearer <token>`); else a 401."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    installation = token_installation(gh, token) if scheme.lower() in ("token", "bearer") else None
    if installation is None:
        raise error(401, message)
    return installation


def git_installation(gh: FakeGitHub, request: Request) -> int | None:
    """The installation of the token git sends as Basic auth `x-access-token:<token>`, or None."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        user, password = "", ""
    return token_installation(gh, password) if user == "x-access-token" else None


def basic_auth_header(token: str) -> str:
    """The `Authorization` header git sends for `x-access-token:<token>`."""
    return "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
