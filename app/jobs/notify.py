"""News about a pull request for the Slack thread that asked for it (CONTRACT.md section 8): a reply when its
checks finish, when a deployment of its head reports a preview URL, when a review requests changes, and when it
is merged or closed. Never by polling: each reply answers a webhook (`notify_of` in app/intake/triggers.py).

    the thread following this pull request? -> what to say (GitHub, when the delivery is not enough)
        -> said before? -> reply in the thread

Most pull requests have no Slack thread: the job then ends at once, quietly, having asked GitHub nothing. Nobody
is authorised: the job acts on nothing, and writes only into a thread that already follows this pull request of
this repository.

Each reply has a key, and a key is said once per thread, however many deliveries carry the same news:

- checks: `checks:<head sha>:<passed|failed>`. GitHub sends one `check_suite.completed` per App, so a head has
  several; each job reads every check run of the head and replies only once none (but Honk's own, whose suite
  sends no news) is still running: the last suite to finish says it, once. A re-run that changes the verdict on
  the same head is said again.
- preview: `preview:<environment URL>`. A deployment names a commit, not a pull request: its job finds the pull
  request whose head that commit is, then queues the reply on that pull request's subject.
- changes requested: `review:<review id>`. Merged or closed: `merged:<time>` / `closed:<time>` (reopened and
  closed again is news again).

NOTIFY jobs of one pull request share a subject (`notify:owner/name#N`) and so run one at a time: each reads what
the ones before it said (their results) and its own audit trail (a retry after the reply went out), and a key
said is never said again. A Slack error is recorded and ends the job, unless another attempt may succeed (a rate
limit, Slack being down): then the job is retried, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from githubkit.exception import GitHubException, RequestFailed
from sqlalchemy import select

from app.github.client import GitHubApp, GitHubNotConfigured, Repo
from app.queue.context import JobContext, JobFailed
from app.queue.requests import JobKind, JobRequest
from app.queue.slack import SlackStore, SlackThread, Thread
from app.slack import blocks
from app.slack.client import SlackClient, SlackError
from app.untyped import as_dict, as_id, as_str

PASSED = frozenset({"success"})
FAILED = frozenset({"failure", "timed_out", "startup_failure", "action_required"})
HISTORY = 500  # earlier NOTIFY jobs of a pull request read for what was said
COMMENTS_SUMMED = 3  # review comments quoted when a review requesting changes has no body
_PULL_REF = re.compile(r"refs/pull/([0-9]+)/(?:head|merge)")


@dataclass(frozen=True)
class Reply:
    key: str
    message: blocks.Message


class _Quiet(Exception):
    """Nothing to say; the job's result says why."""

    def __init__(self, outcome: str, **facts: Any) -> None:
        super().__init__(outcome)
        self.result = {"outcome": outcome, **facts}


async def notify(ctx: JobContext) -> dict[str, Any]:
    job = ctx.job
    payload = job.payload or {}
    news = as_str(payload.get("news"))
    if news not in _SAY:
        return {"outcome": "ignored", "reason": f"Honk has nothing to say about {news or 'this'!r}"}
    store = SlackStore(ctx.queue.db)
    try:
        if not job.number:  # a deployment: which pull request is for GitHub to say
            return await _forward(ctx, store)
        thread = await _thread(store, job.repo, job.number)
        client = _slack(ctx)
        reply = await _SAY[news](ctx, payload)
        if await asyncio.to_thread(_said, ctx, reply.key):
            return {"outcome": "already_said", "news": news, "key": reply.key, "thread": thread.id}
    except _Quiet as quiet:
        return {"news": news, **quiet.result}
    try:
        ts = await client.post(thread.channel_id, reply.message.blocks, reply.message.text, thread_ts=thread.thread_ts)
    except SlackError as exc:
        if exc.retryable:
            raise JobFailed(str(exc), retry=True) from None
        await ctx.audit.record("slack.failed", news=news, key=reply.key, error=exc.error, detail=str(exc))
        return {"outcome": "slack_failed", "news": news, "error": exc.error, "detail": str(exc)[:500]}
    await ctx.audit.record("slack.replied", news=news, key=reply.key, thread=thread.id, ts=ts)
    return {"outcome": "replied", "news": news, "key": reply.key, "thread": thread.id, "ts": ts}


# ------------------------------------------------------------------------------------------------ where to say it


async def _thread(store: SlackStore, repo: str, number: int) -> Thread:
    """The thread that follows pull request `number` of `repo`; `_Quiet("no_thread")` when there is none (an issue
    of that number is not the pull request, and a thread of another repository is never written to)."""
    thread = await asyncio.to_thread(store.thread_of_issue, repo, number)
    if thread is None or thread.repo != repo or thread.pull_number != number:
        raise _Quiet("no_thread")
    return thread


def _slack(ctx: JobContext) -> SlackClient:
    try:
        return SlackClient.for_settings(ctx.settings)
    except SlackError as exc:
        raise _Quiet("slack_off", detail=exc.sentence) from None


def _app(ctx: JobContext) -> GitHubApp:
    try:
        return GitHubApp.for_settings(ctx.settings)
    except GitHubNotConfigured as exc:
        raise JobFailed(str(exc), retry=False) from None


def _github_failed(exc: GitHubException, what: str) -> Exception:
    """A 4xx will not change by asking again (the pull request is gone, the App lost access): nothing to say.
    Anything else (5xx, rate limits, no answer) is worth another attempt."""
    if isinstance(exc, RequestFailed) and exc.response.status_code < 500 and exc.response.status_code != 429:
        return _Quiet("github_refused", detail=f"GitHub answered {exc.response.status_code} to {what}")
    return JobFailed(f"GitHub could not say {what}: {exc}", retry=True)


def _said(ctx: JobContext, key: str) -> bool:
    """Whether this thread was told `key` already: by an earlier job on this pull request, or by this one on an
    attempt that did not finish."""
    job = ctx.job
    if any(e.kind == "slack.replied" and as_dict(e.data).get("key") == key for e in ctx.queue.events(job.id)):
        return True
    return any(other.id != job.id and as_dict(other.result).get("outcome") == "replied"
               and as_dict(other.result).get("key") == key
               for other in ctx.queue.on_subject(job.subject, limit=HISTORY))


# ------------------------------------------------------------------------------------------------ what to say


async def _checks(ctx: JobContext, payload: dict[str, Any]) -> Reply:
    job = ctx.job
    head = as_str(payload.get("head_sha"))
    async with await _app(ctx).repo(job.installation_id or 0, job.repo) as repo:
        try:
            pull = await repo.pull(job.number or 0)
            _on_head(pull, head)
            runs = await repo.check_runs_for_ref(head)
        except GitHubException as exc:
            raise _github_failed(exc, f"the checks of {head[:7]}") from None
    own = ctx.settings.github_app_id
    running = sorted({as_str(r.get("name")) for r in runs if r.get("status") != "completed"
                      and (own is None or as_id(as_dict(r.get("app")).get("id")) != own)})
    if running:
        raise _Quiet("waiting", head=head, running=running[:20])
    passed = sorted({as_str(r.get("name")) for r in runs if r.get("conclusion") in PASSED})
    failed = sorted({as_str(r.get("name")) for r in runs if r.get("conclusion") in FAILED})
    if not passed and not failed:
        raise _Quiet("nothing_to_say", head=head)
    verdict = "failed" if failed else "passed"
    return Reply(f"checks:{head}:{verdict}", blocks.checks_finished(_pull(job.repo, pull), passed, failed))


async def _preview(ctx: JobContext, payload: dict[str, Any]) -> Reply:
    job = ctx.job
    status, deployment = as_dict(payload.get("deployment_status")), as_dict(payload.get("deployment"))
    url = as_str(status.get("environment_url"))
    async with await _app(ctx).repo(job.installation_id or 0, job.repo) as repo:
        try:
            pull = await repo.pull(job.number or 0)
        except GitHubException as exc:
            raise _github_failed(exc, f"pull request #{job.number}") from None
    named = _PULL_REF.fullmatch(as_str(deployment.get("ref")))
    if not (named and int(named.group(1)) == job.number):  # refs/pull/N/merge deploys a merge, not the head
        _on_head(pull, as_str(payload.get("head_sha")))
    environment = as_str(status.get("environment")) or as_str(deployment.get("environment")) or None
    return Reply(f"preview:{url}", blocks.preview_ready(url, environment, _pull(job.repo, pull)))


async def _changes_requested(ctx: JobContext, payload: dict[str, Any]) -> Reply:
    job = ctx.job
    review, pull = as_dict(payload.get("review")), as_dict(payload.get("pull_request"))
    reviewer = as_str(as_dict(review.get("user")).get("login")) or job.requester or "Someone"
    summary = as_str(review.get("body")).strip()
    review_id = as_id(review.get("id"))
    if not summary and review_id is not None:
        summary = await _comments_said(ctx, review_id)
    key = f"review:{review_id}" if review_id is not None else f"review:{reviewer}:{review.get('commit_id')}"
    return Reply(key, blocks.changes_requested(reviewer, summary, _pull(job.repo, pull),
                                               as_str(review.get("html_url")) or None))


async def _comments_said(ctx: JobContext, review_id: int) -> str:
    """A review that requests changes in line comments alone: what its first comments say, for the summary."""
    job = ctx.job
    try:
        async with await _app(ctx).repo(job.installation_id or 0, job.repo) as repo:
            comments = await repo.review_comments(job.number or 0, review_id)
    except GitHubException:
        return ""  # the reply still says who asked for changes, with the link to the review
    said = [f"{as_str(c.get('path'))}: {' '.join(as_str(c.get('body')).split())}".strip(": ")
            for c in comments[:COMMENTS_SUMMED]]
    if not comments:
        return ""
    return f"{len(comments)} comment{'s' if len(comments) != 1 else ''}: " + " · ".join(s for s in said if s)


async def _closed(ctx: JobContext, payload: dict[str, Any]) -> Reply:
    job = ctx.job
    pull = as_dict(payload.get("pull_request"))
    merged = payload.get("news") == "merged"
    by = (as_str(as_dict(pull.get("merged_by")).get("login")) if merged else "") or job.requester or None
    when = (as_str(pull.get("merged_at")) if merged else "") or as_str(pull.get("closed_at"))
    message = blocks.merged(_pull(job.repo, pull), by) if merged else blocks.closed(_pull(job.repo, pull), by)
    return Reply(f"{'merged' if merged else 'closed'}:{when}", message)


_SAY = {"checks": _checks, "preview": _preview, "changes_requested": _changes_requested, "merged": _closed,
        "closed": _closed}


def _on_head(pull: dict[str, Any], sha: str) -> None:
    """The news is about the pull request's head, or it is old news (a push came since): `_Quiet("stale")`."""
    head = as_str(as_dict(pull.get("head")).get("sha"))
    if not sha or head != sha:
        raise _Quiet("stale", head=head, about=sha)
    if as_str(pull.get("state")) != "open":
        raise _Quiet("closed")  # its closing was said; late checks and previews of a closed one are not news


def _pull(repo: str, pull: dict[str, Any]) -> blocks.Pull:
    return blocks.Pull(repo, as_id(pull.get("number")) or 0, as_str(pull.get("html_url")), as_str(pull.get("title")))


# ------------------------------------------------------------------------------------------------ deployments


async def _forward(ctx: JobContext, store: SlackStore) -> dict[str, Any]:
    """A deployment names a commit: find the open pull request whose head it is and, when a thread follows that
    one, queue the reply on the pull request's own subject, where what was said is known."""
    job, payload = ctx.job, ctx.job.payload or {}
    if not await asyncio.to_thread(_threads_with_pulls, store, job.repo):
        raise _Quiet("no_thread")  # not one thread follows a pull request here: GitHub is not even asked
    deployment = as_dict(payload.get("deployment"))
    sha = as_str(payload.get("head_sha"))
    async with await _app(ctx).repo(job.installation_id or 0, job.repo) as repo:
        try:
            number = await _pull_of_commit(repo, sha, as_str(deployment.get("ref")))
        except GitHubException as exc:
            raise _github_failed(exc, f"the pull request of {sha[:7]}") from None
    if number is None:
        raise _Quiet("no_pull", head=sha)
    thread = await _thread(store, job.repo, number)
    forwarded = JobRequest(kind=JobKind.NOTIFY, repo=job.repo, number=number, requester=job.requester or "",
                           installation_id=job.installation_id or 0,
                           trigger={**payload, "forwarded_from": job.id})
    queued = await asyncio.to_thread(ctx.queue.enqueue, forwarded)
    await ctx.audit.record("notify.forwarded", pull=number, job=queued, thread=thread.id)
    return {"outcome": "forwarded", "pull": number, "job": queued}


def _threads_with_pulls(store: SlackStore, repo: str) -> bool:
    with store.db.session() as session:
        return session.scalar(select(SlackThread.id).where(SlackThread.repo == repo,
                                                           SlackThread.pull_number.is_not(None)).limit(1)) is not None


async def _pull_of_commit(repo: Repo, sha: str, ref: str) -> int | None:
    """The open pull request of this repository whose head is `sha`: by the deployment's branch when it names one,
    else as GitHub lists the pull requests of a commit."""
    owner = repo.full_name.split("/", 1)[0]
    branch = ref.removeprefix("refs/heads/")
    if branch and branch != sha and not branch.startswith("refs/"):
        pull = await repo.find_pull(owner, branch)
        if pull and pull.get("state") == "open" and as_dict(pull.get("head")).get("sha") == sha:
            return as_id(pull.get("number"))
    try:
        response = await repo.gh.arequest("GET", f"/repos/{repo.full_name}/commits/{sha}/pulls")
    except RequestFailed as exc:
        if exc.response.status_code in (404, 409, 422):  # an unknown commit, an empty repository
            return None
        raise
    pulls = response.json() if response.content else []
    for pull in pulls if isinstance(pulls, list) else []:
        pull = as_dict(pull)
        base = as_str(as_dict(as_dict(pull.get("base")).get("repo")).get("full_name"))
        if (pull.get("state") == "open" and as_dict(pull.get("head")).get("sha") == sha
                and base.casefold() == repo.full_name.casefold()):
            return as_id(pull.get("number"))
    return None
