"""The job kinds Honk runs, registered with the worker.

Every kind starts the same way: the requester must have write access, checked against GitHub at run time
(the webhook route stays fast, and a permission revoked while the job waited is honoured). A request from
anyone else ends at once as "not authorised" and touches nothing.
"""

from __future__ import annotations

from typing import Any

from githubkit.exception import GitHubException

from app import pipeline
from app.github import GitHubApp, GitHubNotConfigured, can_write
from app.jobs import JobKind
from app.worker import Handlers, JobContext, JobFailed

handlers = Handlers()


class NotAuthorised(Exception):
    def __init__(self, login: str, role: str) -> None:
        super().__init__(f"{login} has {role!r} access; only writers, maintainers and admins are obeyed")
        self.login = login
        self.role = role


async def authorise(ctx: JobContext) -> GitHubApp:
    job = ctx.job
    try:
        app = GitHubApp(ctx.settings)
    except GitHubNotConfigured as exc:
        raise JobFailed(str(exc), retry=False) from None
    if not job.requester or job.installation_id is None:
        raise NotAuthorised(job.requester or "nobody", "none")
    try:
        role = await app.permission(job.installation_id, job.repo, job.requester)
    except GitHubException as exc:
        # GitHub being down or rate-limiting is worth another attempt; the job keeps its place.
        raise JobFailed(f"cannot check {job.requester}'s permission on {job.repo}: {exc}", retry=True) from exc
    await ctx.audit.record("authorisation", requester=job.requester, role=role, allowed=can_write(role))
    if not can_write(role):
        raise NotAuthorised(job.requester, role)
    return app


def _refused(exc: NotAuthorised) -> dict[str, Any]:
    return {"outcome": "not_authorised", "requester": exc.login, "role": exc.role, "detail": str(exc)}


@handlers.register(JobKind.RESOLVE_ISSUE)
async def resolve_issue(ctx: JobContext) -> dict[str, Any]:
    try:
        app = await authorise(ctx)
    except NotAuthorised as exc:
        return _refused(exc)
    return await pipeline.resolve_issue(ctx, app)


@handlers.register(JobKind.FOLLOW_UP)
async def follow_up(ctx: JobContext) -> dict[str, Any]:
    try:
        await authorise(ctx)
    except NotAuthorised as exc:
        return _refused(exc)
    raise JobFailed("this build of Honk accepts and authorises review requests but cannot yet act on them "
                    "(the review follow-up pipeline is not installed)")
