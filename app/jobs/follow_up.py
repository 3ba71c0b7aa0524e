"""Review follow-ups: a review or mention on a pull request comes back as commits on its branch and a
reply in each thread.

    absorb queued siblings -> check each requester -> acknowledge -> fetch -> check out the pull request's head
        -> setup -> agent rounds -> guard -> commit and push (catching up with a moved branch)
        -> replies, resolved threads, re-requested reviews, updated figures
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from githubkit.exception import GitHubException

from app.checkout.workspace import Workspace
from app.github.client import GitHubApp, Repo
from app.jobs import report, steps
from app.jobs.briefing import FollowUpBrief, Thread, follow_up_task, thread_answers
from app.jobs.report import Outcome
from app.jobs.steps import Run
from app.queue.context import JobContext, JobFailed
from app.queue.models import JobStatus

log = logging.getLogger("honk.followup")
_CLOSES = re.compile(r"(?i)\b(?:closes|fixes|resolves)\s+#(\d+)")


async def follow_up(ctx: JobContext, app: GitHubApp) -> dict[str, Any]:
    job = ctx.job
    absorbed = await asyncio.to_thread(ctx.queue.absorb, job.id, ctx.lease)
    async with steps.opened(ctx, app) as run:
        # The job's own requester was authorised; the requests folded into it were not yet.
        triggers = [job.payload] + [j.payload for j in absorbed
                                    if j.requester and await run.can_write(j.requester)]
        await ctx.audit.record("follow_up.requests", triggers=[_describe(t) for t in triggers],
                               absorbed=[j.id for j in absorbed])
        await steps.acknowledge(run, triggers)
        async with steps.failures_reported(run):
            pull = await _open_pull_in_this_repository(run)
            info = await run.repo.info()
            mirror = await steps.fetch(run, info)
            head = pull["head"]["ref"]
            workspace = await steps.check_out(run, mirror, info, branch=head, start=head, continued=True)
            async with steps.kept_if_stopped(run, workspace):
                return await _change_and_answer(run, workspace, pull, triggers)


async def _open_pull_in_this_repository(run: Run) -> dict[str, Any]:
    job = run.ctx.job
    pull = await run.repo.pull(job.number)
    home = (pull["head"].get("repo") or {}).get("full_name")
    if home != job.repo:
        raise JobFailed(f"this pull request's branch lives in a fork ({home}); I can only push to branches in "
                        "this repository. Push the branch here and ask again.")
    if pull.get("state") != "open":
        raise JobFailed(f"pull request #{job.number} is {pull.get('state')}; reopen it and ask again.")
    return pull


async def _change_and_answer(run: Run, workspace: Workspace, pull: dict[str, Any], triggers: list[dict[str, Any]]
                             ) -> dict[str, Any]:
    job = run.ctx.job
    sandbox = await steps.prepare_sandbox(run, workspace)
    brief = await _brief(run, workspace, pull, triggers)
    attempt = await steps.agent_rounds(run, workspace, sandbox, brief.task)
    general, answers = thread_answers(attempt.result.summary)
    if not attempt.changed or attempt.verification is None:
        await _answer(run, brief, answers, general, sha=None)
        await run.status.finish(Outcome(
            "💬 I made no change this time.", [general] if general else []), run.figures)
        return {"outcome": "no_change", "summary": general, **steps.result_figures(attempt)}
    await steps.guard_change(run, workspace)
    title = report.change_title(general, f"Address review on #{job.number}", job.number)
    pushed = await steps.commit_and_push(run, workspace, sandbox, attempt, title=title, summary=general,
                                         catch_up=True)

    await _answer(run, brief, answers, general, sha=pushed.sha)
    notes = pushed.notes
    fresh = await run.repo.pull(job.number)
    if fresh.get("mergeable") is False:
        notes.append(f"⚠️ The base branch `{fresh['base']['ref']}` has moved and this pull request no longer merges "
                     "cleanly.")
    await _update_figures(run, fresh)
    await steps.check_finished(run, pushed.check_run, pushed.verification, attempt.judgement)
    await run.status.finish(Outcome(f"✅ Pushed {pushed.sha[:7]} to `{workspace.branch}`: {title}",
                                    [*steps.outcome_details(attempt, pushed.verification), *notes]), run.figures)
    return {"outcome": "pushed", "commit": pushed.sha, "branch": workspace.branch, "summary": general,
            "threads": [t.root_id for t in brief.threads], "verification": pushed.verification.to_dict(),
            **steps.result_figures(attempt)}


async def _brief(run: Run, workspace: Workspace, pull: dict[str, Any], triggers: list[dict[str, Any]]
                 ) -> FollowUpBrief:
    repo, job = run.repo, run.ctx.job
    review_comments = await repo.review_comments(job.number)
    threads = await _unresolved(repo, job.number, review_comments)
    closes = _CLOSES.search(pull.get("body") or "")
    issue = await repo.issue(int(closes.group(1))) if closes else None
    base = pull["base"]["ref"]
    merge_base = await workspace.git("merge-base", "HEAD", f"refs/remotes/base/{base}", check=False)
    if not merge_base.strip():
        await workspace.git("fetch", "--quiet", "--no-tags", str(workspace.mirror.path),
                            f"+refs/heads/{base}:refs/remotes/base/{base}")
    diff = await workspace.git("diff", "--no-color", "--no-ext-diff", "--no-textconv",
                               f"refs/remotes/base/{base}...HEAD", check=False)
    return await follow_up_task(repo=job.repo, pull=pull, triggers=triggers, review_comments=review_comments,
                                unresolved=threads, history=await _history(run, issue), diff=diff, issue=issue,
                                bot_login=run.identity.bot_login, can_write=run.can_write)


async def _unresolved(repo: Repo, number: int, comments: list[dict[str, Any]]) -> list[Thread]:
    by_id = {c["id"]: c for c in comments}
    try:
        threads = await repo.review_threads(number)
    except GitHubException as exc:
        log.warning("cannot list review threads: %s", exc)
        return []
    found = []
    for thread in threads:
        members = [by_id[i] for i in thread["comment_ids"] if i in by_id]
        if not thread["resolved"] and members:
            root = members[0]
            found.append(Thread(root["id"], root.get("path", ""), root.get("line"), root.get("diff_hunk", ""),
                                members))
    return found


async def _history(run: Run, issue: dict[str, Any] | None) -> list[str]:
    """A few lines on Honk's earlier runs on this pull request (and its issue), so it does not start cold."""
    job = run.ctx.job
    subjects = [job.subject] + ([f"{job.repo}#{issue['number']}"] if issue else [])
    lines = []
    for subject in subjects:
        for earlier in await asyncio.to_thread(run.ctx.queue.on_subject, subject, limit=5,
                                               statuses=(JobStatus.SUCCEEDED, JobStatus.FAILED)):
            if earlier.id == job.id or (earlier.result or {}).get("outcome") == "merged":
                continue
            result = earlier.result or {}
            what = result.get("outcome") or earlier.error or earlier.status
            summary = (result.get("summary") or "").strip().splitlines()[:1]
            commit_ = f", commit {result['commit'][:7]}" if result.get("commit") else ""
            lines.append(f"job #{earlier.id} ({earlier.kind}, {earlier.status}: {what}{commit_})"
                         + (f": {summary[0][:200]}" if summary else ""))
    return lines


async def _answer(run: Run, brief: FollowUpBrief, answers: dict[int, str], general: str, *, sha: str | None
                  ) -> None:
    """A reply in each thread, one PR comment for review-level requests, resolved threads, re-requested
    reviews."""
    repo, number = run.repo, run.ctx.job.number
    short = sha[:7] if sha else None
    for thread in brief.threads:
        said = answers.get(thread.root_id) or general or "Done."
        body = f"Addressed in {short}: {said}" if short else f"No change here: {said}"
        await repo.reply(number, thread.root_id, body)
    if brief.conversation:
        lead = f"Pushed {short}." if short else "I made no change."
        await repo.comment(number, f"{lead} {general}".strip())
    if short:
        await _resolve_threads(repo, number, {t.root_id for t in brief.threads})
        for reviewer in brief.reviewers:
            await repo.request_review(number, reviewer)
    await run.ctx.audit.record("follow_up.answered", threads=[t.root_id for t in brief.threads],
                               conversation=len(brief.conversation), commit=sha, reviewers=brief.reviewers)


async def _resolve_threads(repo: Repo, number: int, roots: set[int]) -> None:
    if not roots:
        return
    try:
        for thread in await repo.review_threads(number):
            if not thread["resolved"] and roots & set(thread["comment_ids"]):
                await repo.resolve_thread(thread["id"])
    except GitHubException as exc:
        log.warning("cannot resolve review threads: %s", exc)  # the replies stand without it


async def _update_figures(run: Run, pull: dict[str, Any]) -> None:
    body = pull.get("body") or ""
    line = (f"Follow-up {run.status.link.markdown()} · {run.figures.line()}")
    updated = report.with_follow_up(body, line)
    if updated != body:
        await run.repo.edit_pull(pull["number"], body=updated)


def _describe(trigger: dict[str, Any]) -> dict[str, Any]:
    return {"type": trigger.get("type"), "sender": (trigger.get("sender") or {}).get("login"),
            "comment": (trigger.get("comment") or {}).get("id"), "review": (trigger.get("review") or {}).get("id")}
