"""GitHub's Apps API: with the App's JWT, the App itself, installation access tokens, and a repository's
installation; with an installation token, the repositories of its installation (`GET /installation/repositories`,
route name `installation_repositories`)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tests.fakes.github.api import GitHub, base, gate, page_of
from tests.fakes.github.auth import app_jwt, installation_token
from tests.fakes.github.errors import not_found
from tests.fakes.github.state import iso

router = APIRouter()


@router.get("/app")
async def get_app(request: Request, gh: GitHub) -> dict[str, Any]:
    await gate(gh, request, "get_app")
    app_jwt(gh, request)
    return gh._app_json(base(request))


@router.post("/app/installations/{installation_id}/access_tokens", status_code=201)
async def access_token(installation_id: int, request: Request, gh: GitHub) -> dict[str, Any]:
    await gate(gh, request, "access_token")
    app_jwt(gh, request)
    token = "ghs_" + secrets.token_urlsafe(27)[:36]
    expires = datetime.now(UTC) + gh.token_lifetime
    with gh._lock:
        gh.tokens[token] = installation_id
        gh.token_expiry[token] = expires
    return {"token": token, "expires_at": iso(expires),
            "permissions": {"contents": "write", "issues": "write", "pull_requests": "write",
                            "metadata": "read"}, "repository_selection": "all"}


@router.get("/repos/{owner}/{name}/installation")
async def repo_installation(owner: str, name: str, request: Request, gh: GitHub) -> dict[str, Any]:
    await gate(gh, request, "get_repo_installation")
    app_jwt(gh, request)
    repo = gh._repos.get(f"{owner}/{name}".lower())
    if repo is None:
        raise not_found()
    b, iid = base(request), repo.installation_id
    account = gh._user(b, repo.owner)
    return {"id": iid, "client_id": f"Iv1.{gh.app_id:016x}", "account": account,
            "repository_selection": "all", "access_tokens_url": f"{b}/app/installations/{iid}/access_tokens",
            "repositories_url": f"{b}/installation/repositories",
            "html_url": f"{b}/organizations/{repo.owner}/settings/installations/{iid}",
            "app_id": gh.app_id, "app_slug": gh.slug, "target_id": account["id"],
            "target_type": account["type"], "permissions": gh._app_json(b)["permissions"],
            "events": gh._app_json(b)["events"], "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "single_file_name": None, "has_multiple_single_files": False,
            "single_file_paths": [], "suspended_by": None, "suspended_at": None}


@router.get("/installation/repositories")
async def installation_repositories(request: Request, gh: GitHub) -> JSONResponse:
    """The token's installation's repositories (all of them: this fake's installations select all), by full name,
    a page at a time (`per_page`, default 30, at most 100; `page`) with GitHub's `Link` header."""
    await gate(gh, request, "installation_repositories")
    installation = installation_token(gh, request)
    b = base(request)
    with gh._lock:
        repos = sorted((r for r in gh._repos.values() if r.installation_id == installation),
                       key=lambda r: r.full_name.lower())
        page, headers = page_of(request, repos)
        shaped = [gh._repo_json(b, repo) for repo in page]
    return JSONResponse({"total_count": len(repos), "repository_selection": "all", "repositories": shaped},
                        headers=headers)
