"""The registry: every kind is there, and every kind is authorised once, before it does anything (GitHub at the
HTTP boundary with respx)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from app.audit import MemoryAudit
from app.github.client import GitHubApp
from app.jobs.registry import authorised, handlers
from app.queue.context import JobContext, JobFailed
from app.queue.models import Job
from app.queue.requests import JobKind
from app.settings import Settings
from tests.support import app_private_key

API = "https://github.registry.test/api/v3"


@pytest.fixture(scope="module")
def key() -> str:
    return app_private_key()


@pytest.fixture
def github() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        router.post("/app/installations/42/access_tokens").mock(
            return_value=httpx.Response(201, json={"token": "ghs_registry", "expires_at": expires}))
        yield router


def context(settings: Settings, requester: str | None = "alice") -> tuple[JobContext, MemoryAudit]:
    audit = MemoryAudit()
    job = Job(id=3, kind="resolve_issue", subject="acme/widgets#7", repo="acme/widgets", number=7,
              installation_id=42, requester=requester, payload={}, attempts=1, max_attempts=5)
    return JobContext(job=job, settings=settings, queue=None, audit=audit), audit  # type: ignore[arg-type]


def permission(router: respx.MockRouter, response: httpx.Response) -> respx.Route:
    return router.get("/repos/acme/widgets/collaborators/alice/permission").mock(return_value=response)


def test_every_kind_the_trigger_rules_make_has_a_handler() -> None:
    assert {kind for kind in JobKind if handlers.get(kind) is not None} == set(JobKind)


@pytest.mark.parametrize(("role", "legacy", "seen", "obeyed"), [
    ("write", "write", "write", True), ("maintain", "write", "maintain", True), ("admin", "admin", "admin", True),
    ("triage", "read", "read", False), ("read", "read", "read", False),
    ("custom-reviewer", "write", "write", True),  # a custom role counts by the base level GitHub reports
])
def test_only_writers_get_the_job_done(make_settings: Callable[..., Settings], key: str, github: respx.MockRouter,
                                       role: str, legacy: str, seen: str, obeyed: bool) -> None:
    settings = make_settings(github_app_id=7, github_private_key=key, github_api_url=API)
    permission(github, httpx.Response(200, json={"permission": legacy, "role_name": role}))
    done: list[GitHubApp] = []

    async def job(ctx: JobContext, app: GitHubApp) -> dict[str, Any]:
        done.append(app)
        return {"outcome": "pull_request"}

    ctx, audit = context(settings)
    result = asyncio.run(authorised(job)(ctx))
    assert bool(done) is obeyed
    if obeyed:
        assert result == {"outcome": "pull_request"}
    else:
        assert result["outcome"] == "not_authorised" and result["role"] == seen
        assert "only writers, maintainers and admins are obeyed" in result["detail"]
    assert audit.of_kind("authorisation") == [{"requester": "alice", "role": seen, "allowed": obeyed}]


def test_nobody_and_strangers_are_not_authorised(make_settings: Callable[..., Settings], key: str,
                                                 github: respx.MockRouter) -> None:
    settings = make_settings(github_app_id=7, github_private_key=key, github_api_url=API)
    stranger = permission(github, httpx.Response(404, json={"message": "Not Found"}))

    async def job(ctx: JobContext, app: GitHubApp) -> dict[str, Any]:
        raise AssertionError("an unauthorised job must not run")

    assert asyncio.run(authorised(job)(context(settings)[0]))["role"] == "none"  # not a collaborator
    assert asyncio.run(authorised(job)(context(settings, requester=None)[0]))["requester"] == "nobody"
    assert stranger.call_count == 1  # nobody's request never asks GitHub


def test_a_permission_github_cannot_tell_now_is_retried_later(make_settings: Callable[..., Settings], key: str,
                                                              github: respx.MockRouter) -> None:
    settings = make_settings(github_app_id=7, github_private_key=key, github_api_url=API)
    permission(github, httpx.Response(403, json={"message": "Resource not accessible by integration"}))

    async def job(ctx: JobContext, app: GitHubApp) -> dict[str, Any]:
        raise AssertionError("must not run")

    with pytest.raises(JobFailed) as failed:
        asyncio.run(authorised(job)(context(settings)[0]))
    assert failed.value.retry and "cannot check alice's permission on acme/widgets" in str(failed.value)


def test_without_an_app_the_job_fails_for_good(make_settings: Callable[..., Settings]) -> None:
    async def job(ctx: JobContext, app: GitHubApp) -> dict[str, Any]:
        raise AssertionError("must not run")

    with pytest.raises(JobFailed) as failed:
        asyncio.run(authorised(job)(context(make_settings())[0]))
    assert not failed.value.retry and "GITHUB_APP_ID" in str(failed.value)
