"""Re-run on Honk's check run: the verifiers run again on the pull request's current head.

    new `Honk` check run (in progress) -> fetch -> check out the head -> setup -> verifiers -> complete the check

It reports in the check run alone (a silent status comment): the person who pressed "Re-run" is looking there.
Nothing is changed or pushed, and the judge is not asked again: the diff it read has not changed.
"""

from __future__ import annotations

from typing import Any

from app.checkout.sandbox import SandboxError
from app.checkout.workspace import GitError
from app.github.client import GitHubApp
from app.jobs import steps
from app.jobs.verifiers import verifiers_for
from app.queue.context import JobContext, JobFailed


async def recheck(ctx: JobContext, app: GitHubApp) -> dict[str, Any]:
    job = ctx.job
    async with steps.opened(ctx, app, silent=True) as run:
        pull = await run.repo.pull(job.number)
        head, branch = pull["head"]["sha"], pull["head"]["ref"]
        if (pull["head"].get("repo") or {}).get("full_name") != job.repo:
            return {"outcome": "skipped", "reason": "the pull request's branch lives in a fork"}
        check_run = await steps.check_started(run, head)
        asked = f"Verified again on {head[:7]} as @{job.requester} asked."
        try:
            info = await run.repo.info()
            mirror = await steps.fetch(run, info)
            workspace = await steps.check_out(run, mirror, info, branch=branch, start=branch, continued=True)
            if workspace.base != head:  # pushed to since GitHub answered: verify, and report on, what is there now
                head = workspace.base
            try:
                sandbox = await steps.prepare_sandbox(run, workspace)
                verifiers, no_verifiers = verifiers_for(run.config, workspace.path)
                verification = await steps.verify(run, sandbox, verifiers, no_verifiers)
            finally:
                workspace.remove()
        except (JobFailed, GitError, SandboxError) as exc:
            # The check says why it could not verify; a retry would only fail the same way.
            await steps.check_finished(run, check_run, None, None, note=f"{asked} It could not run: {exc}")
            return {"outcome": "not_verified", "head": head, "error": str(exc)[:2000], "check_run": check_run}
        await steps.check_finished(run, check_run, verification, None, note=asked)
        return {"outcome": "verified", "head": head, "check_run": check_run, "verification": verification.to_dict()}
