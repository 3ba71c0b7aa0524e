"""GitHub's Users API: `GET /users/{username}`, public data that needs no credentials (but checks any sent)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tests.fakes.github.api import GitHub, base, gate
from tests.fakes.github.auth import app_jwt, installation_token
from tests.fakes.github.errors import not_found

router = APIRouter()


@router.get("/users/{username}")
async def get_user(username: str, request: Request, gh: GitHub) -> dict[str, Any]:
    await gate(gh, request, "get_user")
    auth = request.headers.get("authorization", "")
    if auth:  # public data: anonymous is fine, but credentials sent must be good
        if auth.split(" ", 1)[0].lower() == "bearer" and "." in auth:
            app_jwt(gh, request)
        else:
            installation_token(gh, request)
    if username not in gh._users and username not in gh.permissions:
        raise not_found()
    user = gh._user(base(request), username)
    return {**user, "name": None if user["type"] == "Bot" else username.title(), "company": None,
            "blog": "", "location": None, "email": None, "hireable": None, "bio": None,
            "twitter_username": None, "public_repos": 0, "public_gists": 0, "followers": 0, "following": 0,
            "created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z"}
