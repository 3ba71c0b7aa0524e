"""A job's status, mirrored into the Slack thread that asked for it (CONTRACT section 8).

A request from Slack carries `"slack": {"thread_id": N}` in its job's payload (app/jobs/slack.py puts it there).
For such a job, `steps.StatusComment` hands every change of its status to a `ThreadStatus` as well, which edits
the thread's one status message in place: queued, working (the current step), then the outcome (the pull
request, draft or ready, the verification and the judge, cost and time, the Merge button), or why there is no
change, or the failure. When the pull request is opened its number is recorded on the thread, so that GitHub's
later news about it (NOTIFY jobs) and replies in the thread find it.

Slack is a mirror, never the work: a Slack failure (a rate limit past the client's retries, Slack down, the bot
removed from the channel) is logged and put in the job's audit trail, and the GitHub job goes on. After a failure
the intermediate steps are not sent for a while (a Slack outage must not slow every step down by the client's
retries); the final state is always tried.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from app.jobs.report import JobLink, Outcome, RunFigures
from app.queue.context import JobContext
from app.queue.slack import SlackStore, SlackThread, Thread
from app.slack import blocks
from app.slack.blocks import Message, Pull, Result, Subject
from app.slack.client import SlackClient, SlackError
from app.untyped import as_dict, as_id, as_str

log = logging.getLogger("honk.slack.thread")

QUIET_SECONDS = 30.0  # after a failed update, steps are not mirrored for this long
FINAL_RETRY_WAIT = 30.0  # the most the final update waits for a rate limit to pass, once
# Slack's answers meaning the status message cannot be edited any more: a new one is posted instead.
_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
# The client's retries for a mirror: short, so a slow Slack costs a step a second or two, not half a minute.
_CLIENT_OPTIONS: dict[str, Any] = {"retries": 2, "max_wait": 10.0, "backoff": 0.25, "jitter": 0.25, "timeout": 10}
_LEADING_MARK = re.compile(r"^[^\w`*_(\[]+\s*")  # the status comment's leading emoji


@dataclass(frozen=True)
class PullFacts:
    """The pull request a run opened or updated, and what the thread's outcome says about it."""

    number: int
    url: str
    title: str
    draft: bool
    verification: str  # the status comment's verification line
    judge: str | None = None  # the judge's line, if it judged
    stopped: str | None = None  # why the run stopped early, if it did


def thread_id_of(payload: dict[str, Any] | None) -> int | None:
    """The Slack thread a job's payload names (`"slack": {"thread_id": N}`), if any."""
    return as_id(as_dict(as_dict(payload).get("slack")).get("thread_id"))


def load_thread(store: SlackStore, thread_id: int) -> Thread | None:
    with store.db.session() as session:
        row = session.get(SlackThread, thread_id)
        if row is None:
            return None
        return Thread(row.id, row.team_id, row.channel_id, row.thread_ts, row.status_ts, row.slack_user,
                      row.requester, row.repo, row.issue_number, row.pull_number)


class ThreadStatus:
    """The Slack side of one job's status: the thread's status message, edited as the job goes."""

    def __init__(self, ctx: JobContext, store: SlackStore, slack: SlackClient, thread: Thread) -> None:
        self.ctx, self.store, self.slack, self.thread = ctx, store, slack, thread
        self.pull: PullFacts | None = None
        self._quiet_until = 0.0

    @classmethod
    async def for_job(cls, ctx: JobContext) -> ThreadStatus | None:
        """The mirror of a job that Slack asked for; None for any other job, or when Slack cannot be reached
        from here (not configured, the thread gone), which is recorded and otherwise ignored."""
        thread_id = thread_id_of(ctx.job.payload)
        if thread_id is None:
            return None
        try:
            slack = SlackClient.for_settings(ctx.settings, **_CLIENT_OPTIONS)
            store = SlackStore(ctx.queue.db)
            thread = await asyncio.to_thread(load_thread, store, thread_id)
        except Exception as exc:  # Slack is a mirror: nothing here may stop the job
            await _recorded(ctx, "slack.unavailable", thread=thread_id, error=_said(exc))
            return None
        if thread is None:
            await _recorded(ctx, "slack.unavailable", thread=thread_id, error="the thread is not known")
            return None
        return cls(ctx, store, slack, thread)

    # ------------------------------------------------------------------------------------ the states

    async def queued(self) -> None:
        await self._show(blocks.queued(self.subject(), asked_by=self.thread.slack_user), "queued", final=True)

    async def step(self, text: str) -> None:
        if time.monotonic() < self._quiet_until:
            return
        await self._show(blocks.working(self.subject(), text), "working", final=False)

    async def pull_opened(self, facts: PullFacts) -> None:
        """The run opened (or updated) its pull request: remember it for the outcome, and record it on the
        thread for what comes later."""
        self.pull = facts
        if self.thread.pull_number == facts.number:
            return
        try:
            self.thread = await asyncio.to_thread(self.store.update_thread, self.thread.id, pull_number=facts.number)
        except Exception as exc:  # a mirror's failure never fails the job
            log.warning("cannot record pull request #%s on Slack thread %s: %s", facts.number, self.thread.id, exc)
            await _recorded(self.ctx, "slack.failed", thread=self.thread.id, action="record_pull",
                            error=_said(exc))

    async def finish(self, outcome: Outcome, figures: RunFigures | None, *, state: str = "done") -> None:
        """The last word: `state` is `done` (the outcome), `retrying` (a step failed; the job runs again),
        or anything else for a run that ended without its result (`failed`, `stopped`)."""
        subject = self.subject()
        if state == "retrying":
            message = blocks.working(subject, "a step failed; trying again shortly")
        elif state != "done":
            message = blocks.failed(subject, _reason(outcome))
        elif self.pull is not None:
            pull = self.pull
            message = blocks.outcome(subject, Result(
                Pull(self.ctx.job.repo, pull.number, pull.url, pull.title), draft=pull.draft,
                verification=pull.verification, judge=pull.judge, stopped=pull.stopped,
                cost_usd=figures.cost_usd if figures else None, seconds=figures.seconds if figures else None))
        elif outcome.headline.startswith("✅") and self.thread.pull_number:
            # A follow-up pushed to the thread's pull request: the pull request, with what the run says.
            message = blocks.outcome(subject, Result(
                Pull(self.ctx.job.repo, self.thread.pull_number, self._pull_url(), self._title()),
                verification="\n".join([_LEADING_MARK.sub("", outcome.headline), *outcome.details[:1]]),
                cost_usd=figures.cost_usd if figures else None, seconds=figures.seconds if figures else None))
        else:
            message = blocks.no_change(subject, "\n\n".join(outcome.details) or _LEADING_MARK.sub("",
                                                                                               outcome.headline))
        await self._show(message, state, final=True)

    # ------------------------------------------------------------------------------------ the message

    def subject(self) -> Subject:
        job, payload = self.ctx.job, as_dict(self.ctx.job.payload)
        issue = as_dict(payload.get("issue"))
        link = JobLink(job.id, self.ctx.settings.honk_public_url)
        number = self.thread.issue_number or as_id(issue.get("number")) or job.number
        return Subject(repo=job.repo, title=self._title(), issue_number=number,
                       issue_url=as_str(issue.get("html_url")) or None, job_id=job.id, job_url=link.url)

    def _title(self) -> str:
        payload = as_dict(self.ctx.job.payload)
        for key in ("issue", "pull_request"):
            title = as_str(as_dict(payload.get(key)).get("title"))
            if title:
                return title
        return f"{self.ctx.job.repo}#{self.ctx.job.number}"

    def _pull_url(self) -> str:
        payload = as_dict(self.ctx.job.payload)
        for key in ("pull_request", "issue"):
            url = as_str(as_dict(payload.get(key)).get("html_url"))
            if url and as_id(as_dict(payload.get(key)).get("number")) == self.thread.pull_number:
                return url
        return ""

    async def _show(self, message: Message, state: str, *, final: bool) -> None:
        """Edit the status message (post it when there is none, or when Slack no longer lets it be edited).
        Never raises: a failure is logged and recorded, and quiets the steps for a while."""
        try:
            try:
                await self._send(message)
            except SlackError as exc:
                wait = exc.retry_after or 0.0
                if not (final and exc.retryable and wait <= FINAL_RETRY_WAIT):
                    raise
                await asyncio.sleep(wait or 1.0)  # the last word is worth one more try
                await self._send(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Slack is a mirror: its failures never fail the GitHub job
            self._quiet_until = time.monotonic() + QUIET_SECONDS
            log.warning("cannot update the Slack thread %s (%s): %s", self.thread.id, state, _said(exc))
            await _recorded(self.ctx, "slack.failed", thread=self.thread.id, state=state, error=_said(exc))
            return
        self._quiet_until = 0.0

    async def _send(self, message: Message) -> None:
        thread = self.thread
        if thread.status_ts:
            try:
                await self.slack.update(thread.channel_id, thread.status_ts, message.blocks, message.text)
                return
            except SlackError as exc:
                if exc.error not in _GONE:
                    raise
        ts = await self.slack.post(thread.channel_id, message.blocks, message.text, thread_ts=thread.thread_ts)
        self.thread = await asyncio.to_thread(self.store.update_thread, thread.id, status_ts=ts)


def _reason(outcome: Outcome) -> str:
    """A failure's words for the thread: the status comment's headline without its mark, then the first detail."""
    return "\n\n".join([_LEADING_MARK.sub("", outcome.headline), *outcome.details[:1]])


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


async def _recorded(ctx: JobContext, kind: str, /, **data: Any) -> None:
    """An audit event that may not fail either (the database answers the job's own writes anyway)."""
    try:
        await ctx.audit.record(kind, **data)
    except Exception as exc:
        log.warning("cannot record %s: %s", kind, exc)
