"""`@honk stop` and `@honk retry` on an issue or pull request, once the requester is authorised.

Stop cancels what runs or waits on the subject (its work so far is kept on disk, nothing is pushed half-done);
retry queues the subject's last failed job again. Control requests have a subject of their own, so they act
while the job they are about runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.github.client import GitHubApp, Repo
from app.jobs.steps import reaction_target
from app.queue.context import JobContext
from app.queue.models import JobStatus
from app.queue.requests import JobKind, JobRequest


async def control(ctx: JobContext, app: GitHubApp) -> dict[str, Any]:
    job = ctx.job
    async with await app.repo(job.installation_id, job.repo) as repo:
        target = reaction_target(job.payload)
        if target is not None:
            await repo.react(*target)
        if job.payload.get("command") == "stop":
            return await _stop(ctx, repo)
        return await _retry(ctx, repo)


async def _stop(ctx: JobContext, repo: Repo) -> dict[str, Any]:
    job = ctx.job
    active = await asyncio.to_thread(ctx.queue.on_subject, f"{job.repo}#{job.number}",
                                     statuses=(JobStatus.QUEUED, JobStatus.RUNNING))
    for target in active:
        await asyncio.to_thread(ctx.queue.cancel, target.id)
    ids = ", ".join(f"#{t.id}" for t in active)
    await repo.comment(job.number, f"🛑 Stopping job {ids} as @{job.requester} asked; nothing half-done "
                                   "is pushed." if active else "Nothing of mine is running here.")
    return {"outcome": "stopped", "cancelled": [t.id for t in active]}


async def _retry(ctx: JobContext, repo: Repo) -> dict[str, Any]:
    job = ctx.job
    failed = await asyncio.to_thread(ctx.queue.on_subject, f"{job.repo}#{job.number}", statuses=(JobStatus.FAILED,),
                                     limit=1)
    if not failed:
        await repo.comment(job.number, "There is no failed job of mine here to retry.")
        return {"outcome": "nothing_to_retry"}
    again = JobRequest(kind=JobKind(failed[0].kind), repo=job.repo, number=job.number, requester=job.requester or "",
                       installation_id=job.installation_id or 0,
                       trigger={**failed[0].payload, "retry_of": failed[0].id})
    new_id = await asyncio.to_thread(ctx.queue.enqueue, again)
    await repo.comment(job.number, f"🔁 Retrying job #{failed[0].id} as job #{new_id}.")
    return {"outcome": "retried", "retry_of": failed[0].id, "job": new_id}
