"""One repository of a fleet campaign: its pull request, or "not needed".

    claim the target (unless the campaign stopped) -> fetch -> check out the campaign's branch -> setup
        -> agent rounds -> guard -> commit and push -> open or update the one pull request -> record, and queue
        the campaign's bookkeeping

The same named steps as an issue's run (app/jobs/steps.py): sandbox, setup, verifiers, judge, secret guard, audit,
spending. There is no issue in the repository, so the run reports through its check run, its pull request and the
campaign's table, not a status comment. The branch `honk/campaign-<id>-<slug>` is the campaign's in every
repository: a retry, an update or a job re-run after its worker died continues it and updates its pull request,
never a second one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.checkout.workspace import Workspace
from app.github.client import GitHubApp
from app.jobs import campaign_report as say
from app.jobs import report, steps
from app.jobs.campaign import target_job
from app.jobs.steps import Attempt, Run
from app.queue.campaigns import FAILED, NOT_NEEDED, OPENED, STOPPED, STOPPED_TARGET, Campaign, CampaignStore
from app.queue.context import JobContext, JobFailed
from app.settings import github_web_root


async def campaign_target(ctx: JobContext, app: GitHubApp) -> dict[str, Any]:
    job = ctx.job
    store = CampaignStore(ctx.queue)
    campaign_id = int(job.payload.get("campaign_id") or 0)
    target = await asyncio.to_thread(store.target_started, campaign_id, job.repo, job.id)
    made = await asyncio.to_thread(store.get, campaign_id)
    if target is None or made is None:
        if made is not None:
            await asyncio.to_thread(store.sync, made)
        return {"outcome": "not_started", "detail": "the campaign stopped, or a newer job has this repository"}
    total = sum(1 for t in await asyncio.to_thread(store.targets, campaign_id) if t.state != "skipped")
    try:
        result = await _run(ctx, app, made, total)
    except JobFailed as exc:
        if not exc.retry or job.attempts >= job.max_attempts:
            await asyncio.to_thread(store.target_finished, campaign_id, job.repo, job.id, state=FAILED,
                                    reason=str(exc).splitlines()[0][:300], make_job=target_job)
        raise
    except asyncio.CancelledError:
        raise  # stopped: the campaign's stop already marked the target
    except Exception as exc:
        if job.attempts >= job.max_attempts:
            await asyncio.to_thread(store.target_finished, campaign_id, job.repo, job.id, state=FAILED,
                                    reason=f"{type(exc).__name__}: {exc}"[:300], make_job=target_job)
        raise
    await asyncio.to_thread(store.target_finished, campaign_id, job.repo, job.id, state=result["state"],
                            reason=result.get("reason"), pull=result.get("pull"), head_sha=result.get("commit"),
                            checks="pending" if result.get("commit") else None, cost_usd=result.get("cost_usd", 0.0),
                            make_job=target_job)
    return {k: v for k, v in result.items() if k != "pull"} | {"campaign": campaign_id}


async def campaign_target_refused(ctx: JobContext, refusal: dict[str, Any]) -> None:
    """The requester lost write access to the repository after the plan: the target fails, saying so."""
    job = ctx.job
    store = CampaignStore(ctx.queue)
    campaign_id = int(job.payload.get("campaign_id") or 0)
    if await asyncio.to_thread(store.target_started, campaign_id, job.repo, job.id) is not None:
        await asyncio.to_thread(store.target_finished, campaign_id, job.repo, job.id, state=FAILED,
                                reason=refusal.get("detail") or "not authorised", make_job=target_job)


async def _run(ctx: JobContext, app: GitHubApp, made: Campaign, total: int) -> dict[str, Any]:
    async with steps.opened(ctx, app, silent=True) as run, steps.failures_reported(run):
        info = await run.repo.info()
        if info.get("archived"):
            raise JobFailed(f"{ctx.job.repo} is archived (read-only)", retry=False)
        mirror = await steps.fetch(run, info)
        branch = say.campaign_branch(ctx.settings.honk_branch_prefix, made.id, made.title)
        existing = branch in await mirror.branches(branch)
        workspace = await steps.check_out(run, mirror, info, branch=branch,
                                          start=branch if existing else info["default_branch"], continued=existing)
        async with steps.kept_if_stopped(run, workspace):
            return await _change(run, workspace, info, made, total, existing)


async def _change(run: Run, workspace: Workspace, info: dict[str, Any], made: Campaign, total: int,
                  existing: bool) -> dict[str, Any]:
    job = run.ctx.job
    sandbox = await steps.prepare_sandbox(run, workspace)
    attempt = await steps.agent_rounds(run, workspace, sandbox, say.target_task(made, job.repo, total))
    figures = steps.result_figures(attempt)
    if not attempt.changed or attempt.verification is None:
        pull = await run.repo.find_pull(info["owner"]["login"], workspace.branch) if existing else None
        if pull is not None and pull.get("state") == "open":
            return {"state": OPENED, "outcome": "unchanged", "pull": pull, **figures}
        stopped = steps.stopped_early(attempt.result)
        reason = stopped or _first_line(attempt.result.summary) or "nothing to change"
        return {"state": NOT_NEEDED if stopped is None else FAILED, "outcome": "not_needed" if stopped is None
                else "stopped_early", "reason": reason, **figures}
    await steps.guard_change(run, workspace)
    if (halted := await _halted(run, made)) is not None:
        return halted | figures  # what the model cost counts, pushed or not
    summary = attempt.result.summary
    title = report.change_title(summary, made.title, 0)
    pushed = await steps.commit_and_push(run, workspace, sandbox, attempt, title=title, summary=summary,
                                         catch_up=existing)
    pull, opened = await _open_or_update_pull(run, workspace, info, attempt, made, total, title=title)
    await steps.check_finished(run, pushed.check_run, pushed.verification, attempt.judgement)
    return {"state": OPENED, "outcome": "pull_request", "pull": pull, "pull_request": pull["number"],
            "pull_request_url": pull.get("html_url"), "opened": opened, "branch": workspace.branch,
            "commit": pushed.sha, "verification": pushed.verification.to_dict(), **figures}


async def _open_or_update_pull(run: Run, workspace: Workspace, info: dict[str, Any], attempt: Attempt,
                               made: Campaign, total: int, *, title: str) -> tuple[dict[str, Any], bool]:
    """The repository's one pull request of this campaign: the open one on the branch is updated, else one is
    opened (a draft when verifiers still fail or the judge vetoed, per `draft:`). Nobody is asked to review: a
    campaign of 300 repositories would send its requester 300 requests; the table is where they look."""
    repo = run.repo
    assert attempt.verification is not None
    stopped = steps.stopped_early(attempt.result)
    issue_url = f"{github_web_root(run.ctx.settings.github_api_url)}/{made.repo}/issues/{made.number}"
    body = report.pull_body(summary=attempt.result.summary, issue=None, verification=attempt.verification,
                            figures=run.figures, link=run.status.link, requester=made.requester, stopped=stopped,
                            judgement=attempt.judgement, part_of=say.part_of(made, issue_url, total))
    pull = await repo.find_pull(info["owner"]["login"], workspace.branch)
    opened = not (pull and pull.get("state") == "open")
    if pull and not opened:
        pull = await repo.edit_pull(pull["number"], title=title, body=body)
    else:
        draft = run.config.opens_as_draft(attempt.sound) or stopped is not None
        pull = await repo.open_pull(title=title, body=body, head=workspace.branch, base=info["default_branch"],
                                    draft=draft)
    await run.ctx.audit.record("pull_request", number=pull["number"], url=pull.get("html_url"), opened=opened,
                               draft=bool(pull.get("draft")), campaign=made.id)
    return pull, opened


async def _halted(run: Run, made: Campaign) -> dict[str, Any] | None:
    """A `@honk stop` that came while the model worked: nothing is pushed, no pull request opened (the job's own
    cancel follows at its next heartbeat; this closes the window before it). A spent budget lets running work end."""
    now = await asyncio.to_thread(CampaignStore(run.ctx.queue).get, made.id)
    if now is None or now.state != STOPPED:
        return None
    await run.ctx.audit.record("campaign.halted", campaign=made.id, state=now.state)
    return {"state": STOPPED_TARGET, "outcome": "stopped", "reason": now.note or "the campaign was stopped"}


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else ""
