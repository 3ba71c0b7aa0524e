"""A local GitHub for tests: the REST endpoints Honk calls, with GitHub's response shapes and auth.

It checks what real GitHub checks: `/app/...` routes need an App JWT signed with the App's key, and
repository routes need an installation token it issued. Tests script it through plain attributes:
`permissions` (login -> role), `delays` (route name -> seconds), `failures` (route name -> statuses to
answer next), and read `requests` afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

# GitHub's legacy `permission` field for each role.
_LEGACY = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}


@dataclass
class Recorded:
    method: str
    path: str
    route: str
    auth: str


@dataclass
class FakeGitHub:
    app_id: int
    private_key_pem: str
    slug: str = "honk-test"
    permissions: dict[str, str] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    failures: dict[str, list[int]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)  # installation token -> installation id

    def __post_init__(self) -> None:
        key = serialization.load_pem_private_key(self.private_key_pem.encode(), password=None)
        self._public_key = key.public_key()
        self.app = self._build()

    def calls(self, route: str) -> list[Recorded]:
        return [r for r in self.requests if r.route == route]

    def _build(self) -> FastAPI:
        app = FastAPI()
        fake = self

        async def gate(request: Request, route: str) -> None:
            fake.requests.append(Recorded(request.method, request.url.path, route,
                                          request.headers.get("authorization", "")))
            if fake.delays.get(route):
                await asyncio.sleep(fake.delays[route])
            queued = fake.failures.get(route)
            if queued:
                status = queued.pop(0)
                headers = {"retry-after": "1"} if status in (403, 429) else {}
                message = ("You have exceeded a secondary rate limit." if status in (403, 429)
                           else "Server Error")
                raise HTTPException(status, {"message": message}, headers=headers)

        def app_jwt(request: Request) -> None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer":
                raise HTTPException(401, {"message": "A JSON web token could not be decoded"})
            try:
                claims = jwt.decode(token, self._public_key, algorithms=["RS256"])
            except jwt.PyJWTError as exc:
                raise HTTPException(401, {"message": f"'Expiration time' claim ('exp') is invalid: {exc}"}) \
                    from None
            if str(claims.get("iss")) != str(fake.app_id):
                raise HTTPException(401, {"message": "Integration not found"})

        def installation_token(request: Request) -> int:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() not in ("token", "bearer") or token not in fake.tokens:
                raise HTTPException(401, {"message": "Bad credentials"})
            return fake.tokens[token]

        @app.exception_handler(HTTPException)
        async def github_error(_: Request, exc: HTTPException) -> JSONResponse:
            body = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
            body.setdefault("documentation_url", "https://docs.github.com/rest")
            return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

        @app.get("/app")
        async def get_app(request: Request) -> dict[str, Any]:
            await gate(request, "get_app")
            app_jwt(request)
            return {"id": fake.app_id, "slug": fake.slug, "node_id": "MDM6QXBwMQ==", "name": "Honk (test)",
                    "owner": {"login": "acme", "id": 2, "type": "Organization"}, "description": "",
                    "external_url": "http://127.0.0.1", "html_url": f"https://github.com/apps/{fake.slug}",
                    "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                    "permissions": {"contents": "write", "issues": "write", "pull_requests": "write"},
                    "events": ["issues", "issue_comment"]}

        @app.post("/app/installations/{installation_id}/access_tokens", status_code=201)
        async def access_token(installation_id: int, request: Request) -> dict[str, Any]:
            await gate(request, "access_token")
            app_jwt(request)
            token = "ghs_" + secrets.token_urlsafe(27)[:36]
            fake.tokens[token] = installation_id
            expires = datetime.now(UTC) + timedelta(hours=1)
            return {"token": token, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "permissions": {"contents": "write", "issues": "write"}, "repository_selection": "all"}

        @app.get("/repos/{owner}/{repo}/collaborators/{username}/permission")
        async def permission(owner: str, repo: str, username: str, request: Request) -> dict[str, Any]:
            await gate(request, "permission")
            installation_token(request)
            role = fake.permissions.get(username)
            if role is None:
                raise HTTPException(404, {"message": f"{username} is not a user"})
            return {"permission": _LEGACY.get(role, "none"), "role_name": role,
                    "user": {"login": username, "id": abs(hash(username)) % 10**6, "type": "User",
                             "node_id": "MDQ6VXNlcjE=", "avatar_url": "", "url": "", "html_url": "",
                             "site_admin": False}}

        return app

