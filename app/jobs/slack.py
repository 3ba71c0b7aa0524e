"""The SLACK job: one request from Slack (a mention, a direct message, a `/honk` command, a reply in a Honk
thread, a Merge click), as app/intake/slack.py stored it (its payload is described there). CONTRACT section 8.

GitHub stays the record. A request becomes a GitHub issue that the App writes in the requester's words (saying
who asked, linking the thread, attached files as links) and labels with HONK_LABEL; from there it is the GitHub
flow, a RESOLVE_ISSUE job whose status is mirrored into the thread (app/jobs/slack_thread.py). A reply in the
thread becomes a comment on the pull request quoting its author, and a FOLLOW_UP job answering that comment. A
merge goes through GitHub's merge API, so branch protection decides.

This job authorises itself, for everything it does and at the time it does it (registered without the
`authorised` wrapper, which needs a GitHub requester): the Slack user must be linked to a GitHub login
(app/web/slack_link.py makes the link), and that login must have write, maintain or admin permission on the
repository, asked of GitHub through the App's installation on it. Buttons carry no authority: a click is checked
like a command. An unlinked user gets a link to link their account, privately, and nothing else happens.

Where answers go: to a command or a click, privately (its `response_url`, else `chat.postEphemeral`); to a
mention or a message, in its thread (a refusal to an unlinked user always privately).

Every step is safe to run again: the thread row remembers the issue and the status message, and the job's own
audit trail the messages it posted and the comments it wrote, so a retried job finds them instead of repeating
them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from githubkit.exception import GitHubException, RequestFailed

from app.github.client import GitHubApp, GitHubNotConfigured, MergeRefused, can_write
from app.jobs.campaign_spec import CampaignSpecError, parse_campaign
from app.queue.context import JobContext, JobFailed
from app.queue.models import JobStatus
from app.queue.requests import JobKind, JobRequest
from app.queue.slack import SlackLink, SlackStore, Thread
from app.slack import blocks, commands
from app.slack.blocks import Message, Pull, Subject
from app.slack.client import SlackClient, SlackError
from app.slack.linking import LinkError, link_url, make_state, state_secret
from app.untyped import as_dict, as_str

log = logging.getLogger("honk.slack.jobs")

NO_PULL_YET = "The pull request is not open yet; ask again once it is."
IN_A_THREAD = "Write `@Honk {word}` in the thread of a request: a slash command does not know which thread it is in."
MERGE_METHODS = ("merge", "squash", "rebase")  # tried in turn while GitHub says the repository does not allow one
_ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass(frozen=True)
class Request:
    """A Slack request, read from the job's payload."""

    type: str
    team: str
    channel: str
    user: str
    ts: str
    thread_ts: str
    text: str
    files: list[Any]
    response_url: str
    action_id: str
    action_value: str
    bot_user: str
    delivery: str

    @classmethod
    def of(cls, payload: dict[str, Any]) -> Request:
        action = as_dict(payload.get("action"))
        files = payload.get("files")
        return cls(type=as_str(payload.get("type")), team=as_str(payload.get("team_id")),
                   channel=as_str(payload.get("channel_id")), user=as_str(payload.get("user_id")),
                   ts=as_str(payload.get("ts")), thread_ts=as_str(payload.get("thread_ts")),
                   text=as_str(payload.get("text")), files=files if isinstance(files, list) else [],
                   response_url=as_str(payload.get("response_url")), action_id=as_str(action.get("action_id")),
                   action_value=as_str(action.get("value")), bot_user=as_str(payload.get("bot_user_id")),
                   delivery=as_str(payload.get("delivery_id")))

    @property
    def private_reply(self) -> bool:
        """Commands and clicks are answered privately; messages in their thread."""
        return self.type in ("command", "action")

    @property
    def root(self) -> str:
        """The thread a message belongs to ("" for a command, which has none)."""
        return self.thread_ts or self.ts


@dataclass(frozen=True)
class Writer:
    """A linked Slack user who may act on a repository, as GitHub says now."""

    login: str
    github_id: int | None
    repo: str
    installation: int


class Refused(Exception):
    """The request stops here; `message` is the answer, `outcome` the job's result word."""

    def __init__(self, message: Message, outcome: str, *, private: bool = False) -> None:
        super().__init__(message.text)
        self.message, self.outcome, self.private = message, outcome, private


async def slack_request(ctx: JobContext) -> dict[str, Any]:
    try:
        slack = SlackClient.for_settings(ctx.settings)
    except SlackError as exc:
        raise JobFailed(str(exc)) from None
    try:
        app = GitHubApp.for_settings(ctx.settings)
    except GitHubNotConfigured as exc:
        raise JobFailed(str(exc)) from None
    job = SlackJob(ctx, Request.of(ctx.job.payload or {}), slack, app)
    try:
        try:
            return await job.run()
        except Refused as refused:
            await job.answer(refused.message, private=refused.private)
            return {"outcome": refused.outcome}
    except SlackError as exc:
        raise JobFailed(str(exc), retry=exc.retryable) from None
    except GitHubException as exc:
        final = ctx.job.attempts >= ctx.job.max_attempts
        if final:
            await job.answer(blocks.problem("GitHub did not answer Honk; try again in a few minutes."),
                             private=True, quiet=True)
        raise JobFailed(f"GitHub: {exc}", retry=True) from None


class SlackJob:
    def __init__(self, ctx: JobContext, request: Request, slack: SlackClient, app: GitHubApp) -> None:
        self.ctx, self.request, self.slack, self.app = ctx, request, slack, app
        self.store = SlackStore(ctx.queue.db)
        self.settings = ctx.settings
        self._link: tuple[str, int] | None = None  # the requester's GitHub login and id, once known

    async def run(self) -> dict[str, Any]:
        request = self.request
        if not (request.team and request.channel and request.user):
            return {"outcome": "ignored", "reason": "the request names no workspace, channel or user"}
        if request.bot_user and request.user == request.bot_user:
            return {"outcome": "ignored", "reason": "Honk's own message"}
        if request.type == "action":
            if request.action_id != blocks.MERGE_ACTION:
                return {"outcome": "ignored", "reason": f"the button {request.action_id!r} asks for nothing"}
            named = blocks.read_merge_value(request.action_value)
            if named is None:
                return {"outcome": "ignored", "reason": "the Merge button names no pull request"}
            return await self.merge(*named)
        if request.type == "reply":
            return await self.reply()
        if request.type in ("mention", "dm"):
            command = commands.parse_mention(request.text, request.bot_user or None)
            thread = await self._thread()
            if thread is not None and isinstance(command, commands.Ask) and request.thread_ts != request.ts \
                    and not await self._opened_here(thread):
                # A mention in a Honk thread asks for more on its pull request: a reply, unless it names another
                # repository, which is a new request and needs a message of its own.
                if command.repo not in (None, thread.repo):
                    raise Refused(blocks.problem(f"This thread follows {thread.repo}. Ask about {command.repo} "
                                                 "in a new message."), "wrong_thread")
                return await self.reply(command.task)
            return await self.handle(command)
        if request.type == "command":
            return await self.handle(commands.parse_slash(request.text))
        return {"outcome": "ignored", "reason": f"a Slack request of type {request.type!r}"}

    async def handle(self, command: commands.Command) -> dict[str, Any]:
        if isinstance(command, commands.Help):
            await self.answer(blocks.help_message())
            return {"outcome": "help"}
        if isinstance(command, commands.Problem):
            await self.answer(blocks.problem(command.message))
            return {"outcome": "problem"}
        if isinstance(command, commands.Campaign):
            return await self.campaign(command)
        if isinstance(command, commands.Ask):
            return await self.ask(command)
        if isinstance(command, commands.BindChannel):
            return await self.bind(command.repo)
        if isinstance(command, commands.Status):
            return await self.status()
        if isinstance(command, commands.Stop):
            return await self.stop()
        return await self.merge_command(command)

    # ------------------------------------------------------------------------------------ asking

    async def ask(self, ask: commands.Ask) -> dict[str, Any]:
        request = self.request
        login = await self.linked()
        bound = None if ask.repo else await asyncio.to_thread(self.store.channel_repo, request.team, request.channel)
        complete = commands.with_repo(ask, bound)
        if isinstance(complete, commands.Problem):
            raise Refused(blocks.problem(complete.message), "no_repository")
        if not complete.task.strip():
            raise Refused(blocks.no_task(complete.repo), "no_task")
        assert complete.repo is not None
        writer = await self.writer(login, complete.repo)
        title = complete.title or "A request from Slack"
        root = request.root or await self._status_root(Subject(writer.repo, title))
        thread = await asyncio.to_thread(self.store.open_thread, team_id=request.team, channel_id=request.channel,
                                         thread_ts=root, slack_user=request.user, requester=writer.login,
                                         repo=writer.repo)
        await self._remember("slack.thread", thread=thread.id)
        if not request.root and thread.status_ts is None:  # a command's status message is the thread's root
            thread = await asyncio.to_thread(self.store.update_thread, thread.id, status_ts=root)
        async with await self.app.repo(writer.installation, writer.repo) as repo:
            bot = (await self.app.identity(writer.installation)).bot_login
            if thread.issue_number is not None:
                issue = await repo.issue(thread.issue_number)
            else:
                permalink = await self._permalink(root)
                issue = await repo.create_issue(title, _issue_body(complete.task, writer.login, permalink,
                                                                   commands.files_markdown(request.files)),
                                                [self.settings.honk_label])
                thread = await asyncio.to_thread(self.store.update_thread, thread.id, issue_number=issue["number"])
                await self.ctx.audit.record("slack.issue_opened", repo=writer.repo, issue=issue["number"],
                                            requester=writer.login, thread=thread.id)
            info = await repo.info()
        subject = Subject(writer.repo, title, issue["number"], issue.get("html_url"))
        thread = await self._show_status(thread, blocks.queued(subject, asked_by=request.user))
        job_id = await self._enqueue_resolve(writer, issue, info, bot, thread)
        return {"outcome": "issue_opened", "repo": writer.repo, "issue": issue["number"],
                "issue_url": issue.get("html_url"), "requester": writer.login, "thread": thread.id, "job": job_id}

    async def _status_root(self, subject: Subject) -> str:
        """A command has no message to thread under: its status message, posted in the channel, is the root
        (posted once, whatever the retries)."""
        posted = await self._recalled("slack.root_posted")
        if posted:
            return as_str(posted.get("ts"))
        message = blocks.queued(subject, asked_by=self.request.user)
        try:
            ts = await self.slack.post(self.request.channel, message.blocks, message.text)
        except SlackError as exc:
            if exc.retryable:
                raise
            raise Refused(blocks.problem(f"I cannot post in this channel: {exc.sentence}."), "cannot_post",
                          private=True) from None
        await self._remember("slack.root_posted", ts=ts)
        return ts

    async def _permalink(self, ts: str) -> str:
        try:
            return await self.slack.permalink(self.request.channel, ts)
        except SlackError as exc:
            await self.ctx.audit.record("slack.failed", action="permalink", error=str(exc)[:500])
            return ""  # the issue is still opened, without the link

    async def _show_status(self, thread: Thread, message: Message) -> Thread:
        """Post (or edit) the thread's status message. A failure is recorded, not raised: the issue is open and
        its job will post the message itself."""
        try:
            if thread.status_ts:
                await self.slack.update(thread.channel_id, thread.status_ts, message.blocks, message.text)
                return thread
            ts = await self.slack.post(thread.channel_id, message.blocks, message.text, thread_ts=thread.thread_ts)
            return await asyncio.to_thread(self.store.update_thread, thread.id, status_ts=ts)
        except SlackError as exc:
            log.warning("cannot post the status message of Slack thread %s: %s", thread.id, exc)
            await self.ctx.audit.record("slack.failed", action="status", thread=thread.id, error=str(exc)[:500])
            return thread

    async def _enqueue_resolve(self, writer: Writer, issue: dict[str, Any], info: dict[str, Any], bot: str,
                               thread: Thread) -> int:
        """The GitHub flow, as a labelled issue. The issue's author on GitHub is the App's bot, but its words are
        the requester's (a writer, checked above): the trigger names the requester as its author, so that the
        model reads the request as their instruction, not as a stranger's data (app/jobs/briefing.py)."""
        delivery = f"{self.request.delivery or f'slack-job:{self.ctx.job.id}'}:issue"
        person = _person(writer)
        trigger = {
            "type": "label", "label": self.settings.honk_label, "event": "issues", "action": "labeled",
            "delivery_id": delivery, "channel": "slack",
            "issue": {"id": issue.get("id"), "node_id": issue.get("node_id"), "number": issue["number"],
                      "title": issue.get("title") or "", "body": issue.get("body") or "",
                      "html_url": issue.get("html_url"), "state": issue.get("state") or "open", "user": person,
                      "labels": [as_str(as_dict(label).get("name")) for label in issue.get("labels") or []],
                      "is_pull_request": False, "written_by": bot},
            "sender": person,
            "repository": _repository(info),
            "slack": {"thread_id": thread.id},
        }
        return await self._enqueue_once(delivery, JobRequest(
            kind=JobKind.RESOLVE_ISSUE, repo=writer.repo, number=issue["number"], requester=writer.login,
            installation_id=writer.installation, trigger=trigger))

    # ------------------------------------------------------------------------------------ campaigns

    async def campaign(self, command: commands.Campaign) -> dict[str, Any]:
        """`/honk campaign [owner/name] <body>`: the campaign issue, opened by the App in the repository (labelled
        HONK_CAMPAIGN_LABEL) for a linked writer, and its start queued as the label would (CONTRACT.md section 7).
        A mistake in the block is answered here, and nothing is opened."""
        request = self.request
        login = await self.linked()
        repo = command.repo or await asyncio.to_thread(self.store.channel_repo, request.team, request.channel)
        if repo is None:
            raise Refused(blocks.problem(commands.NEEDS_CAMPAIGN), "no_repository")
        try:
            parsed = parse_campaign(command.text)
        except CampaignSpecError as exc:
            raise Refused(blocks.problem(f"The campaign has a mistake, so nothing was started: {exc}"),
                          "invalid_campaign") from None
        writer = await self.writer(login, repo)
        title = commands.title_of(parsed.task) or "A campaign from Slack"
        async with await self.app.repo(writer.installation, writer.repo) as gh:
            opened = await self._recalled("slack.campaign_opened")
            if opened:
                issue = await gh.issue(int(opened["issue"]))
            else:
                permalink = await self._permalink(request.ts) if request.ts else ""
                issue = await gh.create_issue(title, _issue_body(command.text, writer.login, permalink, ""),
                                              [self.settings.honk_campaign_label])
                await self._remember("slack.campaign_opened", repo=writer.repo, issue=issue["number"])
        delivery = f"{request.delivery or f'slack-job:{self.ctx.job.id}'}:campaign"
        job_id = await self._enqueue_once(delivery, JobRequest(
            kind=JobKind.CAMPAIGN, repo=writer.repo, number=issue["number"], requester=writer.login,
            installation_id=writer.installation, trigger={
                "type": "campaign_label", "label": self.settings.honk_campaign_label, "delivery_id": delivery,
                "channel": "slack", "sender": _person(writer),
                "issue": {"number": issue["number"], "title": issue.get("title") or "",
                          "html_url": issue.get("html_url")}}))
        link = f"<{issue.get('html_url')}|{writer.repo}#{issue['number']}>" if issue.get("html_url") else \
            f"{writer.repo}#{issue['number']}"
        await self.answer(_said(f"🪿 Campaign opened in {link}: its plan and its status table are in the issue, and "
                                "writers steer it there (`@honk rollout`, `stop`, `update`, `retry`)."))
        return {"outcome": "campaign_opened", "repo": writer.repo, "issue": issue["number"], "job": job_id}

    async def _enqueue_once(self, delivery: str, request: JobRequest) -> int:
        """Queue the job once, whatever the retries of this one: found again by its delivery id."""
        for earlier in await asyncio.to_thread(self.ctx.queue.on_subject, request.subject, limit=50):
            if earlier.delivery_id == delivery:
                return earlier.id
        return await asyncio.to_thread(self.ctx.queue.enqueue, request)

    # ------------------------------------------------------------------------------------ a thread's replies

    async def reply(self, text: str | None = None) -> dict[str, Any]:
        """A message in a thread: in a Honk thread by a linked writer, a comment on its pull request and a
        follow-up there; `status`, `stop` or `merge` alone are those commands. Anything else is not Honk's."""
        request = self.request
        thread = await self._thread()
        if thread is None:
            return {"outcome": "ignored", "reason": "not a Honk thread"}
        if text is None:
            if request.bot_user and f"<@{request.bot_user}" in request.text:
                return {"outcome": "ignored", "reason": "a mention: its app_mention event carries it"}
            command = commands.parse(request.text)
            if isinstance(command, commands.Status | commands.Stop | commands.Merge):
                return await self.handle(command)
            text = commands.plain(request.text).strip()
        files = commands.files_markdown(request.files)
        if not text and not files:
            return {"outcome": "ignored", "reason": "an empty message"}
        login = await self.linked()
        writer = await self.writer(login, thread.repo, private=True)
        if thread.pull_number is None:
            raise Refused(blocks.problem(NO_PULL_YET), "no_pull_request")
        async with await self.app.repo(writer.installation, writer.repo) as repo:
            pull = await repo.pull(thread.pull_number)
            if pull.get("state") != "open":
                raise Refused(blocks.problem(f"Pull request #{thread.pull_number} is {pull.get('state')}; "
                                             "reopen it to ask for more."), "pull_request_closed")
            comment = await self._recalled("slack.commented")
            if comment is None:
                permalink = await self._permalink(request.ts) if request.ts else ""
                made = await repo.comment(thread.pull_number, _quoted(text, files, writer.login, permalink))
                comment = {"id": made["id"], "node_id": made.get("node_id"), "html_url": made.get("html_url"),
                           "created_at": made.get("created_at"), "user": as_dict(made.get("user"))}
                await self._remember("slack.commented", **comment)
            info = await repo.info()
        job_id = await self._enqueue_follow_up(writer, thread, pull, comment, "\n\n".join(p for p in (text, files)
                                                                                          if p), info)
        return {"outcome": "follow_up", "repo": writer.repo, "pull_request": thread.pull_number,
                "comment": comment["id"], "requester": writer.login, "job": job_id}

    async def _enqueue_follow_up(self, writer: Writer, thread: Thread, pull: dict[str, Any],
                                 comment: dict[str, Any], said: str, info: dict[str, Any]) -> int:
        """A FOLLOW_UP on the pull request, shaped like a `pr_comment` trigger (app/intake/triggers.py) for the
        comment Honk just wrote; the comment's text is the writer's words, and the writer its requester."""
        delivery = f"{self.request.delivery or f'slack-job:{self.ctx.job.id}'}:comment"
        subject = f"{writer.repo}#{pull['number']}"
        for earlier in await asyncio.to_thread(self.ctx.queue.on_subject, subject, limit=50):
            if earlier.delivery_id == delivery:
                return earlier.id
        user = as_dict(comment.get("user"))
        trigger = {
            "type": "pr_comment", "event": "issue_comment", "action": "created", "delivery_id": delivery,
            "channel": "slack",
            "comment": {"id": comment["id"], "node_id": comment.get("node_id"), "body": said,
                        "html_url": comment.get("html_url"), "created_at": comment.get("created_at"),
                        "user": {"login": user.get("login"), "id": user.get("id"), "type": user.get("type") or "Bot"}},
            "issue": {"number": pull["number"], "title": pull.get("title") or "", "html_url": pull.get("html_url"),
                      "state": pull.get("state"), "user": _pick(as_dict(pull.get("user")), "login", "id", "type"),
                      "labels": [], "is_pull_request": True},
            "sender": _person(writer),
            "repository": _repository(info),
            "slack": {"thread_id": thread.id},
        }
        return await asyncio.to_thread(self.ctx.queue.enqueue, JobRequest(
            kind=JobKind.FOLLOW_UP, repo=writer.repo, number=pull["number"], requester=writer.login,
            installation_id=writer.installation, trigger=trigger))

    # ------------------------------------------------------------------------------------ thread commands

    async def status(self) -> dict[str, Any]:
        thread = await self._thread()
        if thread is None:
            raise Refused(blocks.problem(IN_A_THREAD.format(word="status")), "no_thread")
        await self.linked()
        jobs = []
        for number in {thread.issue_number, thread.pull_number} - {None}:
            jobs += await asyncio.to_thread(self.ctx.queue.on_subject, f"{thread.repo}#{number}", limit=1)
        if not jobs:
            line = "Nothing has run for this request yet."
        else:
            latest = max(jobs, key=lambda job: job.id)
            line = _job_line(latest, self.settings.honk_public_url)
        if thread.pull_number:
            line += f" Pull request #{thread.pull_number}."
        await self.answer(_said(line))
        return {"outcome": "status", "line": line}

    async def stop(self) -> dict[str, Any]:
        thread = await self._thread()
        if thread is None:
            raise Refused(blocks.problem(IN_A_THREAD.format(word="stop")), "no_thread")
        writer = await self.writer(await self.linked(), thread.repo)
        active = []
        for number in {thread.issue_number, thread.pull_number} - {None}:
            active += await asyncio.to_thread(self.ctx.queue.on_subject, f"{thread.repo}#{number}", statuses=_ACTIVE)
        for job in active:
            await asyncio.to_thread(self.ctx.queue.cancel, job.id)
        ids = ", ".join(f"#{job.id}" for job in sorted(active, key=lambda job: job.id))
        said = (f"🛑 Stopping job {ids} as @{writer.login} asked in Slack; nothing half-done is pushed." if active
                else "Nothing of mine is running here.")
        if active and thread.issue_number:
            async with await self.app.repo(writer.installation, writer.repo) as repo:
                await repo.comment(thread.pull_number or thread.issue_number, said)  # GitHub keeps the record
        await self.answer(blocks.problem(said))
        return {"outcome": "stopped", "cancelled": [job.id for job in active]}

    async def bind(self, repo: str) -> dict[str, Any]:
        writer = await self.writer(await self.linked(), repo)
        await asyncio.to_thread(self.store.bind, self.request.team, self.request.channel, writer.repo, writer.login)
        await self.ctx.audit.record("slack.channel_bound", channel=self.request.channel, repo=writer.repo,
                                    by=writer.login)
        await self.answer(blocks.channel_bound(writer.repo), public=True)
        return {"outcome": "channel_bound", "repo": writer.repo}

    # ------------------------------------------------------------------------------------ merging

    async def merge_command(self, command: commands.Merge) -> dict[str, Any]:
        thread = await self._thread()
        if command.number is None:
            if thread is None:
                raise Refused(blocks.problem(IN_A_THREAD.format(word="merge")), "no_thread")
            if thread.pull_number is None:
                raise Refused(blocks.problem(NO_PULL_YET), "no_pull_request")
            return await self.merge(thread.repo, thread.pull_number)
        repo = command.repo or (thread.repo if thread else None) or await asyncio.to_thread(
            self.store.channel_repo, self.request.team, self.request.channel)
        if repo is None:
            raise Refused(blocks.problem("Name the repository: `/honk merge owner/name#12`."), "no_repository")
        return await self.merge(repo, command.number)

    async def merge(self, repo_name: str, number: int) -> dict[str, Any]:
        """Merge for a linked writer, through GitHub's merge API: branch protection decides, and a refusal is
        explained in the thread in GitHub's words."""
        writer = await self.writer(await self.linked(), repo_name, private=True)
        async with await self.app.repo(writer.installation, writer.repo) as repo:
            pull = await repo.pull(number)
            shown = Pull(writer.repo, number, as_str(pull.get("html_url")), as_str(pull.get("title")))
            if pull.get("merged"):
                await self.tell_thread(blocks.merged(shown), writer.repo, number)
                return {"outcome": "already_merged", "pull_request": number}
            try:
                merged = await _merge(repo.merge, number)
            except MergeRefused as refused:
                await self.ctx.audit.record("slack.merge_refused", pull_request=number, status=refused.status,
                                            reason=refused.reason[:500], requester=writer.login)
                await self.tell_thread(blocks.merge_refused(shown, refused.reason), writer.repo, number)
                return {"outcome": "merge_refused", "pull_request": number, "reason": refused.reason}
            except RequestFailed as exc:
                if exc.response.status_code >= 500 or exc.response.status_code == 429:
                    raise
                reason = _github_message(exc)
                await self.tell_thread(blocks.merge_refused(shown, reason), writer.repo, number)
                return {"outcome": "merge_refused", "pull_request": number, "reason": reason}
            await self.ctx.audit.record("slack.merged", pull_request=number, sha=merged.get("sha"),
                                        requester=writer.login)
            await repo.comment(number, f"Merged as @{writer.login} asked in Slack.")  # GitHub keeps who asked
        await self.tell_thread(blocks.merged(shown, by=writer.login), writer.repo, number)
        return {"outcome": "merged", "pull_request": number, "sha": merged.get("sha"), "requester": writer.login}

    # ------------------------------------------------------------------------------------ who asks

    async def linked(self) -> str:
        """The GitHub login the Slack user linked; an unlinked user is answered with a link, privately."""
        found = await asyncio.to_thread(_link_of, self.store, self.request.team, self.request.user)
        if found is not None:
            self._link = found
            return found[0]
        try:
            state = make_state(self.request.team, self.request.user, state_secret(self.settings), time.time())
            message = blocks.link_account(link_url(self.settings, state))
        except LinkError as exc:
            message = blocks.problem(f"Link your GitHub account to use Honk. {exc}")
        raise Refused(message, "not_linked", private=True)

    async def writer(self, login: str, repo: str, *, private: bool = False) -> Writer:
        """`login` as a writer of `repo`, checked with GitHub now; a `Refused` otherwise."""
        installation = await self.app.installation_of(repo)
        if installation is None:
            raise Refused(blocks.problem(f"I can't find `{repo}` on GitHub, or Honk's GitHub App is not installed "
                                         "on it. Check the name, or ask an admin of the repository to install "
                                         "the App."), "not_installed", private=private)
        role = await self.app.permission(installation, repo, login)
        await self.ctx.audit.record("authorisation", requester=login, slack_user=self.request.user, repo=repo,
                                    role=role, allowed=can_write(role))
        if not can_write(role):
            raise Refused(blocks.not_writer(login, repo), "not_writer", private=private)
        return Writer(login, self._link[1] if self._link else None, repo, installation)

    # ------------------------------------------------------------------------------------ talking

    async def answer(self, message: Message, *, private: bool = False, public: bool = False,
                     quiet: bool = False) -> None:
        """Answer the request where it was asked: privately to a command or a click (or when `private`), in the
        thread to a message; `public` makes a command's answer seen by the channel. With `quiet`, a Slack
        failure is only logged."""
        request = self.request
        try:
            if request.private_reply or private:
                if public and request.type == "command" and await self._respond(message, public=True):
                    return
                if request.response_url and await self._respond(message, public=False):
                    return
                in_thread = request.thread_ts if request.thread_ts not in ("", request.ts) else None
                await self.slack.ephemeral(request.channel, request.user, message.blocks, message.text,
                                           thread_ts=in_thread)
                return
            await self.slack.post(request.channel, message.blocks, message.text, thread_ts=request.root or None)
        except SlackError as exc:
            if not quiet:
                raise
            log.warning("cannot answer in Slack: %s", exc)

    async def tell_thread(self, message: Message, repo: str, number: int) -> None:
        """Say it in the Honk thread of the pull request (the one asked in, else the one following it), or
        where the request was asked."""
        thread = await self._thread() or await asyncio.to_thread(self.store.thread_of_issue, repo, number)
        if thread is None or thread.repo != repo:
            await self.answer(message, public=True)
            return
        await self.slack.post(thread.channel_id, message.blocks, message.text, thread_ts=thread.thread_ts)

    async def _respond(self, message: Message, *, public: bool) -> bool:
        """Answer through the request's `response_url` (Slack's, from the signed request); False when it did not
        take it (expired, used up, unreachable), so the caller can fall back to the Web API."""
        url = self.request.response_url
        if not url.startswith(("https://", "http://")):
            return False
        body = {"response_type": "in_channel" if public else "ephemeral", "replace_original": False,
                "blocks": message.blocks, "text": message.text}
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            log.warning("Slack's response URL did not answer: %s", type(exc).__name__)
            return False
        return answer.status_code == 200

    # ------------------------------------------------------------------------------------ memory

    async def _thread(self) -> Thread | None:
        request = self.request
        if not request.thread_ts:
            return None
        return await asyncio.to_thread(self.store.thread_at, request.team, request.channel, request.thread_ts)

    async def _opened_here(self, thread: Thread) -> bool:
        """Whether this very job opened the thread (then a retry of it is the same request, not a reply)."""
        opened = await self._recalled("slack.thread")
        return opened is not None and opened.get("thread") == thread.id

    async def _remember(self, kind: str, **data: Any) -> None:
        await self.ctx.audit.record(kind, **data)

    async def _recalled(self, kind: str) -> dict[str, Any] | None:
        """What an earlier attempt of this job remembered under `kind` (its audit trail), if anything."""
        events = await asyncio.to_thread(self.ctx.queue.events, self.ctx.job.id)
        found = [event for event in events if event.kind == kind]
        return dict(found[-1].data) if found else None


# ------------------------------------------------------------------------------------------------ pieces


async def _merge(merge: Any, number: int) -> dict[str, Any]:
    """Merge with the repository's first allowed method (GitHub refuses a method the repository disallows)."""
    for method in MERGE_METHODS[:-1]:
        try:
            return await merge(number, method)
        except MergeRefused as refused:
            if refused.status != 405 or "not allowed" not in refused.reason.lower():
                raise
    return await merge(number, MERGE_METHODS[-1])


def _issue_body(task: str, login: str, permalink: str, files: str) -> str:
    parts = [task.strip()]
    if files:
        parts.append(f"Files attached in Slack (links: Honk did not copy them):\n\n{files}")
    where = f" in [this Slack thread]({permalink})" if permalink else ""
    parts.append(f"---\nRequested by @{login} via Slack{where}.")
    return "\n\n".join(parts)


def _quoted(text: str, files: str, login: str, permalink: str) -> str:
    """The pull request comment for a reply in the thread: the Slack user's words quoted, and who said them."""
    lines = [f"> {line}" if line.strip() else ">" for line in text.splitlines()]
    parts = ["\n".join(lines)] if lines else []
    if files:
        parts.append(f"Files attached in Slack:\n\n{files}")
    where = f" ([message]({permalink}))" if permalink else ""
    parts.append(f"— @{login} via Slack{where}")
    return "\n\n".join(parts)


def _said(text: str) -> Message:
    """One line of Honk's, as written (callers escape what came from elsewhere)."""
    return Message([{"type": "section", "text": {"type": "mrkdwn", "text": blocks.clip(text, 3000) or " "}}],
                   blocks.clip(" ".join(text.split()), 300) or "Honk")


def _job_line(job: Any, public_url: str | None) -> str:
    name = blocks.link(f"{public_url.rstrip('/')}/jobs/{job.id}" if public_url else None, f"Job #{job.id}")
    kind = blocks.escape(job.kind.replace("_", " "))
    status = job.status
    if status == JobStatus.QUEUED:
        return f"{name} ({kind}) is queued."
    if status == JobStatus.RUNNING:
        return f"{name} ({kind}) is running" + (", stopping as asked." if job.cancel_requested else ".")
    if status == JobStatus.SUCCEEDED:
        outcome = as_str((job.result or {}).get("outcome")).replace("_", " ") or "done"
        return f"{name} ({kind}) finished: {blocks.escape(outcome)}."
    if status == JobStatus.FAILED:
        return f"{name} ({kind}) failed: {blocks.escape(blocks.clip(job.error or 'no reason recorded', 200))}"
    return f"{name} ({kind}) was {blocks.escape(str(status))}."


def _link_of(store: SlackStore, team: str, user: str) -> tuple[str, int] | None:
    with store.db.session() as session:
        row = session.get(SlackLink, (team, user))
        return (row.github_login, row.github_id) if row else None


def _person(writer: Writer) -> dict[str, Any]:
    return {"login": writer.login, "id": writer.github_id, "type": "User"}


def _pick(source: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: source.get(key) for key in keys if key in source}


def _repository(info: dict[str, Any]) -> dict[str, Any]:
    return _pick(info, "id", "full_name", "clone_url", "html_url", "default_branch", "private", "fork")


def _github_message(exc: RequestFailed) -> str:
    try:
        message = as_dict(exc.response.json()).get("message")
    except ValueError:
        message = None
    return as_str(message) or f"HTTP {exc.response.status_code}"

