"""Review follow-ups: a review or mention on a pull request comes back as commits on its branch and a
reply in each thread.

    absorb queued siblings -> check each requester -> 👀 -> workspace on the PR's head -> agent + verify
        -> guard -> commit -> push (catch up with a moved branch first) -> replies, resolved threads,
        re-requested reviews, updated figures
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from githubkit.exception import GitHubException

from app import report
from app.briefing import FollowUpBrief, Thread, follow_up_task, thread_answers
from app.github import GitHubApp, Repo
from app.models import JobStatus
from app.pipeline import (
    TEST_TIMEOUT,
    Run,
    StatusComment,
    agent_rounds,
    commit,
    failures_reported,
    guard_change,
    kept_if_stopped,
    load_config,
    prepare_sandbox,
    pushed,
    result_figures,
)
from app.report import JobLink, Outcome
from app.verify import run_tests
from app.worker import JobContext, JobFailed
from app.workspace import GitError, Mirror, Workspace

log = logging.getLogger("honk.followup")
_CLOSES = re.compile(r"(?i)\b(?:closes|fixes|resolves)\s+#(\d+)")


async def follow_up(ctx: JobContext, app: GitHubApp) -> dict[str, Any]:
    job = ctx.job
    identity = await app.identity(job.installation_id)
    link = JobLink(job.id, ctx.settings.honk_public_url)
    absorbed = await asyncio.to_thread(ctx.queue.absorb, job.id, ctx.lease)
    async with await app.repo(job.installation_id, job.repo) as repo:
        run = Run(ctx=ctx, repo=repo, identity=identity, status=StatusComment(repo, job.number, link,
                                                                              identity.bot_login))
        # The job's own requester was authorised; the requests folded into it were not yet.
        triggers = [job.payload] + [j.payload for j in absorbed
                                    if j.requester and await run.can_write(j.requester)]
        await ctx.audit.record("follow_up.requests", triggers=[_describe(t) for t in triggers],
                               absorbed=[j.id for j in absorbed])
        for trigger in triggers:
            await _acknowledge(repo, trigger)
        await run.status.show(report.queued(link))
        async with failures_reported(run):
            return await _follow(run, triggers)


async def _acknowledge(repo: Repo, trigger: dict[str, Any]) -> None:
    comment = trigger.get("comment") or {}
    kind = {"review_comment": "review_comment", "pr_comment": "comment"}.get(trigger.get("type", ""))
    if kind and comment.get("id"):
        try:
            await repo.react(kind, comment["id"])
        except GitHubException as exc:
            log.warning("cannot react to the request: %s", exc)


async def _follow(run: Run, triggers: list[dict[str, Any]]) -> dict[str, Any]:
    ctx, repo = run.ctx, run.repo
    job, settings = ctx.job, ctx.settings
    pull = await repo.pull(job.number)
    head = pull["head"]
    if (head.get("repo") or {}).get("full_name") != job.repo:
        raise JobFailed(f"this pull request's branch lives in a fork ({(head.get('repo') or {}).get('full_name')}); "
                        "I can only push to branches in this repository. Push the branch here and ask again.")
    if pull.get("state") != "open":
        raise JobFailed(f"pull request #{job.number} is {pull.get('state')}; reopen it and ask again.")
    info = await repo.info()

    await run.status.step("preparing a workspace")
    mirror = Mirror.for_url(settings.honk_data_dir, info["clone_url"])
    started = time.monotonic()
    await mirror.fetch(repo.token)
    fetched = time.monotonic()
    run.config = await load_config(mirror, info["default_branch"])
    workspace = await Workspace.create(mirror, settings.honk_data_dir / "workspaces" / f"job-{job.id}",
                                       branch=head["ref"], start=head["ref"])
    await ctx.audit.record("workspace", branch=head["ref"], base=workspace.base, continued=True,
                           default_branch=info["default_branch"], fetch_s=round(fetched - started, 3),
                           clone_s=round(time.monotonic() - fetched, 3))
    async with kept_if_stopped(run, workspace):
        return await _work(run, workspace, pull, triggers)


async def _work(run: Run, workspace: Workspace, pull: dict[str, Any], triggers: list[dict[str, Any]]
                ) -> dict[str, Any]:
    ctx, repo = run.ctx, run.repo
    job = ctx.job
    sandbox = await prepare_sandbox(run, workspace)
    brief = await _brief(run, workspace, pull, triggers)
    attempt = await agent_rounds(run, workspace, sandbox, brief.task)
    general, answers = thread_answers(attempt.result.summary)
    if not attempt.changed or attempt.verification is None:
        await _answer(run, brief, answers, general, sha=None)
        await run.status.finish(Outcome(
            "💬 I made no change this time.", [general] if general else []), run.figures)
        return {"outcome": "no_change", "summary": general, **result_figures(attempt.result)}
    await guard_change(run, workspace)

    await run.status.step("pushing the change")
    diff = await workspace.diff()
    title = report.change_title(general, f"Address review on #{job.number}", job.number)
    started = time.monotonic()
    sha = await commit(run, workspace, title=title, summary=general)
    verification = attempt.verification
    notes: list[str] = []
    try:
        await workspace.push(repo.token)
    except GitError:
        # Someone pushed to the branch meanwhile: put our commit on top of theirs, check again, push.
        identity = run.identity
        if not await workspace.catch_up(repo.token, name=identity.bot_login, email=identity.bot_email):
            raise JobFailed("the branch moved while I worked and my change conflicts with the new commits; "
                            "nothing was pushed. Ask again to start from the branch as it is now.") from None
        sha = await workspace.head()
        if verification.command:
            verification = await run_tests(sandbox, verification.command, verification.reason, TEST_TIMEOUT)
        await ctx.audit.record("verify.tests", after_catch_up=True, **verification.to_dict())
        notes.append("The branch had new commits; my change is on top of them.")
        await workspace.push(repo.token)
    await pushed(run, workspace, sha, attempt.changed, diff, started)

    await _answer(run, brief, answers, general, sha=sha)
    fresh = await repo.pull(job.number)
    if fresh.get("mergeable") is False:
        notes.append(f"⚠️ The base branch `{fresh['base']['ref']}` has moved and this pull request no longer merges "
                     "cleanly.")
    await _update_figures(run, fresh)
    await run.status.finish(Outcome(
        f"✅ Pushed {sha[:7]} to `{workspace.branch}`: {title}",
        [report.verification_line(verification), *notes]), run.figures)
    return {"outcome": "pushed", "commit": sha, "branch": workspace.branch, "summary": general,
            "threads": [t.root_id for t in brief.threads], "verification": verification.to_dict(),
            **result_figures(attempt.result)}


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
