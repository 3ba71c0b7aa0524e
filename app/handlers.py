"""The job kinds Honk runs, registered with the worker.

Every kind starts the same way: the requester must have write access, checked against GitHub at run time
(the webhook route stays fast, and a permission revoked while the job waited is honoured). A request from
anyone else ends at once as "not authorised" and touches nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from githubkit.exception import GitHubException

from app import followup, pipeline
from app.github import GitHubApp, GitHubNotConfigured, can_write
from app.jobs import JobKind, JobRequest
from app.models import JobStatus
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
        app = GitHubApp.for_settings(ctx.settings)
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
        app = await authorise(ctx)
    except NotAuthorised as exc:
        return _refused(exc)
    return await followup.follow_up(ctx, app)


@handlers.register(JobKind.CONTROL)
async def control(ctx: JobContext) -> dict[str, Any]:
    """`@honk stop` cancels what runs or waits on the issue or pull request (its work so far is kept, nothing is
    pushed half-done); `@honk retry` queues the last failed job again."""
    try:
        app = await authorise(ctx)
    except NotAuthorised as exc:
        return _refused(exc)
    job = ctx.job
    subject = f"{job.repo}#{job.number}"
    comment = job.payload.get("comment") or {}
    async with await app.repo(job.installation_id, job.repo) as repo:
        if comment.get("id"):
            await repo.react("comment", comment["id"])
        if job.payload.get("command") == "stop":
            active = await asyncio.to_thread(ctx.queue.on_subject, subject,
                                             statuses=(JobStatus.QUEUED, JobStatus.RUNNING))
            for target in active:
                await asyncio.to_thread(ctx.queue.cancel, target.id)
            ids = ", ".join(f"#{t.id}" for t in active)
            await repo.comment(job.number, f"🛑 Stopping job {ids} as @{job.requester} asked; nothing half-done "
                                           "is pushed." if active else "Nothing of mine is running here.")
            return {"outcome": "stopped", "cancelled": [t.id for t in active]}
        failed = await asyncio.to_thread(ctx.queue.on_subject, subject, statuses=(JobStatus.FAILED,), limit=1)
        if not failed:
            await repo.comment(job.number, "There is no failed job of mine here to retry.")
            return {"outcome": "nothing_to_retry"}
        again = JobRequest(kind=JobKind(failed[0].kind), repo=job.repo, number=job.number,
                           requester=job.requester or "", installation_id=job.installation_id or 0,
                           trigger={**failed[0].payload, "retry_of": failed[0].id})
        new_id = await asyncio.to_thread(ctx.queue.enqueue, again)
        await repo.comment(job.number, f"🔁 Retrying job #{failed[0].id} as job #{new_id}.")
        return {"outcome": "retried", "retry_of": failed[0].id, "job": new_id}
