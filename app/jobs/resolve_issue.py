"""Issue to pull request: what a `resolve_issue` job does once its requester is authorised.

    acknowledge -> fetch -> check out the issue's branch -> setup -> agent rounds -> guard
        -> commit and push -> open or update the pull request -> final status

A retry, a redelivery or a second request on the issue continues the branch an earlier attempt pushed and
updates its pull request: never a second one.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from app.checkout.workspace import Mirror, Workspace, branch_name
from app.github.client import GitHubApp
from app.jobs import report, steps
from app.jobs.briefing import issue_task
from app.jobs.report import Outcome
from app.jobs.steps import Attempt, Run
from app.queue.context import JobContext


async def resolve_issue(ctx: JobContext, app: GitHubApp) -> dict[str, Any]:
    async with steps.opened(ctx, app) as run:
        await steps.acknowledge(run, [ctx.job.payload])
        async with steps.failures_reported(run):
            info = await run.repo.info()
            mirror = await steps.fetch(run, info)
            prefix = run.config.branch_prefix_over(ctx.settings)
            existing = await _existing_branch(mirror, prefix, ctx.job.number)
            title = (ctx.job.payload.get("issue") or {}).get("title", "")
            workspace = await steps.check_out(run, mirror, info,
                                              branch=existing or branch_name(prefix, ctx.job.number, title),
                                              start=existing or info["default_branch"], continued=bool(existing))
            async with steps.kept_if_stopped(run, workspace):
                return await _change_and_open_pull(run, workspace, info)


async def _change_and_open_pull(run: Run, workspace: Workspace, info: dict[str, Any]) -> dict[str, Any]:
    job = run.ctx.job
    sandbox = await steps.prepare_sandbox(run, workspace)
    comments = await run.repo.issue_comments(job.number)
    task = await issue_task(repo=job.repo, trigger=job.payload, comments=comments, requester=job.requester or "",
                            requested_at=job.created_at.replace(tzinfo=UTC), bot_login=run.identity.bot_login,
                            can_write=run.can_write)
    attempt = await steps.agent_rounds(run, workspace, sandbox, task)
    if not attempt.changed or attempt.verification is None:
        return await _no_change(run, attempt)
    await steps.guard_change(run, workspace)
    summary = attempt.result.summary
    title = report.change_title(summary, (job.payload.get("issue") or {}).get("title", ""), job.number)
    pushed = await steps.commit_and_push(run, workspace, sandbox, attempt, title=title, summary=summary)
    pull, opened, draft = await _open_or_update_pull(run, workspace, info, attempt, title=title, sha=pushed.sha)
    await run.status.pull_opened(pull, draft=draft, verification=pushed.verification, attempt=attempt)
    await steps.check_finished(run, pushed.check_run, pushed.verification, attempt.judgement)

    verb = "Opened" if opened else "Updated"
    await run.status.finish(Outcome(f"✅ {verb} #{pull['number']}: {title}" + (" (draft)" if draft else ""),
                                    steps.outcome_details(attempt, pushed.verification)), run.figures)
    return {"outcome": "pull_request", "pull_request": pull["number"], "pull_request_url": pull.get("html_url"),
            "branch": workspace.branch, "commit": pushed.sha, "opened": opened, "draft": draft,
            "summary": summary[:2000], "verification": pushed.verification.to_dict(),
            **steps.result_figures(attempt)}


async def _open_or_update_pull(run: Run, workspace: Workspace, info: dict[str, Any], attempt: Attempt, *,
                               title: str, sha: str) -> tuple[dict[str, Any], bool, bool]:
    """The issue's one pull request: the open one on the branch is updated, else one is opened (a draft when a
    verifier still fails, the judge vetoed twice, or the run stopped early; per `draft:`) and the requester asked
    to review it."""
    job, repo = run.ctx.job, run.repo
    assert attempt.verification is not None
    stopped = steps.stopped_early(attempt.result)
    draft = run.config.opens_as_draft(attempt.sound) or stopped is not None
    body = report.pull_body(summary=attempt.result.summary, issue=job.number, verification=attempt.verification,
                            figures=run.figures, link=run.status.link, requester=job.requester or "",
                            stopped=stopped, judgement=attempt.judgement)
    pull = await repo.find_pull(info["owner"]["login"], workspace.branch)
    opened = not (pull and pull.get("state") == "open")
    if pull and not opened:
        pull = await repo.edit_pull(pull["number"], title=title, body=body)
    else:
        pull = await repo.open_pull(title=title, body=body, head=workspace.branch, base=info["default_branch"],
                                    draft=draft)
        if job.requester:
            await repo.request_review(pull["number"], job.requester)
    # An open pull request is updated as it is: REST cannot make it a draft, and a person may have readied it.
    draft = bool(pull.get("draft", draft))
    await run.ctx.audit.record("pull_request", number=pull["number"], url=pull.get("html_url"), opened=opened,
                               draft=draft, commit=sha)
    return pull, opened, draft


async def _no_change(run: Run, attempt: Attempt) -> dict[str, Any]:
    result = attempt.result
    stopped = steps.stopped_early(result)
    headline = ("💬 I made no change, so there is no pull request." if stopped is None
                else f"⚠️ I stopped before making a change: {stopped}")
    details = [result.summary.strip()] if result.summary.strip() else []
    await run.status.finish(Outcome(headline, details), run.figures)
    return {"outcome": "no_change", "summary": result.summary, "stop": result.stop, **steps.result_figures(attempt)}


async def _existing_branch(mirror: Mirror, prefix: str, number: int) -> str | None:
    """The branch an earlier attempt for this issue pushed, so a retry continues it instead of forking."""
    stem = f"{prefix}issue-{number}"
    for name in await mirror.branches(stem):
        if name == stem or name.startswith(stem + "-"):
            return name
    return None
