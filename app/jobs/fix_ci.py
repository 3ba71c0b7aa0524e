"""CI failures fixed: a red CI run on the head Honk pushed to its pull request comes back as a fix commit.

    is it Honk's, still the head, not handled, under the bound? -> read the failing checks and logs
        -> status comment -> fetch -> check out the branch -> setup -> agent rounds -> guard
        -> commit and push (`Honk-Fix: ci`) -> check run -> final status

Unasked (`check_suite` / `workflow_run` completed with failure), Honk acts only on a head it pushed itself, once
per head however many events name it, and at most HONK_CI_FIX_ROUNDS times in a row; then it says so in the pull
request and stops. A writer's `@honk fix ci` asks for one more, on any head.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.checkout.workspace import Mirror
from app.github.client import GitHubApp
from app.jobs import ci, report, steps
from app.jobs.report import Outcome
from app.jobs.steps import Run
from app.queue.context import JobContext
from app.queue.models import JobStatus
from app.queue.requests import JobKind


async def fix_ci(ctx: JobContext, app: GitHubApp) -> dict[str, Any]:
    job, settings = ctx.job, ctx.settings
    asked = job.payload.get("type") == "fix_ci_command"
    # Unasked, nothing is said on GitHub until Honk knows it will act: most CI events need no answer.
    async with steps.opened(ctx, app, silent=not asked) as run:
        if asked:
            await steps.acknowledge(run, [job.payload])
        pull = await run.repo.pull(job.number)
        head = pull["head"]["sha"]
        if asked and (problem := _unworkable(pull, job.repo)):
            await run.status.finish(Outcome(f"❌ I cannot fix CI here: {problem}."), None)
            return {"outcome": "skipped", "reason": problem, "ci_head": head}
        info = await run.repo.info()
        mirror = await steps.fetch(run, info)
        skip = None if asked else await _why_not(run, pull, mirror)
        if skip:
            await ctx.audit.record("ci.skipped", reason=skip, head=head)
            return {"outcome": "skipped", "reason": skip, "ci_head": head}
        rounds = await ci.fixes_in_a_row(mirror, head, run.identity)
        if not asked and rounds >= settings.honk_ci_fix_rounds:
            return await _stop(run, head, rounds)
        failures, unread = await ci.failing_checks(run.repo, head, app_id=settings.github_app_id,
                                                   runs=_runs_named(job.payload))
        await ctx.audit.record("ci.failures", head=head, checks=[f.name for f in failures], unread=unread,
                               round=rounds + 1, asked=asked)
        if not failures:
            if asked:
                await run.status.finish(Outcome(f"💬 No check is failing on {head[:7]}, so there is nothing to fix."),
                                        None)
            return {"outcome": "nothing_to_fix", "ci_head": head}
        if not asked:
            run.status.silent = False  # Honk will act: from here on the pull request hears about it
            await steps.acknowledge(run, [job.payload])
        async with steps.failures_reported(run):
            branch = pull["head"]["ref"]
            workspace = await steps.check_out(run, mirror, info, branch=branch, start=branch, continued=True)
            async with steps.kept_if_stopped(run, workspace):
                sandbox = await steps.prepare_sandbox(run, workspace)
                task = ci.ci_task(repo=job.repo, pull=pull, sha=head, failures=failures, unread=unread,
                                  asked_by=job.requester if asked else None)
                attempt = await steps.agent_rounds(run, workspace, sandbox, task)
                if not attempt.changed or attempt.verification is None:
                    await run.status.finish(Outcome("💬 I found nothing to change for the failing checks.",
                                                    [attempt.result.summary.strip()]), run.figures)
                    return {"outcome": "no_change", "ci_head": head, **steps.result_figures(attempt)}
                await steps.guard_change(run, workspace)
                title = report.change_title(attempt.result.summary, f"Fix CI on #{job.number}", job.number)
                pushed = await steps.commit_and_push(run, workspace, sandbox, attempt, title=title,
                                                     summary=attempt.result.summary, catch_up=True, ci_fix=True)
                await steps.check_finished(run, pushed.check_run, pushed.verification, attempt.judgement)
                await run.status.finish(Outcome(
                    f"✅ Pushed {pushed.sha[:7]} to `{branch}` to fix CI ({', '.join(f.name for f in failures)}): "
                    f"{title}", [*steps.outcome_details(attempt, pushed.verification), *pushed.notes]), run.figures)
                return {"outcome": "pushed", "ci_head": head, "commit": pushed.sha, "round": rounds + 1,
                        "checks": [f.name for f in failures], "verification": pushed.verification.to_dict(),
                        **steps.result_figures(attempt)}


async def _why_not(run: Run, pull: dict[str, Any], mirror: Mirror) -> str | None:
    """Why an unasked CI fix must not run, or None when it should."""
    job = run.ctx.job
    head, asked_for = pull["head"]["sha"], job.payload.get("head_sha")
    if problem := _unworkable(pull, job.repo):
        return problem
    if asked_for and asked_for != head:
        return f"the failing commit {asked_for[:7]} is no longer the head ({head[:7]}): a newer push is tested"
    if not await ci.pushed_by_honk(mirror, head, run.identity):
        return f"the head {head[:7]} was pushed by a person; Honk fixes CI on its own commits unless asked"
    if await _handled(run, head):
        return f"CI on {head[:7]} was already answered by an earlier job"
    return None


def _unworkable(pull: dict[str, Any], repo: str) -> str | None:
    if pull.get("state") != "open":
        return f"pull request #{pull.get('number')} is {pull.get('state')}"
    if (pull["head"].get("repo") or {}).get("full_name") != repo:
        return "the pull request's branch lives in a fork, and Honk pushes only to branches in this repository"
    return None


async def _handled(run: Run, head: str) -> bool:
    """Whether an earlier CI fix (done or failed for good) answered this head: GitHub sends a suite's and a
    workflow run's completion for one failure, and redelivers."""
    earlier = await asyncio.to_thread(run.ctx.queue.on_subject, run.ctx.job.subject, limit=50,
                                      statuses=(JobStatus.SUCCEEDED, JobStatus.FAILED))
    return any(j.kind == JobKind.FIX_CI and j.id != run.ctx.job.id
               and ((j.result or {}).get("ci_head") == head or (j.payload or {}).get("head_sha") == head)
               and (j.result or {}).get("outcome") != "skipped" for j in earlier)


async def _stop(run: Run, head: str, rounds: int) -> dict[str, Any]:
    """The bound is reached: say so once in the pull request, and what would start another round."""
    job = run.ctx.job
    marker = f"<!-- honk:ci-stopped={head} -->"
    if not any(marker in (c.get("body") or "") for c in await run.repo.issue_comments(job.number)):
        trigger = run.ctx.settings.honk_trigger
        await run.repo.comment(job.number, (
            f"🛑 CI still fails on {head[:7]} after {rounds} fix{'es' if rounds != 1 else ''} in a row without a "
            f"green run (`HONK_CI_FIX_ROUNDS` is {run.ctx.settings.honk_ci_fix_rounds}), so I stopped fixing it "
            f"on my own. Write `{trigger} fix ci` for one more round, or push a fix.\n\n{marker}"))
    await run.ctx.audit.record("ci.stopped", head=head, rounds=rounds)
    return {"outcome": "ci_fix_limit", "ci_head": head, "rounds": rounds}


def _runs_named(payload: dict[str, Any]) -> frozenset[int]:
    run_id = (payload.get("workflow_run") or {}).get("id")
    return frozenset([run_id]) if isinstance(run_id, int) else frozenset()
