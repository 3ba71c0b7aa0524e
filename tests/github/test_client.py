"""The GitHub client at the HTTP boundary (respx): tokens, identity, permissions and the retry policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from githubkit.exception import RequestFailed

from app.github.client import GitHubApp, GitHubRetry
from app.settings import Settings
from tests.support import app_private_key

API = "https://ghe.example.com/api/v3"


@pytest.fixture(scope="module")
def key() -> str:
    return app_private_key()


@pytest.fixture
def app(make_settings: Callable[..., Settings], key: str) -> GitHubApp:
    settings = make_settings(github_app_id=7, github_private_key=key, github_api_url=API)
    return GitHubApp(settings, retry=GitHubRetry(base_seconds=0.01))


@pytest.fixture
def gh() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        router.post("/app/installations/42/access_tokens").mock(side_effect=lambda _: httpx.Response(
            201, json={"token": f"ghs_{time.monotonic_ns()}", "expires_at": _later(hours=1)}))
        yield router


def _later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_installation_token_is_cached_until_shortly_before_it_expires(app: GitHubApp, gh: respx.MockRouter) -> None:
    async def scenario() -> tuple[str, str, str]:
        first = await app.token(42)
        again = await app.token(42)
        app._tokens[42] = type(first)(first.token, datetime.now(UTC) + timedelta(minutes=2))  # nearly expired
        renewed = await app.token(42)
        return first.token, again.token, renewed.token

    first, again, renewed = run(scenario())
    assert first == again != renewed
    calls = gh.routes[0].calls
    assert len(calls) == 2
    assert calls[0].request.headers["authorization"].startswith("Bearer ")  # the App's JWT


def test_identity_is_learnt_once_as_app_then_as_installation(app: GitHubApp, gh: respx.MockRouter) -> None:
    get_app = gh.get("/app").respond(200, json={"id": 7, "slug": "honk-test", "name": "Honk"})
    bot = gh.get("/users/honk-test[bot]").respond(200, json={"id": 99, "login": "honk-test[bot]", "type": "Bot"})

    identity = run(app.identity(42))
    assert run(app.identity(42)) is identity
    assert (identity.bot_login, identity.bot_email) == ("honk-test[bot]", "99+honk-test[bot]@users.noreply.github.com")
    assert get_app.call_count == 1 and bot.call_count == 1
    assert get_app.calls[0].request.headers["authorization"].startswith("Bearer ")
    assert bot.calls[0].request.headers["authorization"].startswith(("token ghs_", "Bearer ghs_"))


@pytest.mark.parametrize(("answer", "role"), [
    ({"permission": "write", "role_name": "maintain"}, "maintain"),
    ({"permission": "admin", "role_name": "admin"}, "admin"),
    ({"permission": "write", "role_name": "release-manager"}, "write"),  # a custom role based on write
    ({"permission": "read", "role_name": "triage"}, "read"),
])
def test_permission_roles(app: GitHubApp, gh: respx.MockRouter, answer: dict[str, str], role: str) -> None:
    gh.get("/repos/acme/widgets/collaborators/alice/permission").respond(200, json=answer)
    assert run(app.permission(42, "acme/widgets", "alice")) == role


def test_a_stranger_has_no_permission(app: GitHubApp, gh: respx.MockRouter) -> None:
    route = gh.get("/repos/acme/widgets/collaborators/eve/permission").respond(404, json={"message": "Not Found"})
    assert run(app.permission(42, "acme/widgets", "eve")) == "none"
    assert route.call_count == 1  # a 404 is an answer, not a reason to ask again


def test_server_errors_and_dropped_connections_are_retried(app: GitHubApp, gh: respx.MockRouter) -> None:
    route = gh.get("/repos/acme/widgets").mock(side_effect=[
        httpx.Response(502, json={"message": "Server Error"}), httpx.ConnectError("reset"),
        httpx.Response(200, json={"default_branch": "main"})])

    async def scenario() -> dict[str, Any]:
        async with await app.repo(42, "acme/widgets") as repo:
            return await repo.info()

    assert run(scenario()) == {"default_branch": "main"}
    assert route.call_count == 3


def test_secondary_rate_limit_waits_as_told(app: GitHubApp, gh: respx.MockRouter) -> None:
    route = gh.post("/repos/acme/widgets/issues/3/comments").mock(side_effect=[
        httpx.Response(403, headers={"retry-after": "1"},
                       json={"message": "You have exceeded a secondary rate limit."}),
        httpx.Response(201, json={"id": 5, "body": "hi"})])

    async def scenario() -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        async with await app.repo(42, "acme/widgets") as repo:
            return await repo.comment(3, "hi"), time.monotonic() - started

    comment, waited = run(scenario())
    assert comment["id"] == 5 and route.call_count == 2
    assert waited >= 1.0  # it honoured retry-after rather than hammering


def test_a_wait_beyond_the_cap_fails_now_and_is_left_to_the_queue(app: GitHubApp, gh: respx.MockRouter) -> None:
    reset = str(int(time.time()) + 3600)
    route = gh.get("/repos/acme/widgets").respond(
        403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
        json={"message": "API rate limit exceeded"})

    async def scenario() -> None:
        async with await app.repo(42, "acme/widgets") as repo:
            await repo.info()

    with pytest.raises(RequestFailed):
        run(scenario())
    assert route.call_count == 1


def test_client_errors_are_not_retried(app: GitHubApp, gh: respx.MockRouter) -> None:
    route = gh.post("/repos/acme/widgets/pulls").respond(422, json={"message": "Validation Failed"})

    async def scenario() -> None:
        async with await app.repo(42, "acme/widgets") as repo:
            await repo.open_pull(title="t", body="b", head="honk/issue-1", base="main", draft=False)

    with pytest.raises(RequestFailed):
        run(scenario())
    assert route.call_count == 1


def test_one_app_object_per_process_and_a_revoked_token_is_dropped(make_settings: Callable[..., Settings], key: str,
                                                                    gh: respx.MockRouter) -> None:
    settings = make_settings(github_app_id=7, github_private_key=key, github_api_url=API)
    app = GitHubApp.for_settings(settings)
    assert GitHubApp.for_settings(make_settings(github_app_id=7, github_private_key=key, github_api_url=API)) is app
    assert GitHubApp.for_settings(make_settings(github_app_id=8, github_private_key=key, github_api_url=API)) is not app
    gh.get("/repos/acme/widgets").mock(side_effect=[httpx.Response(401, json={"message": "Bad credentials"}),
                                                    httpx.Response(200, json={"default_branch": "main"})])

    async def scenario() -> tuple[str, str, str]:
        first = (await app.token(42)).token
        async with await app.repo(42, "acme/widgets") as repo:
            with pytest.raises(RequestFailed):
                await repo.info()
        second = (await app.token(42)).token  # a new one, not the refused one
        async with await app.repo(42, "acme/widgets") as repo:
            await repo.info()
        return first, second, (await app.token(42)).token

    first, second, third = run(scenario())
    assert first != second == third
