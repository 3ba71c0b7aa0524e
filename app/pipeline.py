"""Issue to pull request: what a `resolve_issue` job does once its requester is authorised.

    acknowledge -> workspace -> config -> setup -> agent -> verify (<= 2 more rounds) -> guard
                -> commit -> push -> open or update the pull request -> final status

Every step is idempotent on a retry: the status comment, branch and pull request are found by the job's
marker or the issue's branch prefix, and work continues on top of what is already pushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from githubkit.exception import GitHubException

from app import report
from app.agent import Agent, AgentResult, DataBlock, Task
from app.briefing import issue_task
from app.egress import EgressProxy
from app.github import AppIdentity, GitHubApp, Repo, can_write
from app.guard import check_change
from app.repo_config import RepoConfig, RepoConfigError, detect_test_command, parse_repo_config
from app.report import JobLink, Outcome, RunFigures
from app.sandbox import Sandbox, SandboxError
from app.verify import Verification, run_setup, run_tests
from app.worker import JobContext, JobFailed
from app.workspace import GitError, Mirror, Workspace, branch_name, git

log = logging.getLogger("honk.pipeline")

CONFIG_PATH = ".github/honk.yml"
FIX_ROUNDS = 2  # extra agent rounds when Honk's own test run fails
TEST_TIMEOUT = 900.0
MAX_DIFF_CHARS = 200_000  # the diff kept in the audit trail for the job page


class StatusComment:
    """The one comment per run that says where the job is, edited in place."""

    def __init__(self, repo: Repo, number: int, link: JobLink, bot_login: str) -> None:
        self.repo, self.number, self.link, self.bot_login = repo, number, link, bot_login
        self.id: int | None = None
        self.notes: list[str] = []  # said under whatever outcome the run ends with (e.g. hosts setup could not reach)

    async def show(self, body: str) -> None:
        if self.id is None:
            # A retried job edits the comment its earlier attempt wrote.
            for comment in await self.repo.issue_comments(self.number):
                if (comment.get("user") or {}).get("login") == self.bot_login and \
                        report.job_of(comment.get("body")) == self.link.job_id:
                    self.id = comment["id"]
        if self.id is None:
            self.id = (await self.repo.comment(self.number, body))["id"]
        else:
            await self.repo.edit_comment(self.id, body)

    async def step(self, text: str) -> None:
        await self.show(report.working(self.link, text))

    async def finish(self, outcome: Outcome, figures: RunFigures | None) -> None:
        outcome = Outcome(outcome.headline, [*outcome.details, *self.notes])
        await self.show(report.finished(self.link, outcome, figures))


@dataclass
class Run:
    """What one job learnt on its way, for the final report."""

    ctx: JobContext
    repo: Repo
    identity: AppIdentity
    status: StatusComment
    config: RepoConfig = field(default_factory=RepoConfig)
    figures: RunFigures = field(default_factory=RunFigures)
    permissions: dict[str, bool] = field(default_factory=dict)

    async def can_write(self, login: str) -> bool:
        if login not in self.permissions:
            self.permissions[login] = can_write(await self.repo.permission(login))
        return self.permissions[login]


async def resolve_issue(ctx: JobContext, app: GitHubApp) -> dict[str, Any]:
    job = ctx.job
    identity = await app.identity(job.installation_id)
    link = JobLink(job.id, ctx.settings.honk_public_url)
    async with await app.repo(job.installation_id, job.repo) as repo:
        status = StatusComment(repo, job.number, link, identity.bot_login)
        await _acknowledge(repo, job.payload)
        await status.show(report.queued(link))
        run = Run(ctx=ctx, repo=repo, identity=identity, status=status)
        async with failures_reported(run):
            return await _resolve(run)


@asynccontextmanager
async def failures_reported(run: Run) -> AsyncIterator[None]:
    """A failure ends with the status comment saying what happened, and whether Honk will try again."""
    job = run.ctx.job
    try:
        yield
    except JobFailed as exc:
        await _report_failure(run, str(exc), final=not exc.retry or job.attempts >= job.max_attempts)
        raise
    except (GitHubException, GitError, SandboxError, OSError) as exc:
        await _report_failure(run, f"{type(exc).__name__}: {exc}", final=job.attempts >= job.max_attempts)
        raise


async def _acknowledge(repo: Repo, trigger: dict[str, Any]) -> None:
    """👀 on what asked: the comment, or the issue for a label."""
    comment = trigger.get("comment") or {}
    try:
        if trigger.get("type") == "issue_comment" and comment.get("id"):
            await repo.react("comment", comment["id"])
        else:
            await repo.react("issue", (trigger.get("issue") or {})["number"])
    except (GitHubException, KeyError) as exc:
        log.warning("cannot react to the request: %s", exc)  # a missing 👀 must not stop the work


async def _resolve(run: Run) -> dict[str, Any]:
    ctx, repo = run.ctx, run.repo
    job, settings = ctx.job, ctx.settings
    info = await repo.info()
    default_branch = info["default_branch"]

    await run.status.step("preparing a workspace")
    mirror = Mirror.for_url(settings.honk_data_dir, info["clone_url"])
    started = time.monotonic()
    await mirror.fetch(repo.token)
    fetched = time.monotonic()
    run.config = await load_config(mirror, default_branch)
    prefix = run.config.branch_prefix_over(settings)
    existing = await _existing_branch(mirror, prefix, job.number)
    branch = existing or branch_name(prefix, job.number, (job.payload.get("issue") or {}).get("title", ""))
    workspace = await Workspace.create(mirror, settings.honk_data_dir / "workspaces" / f"job-{job.id}",
                                       branch=branch, start=existing or default_branch)
    await ctx.audit.record("workspace", branch=branch, base=workspace.base, continued=bool(existing),
                           default_branch=default_branch, fetch_s=round(fetched - started, 3),
                           clone_s=round(time.monotonic() - fetched, 3))
    async with kept_if_stopped(run, workspace):
        return await _work(run, workspace, default_branch, info)


@asynccontextmanager
async def kept_if_stopped(run: Run, workspace: Workspace) -> AsyncIterator[None]:
    """Remove the workspace when the job ends, unless someone stopped it (`@honk stop`): then its work so
    far stays on disk, is reported, and nothing half-done is pushed."""
    keep = False
    try:
        yield
    except asyncio.CancelledError:
        current = await asyncio.to_thread(run.ctx.queue.get, run.ctx.job.id)
        if current is not None and current.cancel_requested:
            keep = True
            changes = await workspace.git("status", "--short", "--ignore-submodules=all", check=False)
            await run.ctx.audit.record("job.stopped", workspace=str(workspace.path), changes=changes)
            with contextlib.suppress(GitHubException):
                await run.status.finish(Outcome(
                    "🛑 Stopped as asked. Nothing was pushed.",
                    [f"The work so far is kept on the Honk host in `{workspace.path}`."]), run.figures)
        raise
    finally:
        if not keep:
            workspace.remove()


@dataclass
class Attempt:
    """The agent's work on a workspace, once Honk has verified it."""

    result: AgentResult
    changed: list[str]  # staged paths; empty when the model changed nothing
    verification: Verification | None  # None when there was nothing to verify


async def prepare_sandbox(run: Run, workspace: Workspace) -> Sandbox:
    """Check the sandbox and run the repository's setup, before the model acts."""
    settings, config = run.ctx.settings, run.config
    sandbox = Sandbox(workspace.path, settings, git_dir=workspace.git_dir)
    await sandbox.check()
    if config.setup:
        await run.status.step("running the repository's setup")
        # Setup runs before the model has touched anything, so it alone gets a network: one whose only way
        # out is Honk's proxy, to the package registries on the allowlist.
        async with EgressProxy.for_settings(settings) as proxy:
            failure = await run_setup(Sandbox(workspace.path, settings, git_dir=workspace.git_dir, network=proxy),
                                      config.setup, TEST_TIMEOUT)
        blocked = [f"`{b.host}:{b.port}` ({b.reason})" for b in proxy.blocked]
        await run.ctx.audit.record("verify.setup", commands=config.setup, ok=failure is None,
                                   output=failure.output if failure else "", blocked=blocked,
                                   allowed=dict(proxy.allowed))
        if blocked:
            more = f" and {proxy.blocked_more} more" if proxy.blocked_more else ""
            run.status.notes.append(f"🧱 Setup's network filter blocked {', '.join(blocked)}{more}. Setup may reach "
                                    "only package registries; an operator can allow more hosts with "
                                    "`HONK_SETUP_ALLOWED_HOSTS`.")
        if failure:
            raise JobFailed(f"the repository's setup failed: `{failure.command}` exited {failure.exit_code}.\n\n"
                            f"```\n{failure.output[-2000:]}\n```\n\nFix `setup` in `{CONFIG_PATH}` and ask again.")
    await _exclude_untracked(workspace)  # setup's artifacts (venvs, node_modules) are not part of the change
    return sandbox


async def agent_rounds(run: Run, workspace: Workspace, sandbox: Sandbox, task: Task) -> Attempt:
    """Run the agent, verify what it changed, and hand failing tests back for up to FIX_ROUNDS more rounds."""
    settings, config = run.ctx.settings, run.config
    test_command, test_reason = _test_command(config, workspace.path)
    agent_settings = settings.model_copy(update={"honk_model": config.model_over(settings)})
    await run.status.step("working on the change")
    async with Agent(agent_settings, workspace.path, run.ctx.audit, budget=config.budget_over(settings),
                     secrets=[run.repo.token], sandbox=sandbox) as agent:
        result = await agent.run(task)
        changed = await _stage(agent, workspace)
        verification = await _verify(run, sandbox, test_command, test_reason) if changed else None
        rounds = 0
        while verification and verification.failed and result.stop == "completed" and rounds < FIX_ROUNDS:
            rounds += 1
            await run.status.step(f"tests failed; fixing them (round {rounds} of {FIX_ROUNDS})")
            result = await agent.resume(
                f"Honk ran `{test_command}` after your change and it failed. Fix the cause (not the tests, unless "
                "they are wrong), run it again, and reply with an updated summary. Your shell was restarted "
                "meanwhile: background processes and exported variables are gone.",
                data=[DataBlock(f"output of `{test_command}`", verification.output)])
            changed = await _stage(agent, workspace)
            verification = await _verify(run, sandbox, test_command, test_reason) if changed else None
    run.figures = _figures(result)
    return Attempt(result, changed, verification)


async def _stage(agent: Agent, workspace: Workspace) -> list[str]:
    """Stage the agent's work once nothing it started can still change the tree: its whole sandbox (the
    shell's PID namespace and every background process) has ended first."""
    await agent.end_sandbox()
    nested = await workspace.nested_repositories()
    if nested:
        raise JobFailed("I made a change but will not push it:\n\n" + "\n".join(
            f"- `{path}` is a nested git repository; Honk does not push those." for path in nested)
            + "\n\nNothing was pushed. Ask again without creating repositories inside this one.")
    return await workspace.stage_all()


async def guard_change(run: Run, workspace: Workspace) -> None:
    workspace.pin()
    refusals = await asyncio.to_thread(check_change, workspace.path, workspace.base, run.config, workspace.git_env())
    if refusals:
        await run.ctx.audit.record("guard.refused", refusals=[r.message for r in refusals])
        lines = "\n".join(f"- {r.message}" for r in refusals)
        raise JobFailed(f"I made a change but will not push it:\n\n{lines}\n\nNothing was pushed. Adjust the "
                        f"request (or `protected_paths` / `allow_workflows` in `{CONFIG_PATH}`) and ask again.")


async def commit(run: Run, workspace: Workspace, *, title: str, summary: str) -> str:
    """Commit the staged change as the App's bot, crediting the requester."""
    job = run.ctx.job
    sender = job.payload.get("sender") or {}
    co_author = (f"{job.requester} <{sender['id']}+{job.requester}@users.noreply.github.com>"
                 if sender.get("id") and job.requester else None)
    message = report.commit_message(title=title, summary=summary, job_id=job.id, co_author=co_author)
    return await workspace.commit(message, name=run.identity.bot_login, email=run.identity.bot_email)


async def pushed(run: Run, workspace: Workspace, sha: str, files: list[str], diff: str, started: float) -> None:
    await run.ctx.audit.record("git.pushed", branch=workspace.branch, commit=sha, files=files,
                               seconds=round(time.monotonic() - started, 3), diff=_clip(diff, MAX_DIFF_CHARS))


async def _work(run: Run, workspace: Workspace, default_branch: str, info: dict[str, Any]) -> dict[str, Any]:
    ctx, repo, config = run.ctx, run.repo, run.config
    job = ctx.job
    sandbox = await prepare_sandbox(run, workspace)
    comments = await repo.issue_comments(job.number)
    task = await issue_task(repo=job.repo, trigger=job.payload, comments=comments, requester=job.requester or "",
                            requested_at=job.created_at.replace(tzinfo=UTC), bot_login=run.identity.bot_login,
                            can_write=run.can_write)
    attempt = await agent_rounds(run, workspace, sandbox, task)
    result, verification = attempt.result, attempt.verification
    if not attempt.changed or verification is None:
        return await _no_change(run, result)
    await guard_change(run, workspace)

    await run.status.step("pushing the change")
    diff = await workspace.diff()
    title = report.change_title(result.summary, (job.payload.get("issue") or {}).get("title", ""), job.number)
    started = time.monotonic()
    sha = await commit(run, workspace, title=title, summary=result.summary)
    await workspace.push(repo.token)
    await pushed(run, workspace, sha, attempt.changed, diff, started)

    stopped = _stopped_early(result)
    draft = config.opens_as_draft(not verification.failed) or stopped is not None
    body = report.pull_body(summary=result.summary, issue=job.number, verification=verification,
                            figures=run.figures, link=run.status.link, requester=job.requester or "",
                            stopped=stopped)
    owner = info["owner"]["login"]
    pull = await repo.find_pull(owner, workspace.branch)
    if pull and pull.get("state") == "open":
        pull = await repo.edit_pull(pull["number"], title=title, body=body)
        opened = False
    else:
        pull = await repo.open_pull(title=title, body=body, head=workspace.branch, base=default_branch, draft=draft)
        opened = True
        if job.requester:
            await repo.request_review(pull["number"], job.requester)
    await ctx.audit.record("pull_request", number=pull["number"], url=pull.get("html_url"), opened=opened,
                           draft=draft, commit=sha)

    verb = "Opened" if opened else "Updated"
    await run.status.finish(Outcome(
        f"✅ {verb} #{pull['number']}: {title}" + (" (draft)" if draft else ""),
        [report.verification_line(verification)] + ([f"⚠️ {stopped}"] if stopped else [])), run.figures)
    return {"outcome": "pull_request", "pull_request": pull["number"], "pull_request_url": pull.get("html_url"),
            "branch": workspace.branch, "commit": sha, "opened": opened, "draft": draft,
            "summary": result.summary[:2000],
            "verification": verification.to_dict(), **result_figures(result)}


async def _verify(run: Run, sandbox: Sandbox, command: str | None, reason: str) -> Verification:
    await run.status.step(f"running `{command}`" if command else "checking the change")
    verification = await run_tests(sandbox, command, reason, TEST_TIMEOUT)
    await run.ctx.audit.record("verify.tests", **verification.to_dict())
    return verification


async def _no_change(run: Run, result: AgentResult) -> dict[str, Any]:
    stopped = _stopped_early(result)
    headline = ("💬 I made no change, so there is no pull request." if stopped is None
                else f"⚠️ I stopped before making a change: {stopped}")
    details = [result.summary.strip()] if result.summary.strip() else []
    await run.status.finish(Outcome(headline, details), run.figures)
    return {"outcome": "no_change", "summary": result.summary, "stop": result.stop, **result_figures(result)}


async def _report_failure(run: Run, message: str, *, final: bool) -> None:
    if final:
        outcome = Outcome(f"❌ I could not finish this: {message}",
                          ["Label the issue again or mention me to retry once the cause is fixed."])
    else:
        outcome = Outcome(f"⚠️ A step failed and I will retry shortly: {message}")
    try:
        await run.status.finish(outcome, run.figures)
    except GitHubException as exc:
        log.warning("cannot update the status comment: %s", exc)


async def load_config(mirror: Mirror, default_branch: str) -> RepoConfig:
    text = await git("show", f"refs/heads/{default_branch}:{CONFIG_PATH}", cwd=mirror.path, check=False)
    try:
        return parse_repo_config(text or None)
    except RepoConfigError as exc:
        raise JobFailed(str(exc)) from None


async def _existing_branch(mirror: Mirror, prefix: str, number: int) -> str | None:
    """The branch an earlier attempt for this issue pushed, so a retry continues it instead of forking."""
    stem = f"{prefix}issue-{number}"
    for name in await mirror.branches(stem):
        if name == stem or name.startswith(stem + "-"):
            return name
    return None


async def _exclude_untracked(workspace: Workspace) -> None:
    out = await workspace.git("ls-files", "--others", "--exclude-standard", "--directory")
    paths = [line for line in out.splitlines() if line]
    if paths:
        exclude = workspace.git_dir / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as handle:
            handle.write("".join(f"/{path}\n" for path in paths))


def _test_command(config: RepoConfig, root: Path) -> tuple[str | None, str]:
    if config.test:
        return config.test, f"from `{CONFIG_PATH}`"
    detected = detect_test_command(root)
    if detected:
        return detected.command, detected.reason
    return None, f"no test command in `{CONFIG_PATH}` and none detected (pytest, npm, go, cargo, make)"


def _stopped_early(result: AgentResult) -> str | None:
    if result.stop == "completed":
        return None
    if result.stop == "budget":
        return f"the run stopped at its {result.budget} budget; the change may be incomplete."
    if result.stop == "refusal":
        return f"the model declined to continue ({result.refusal_category or 'no category given'})."
    return f"the run ended early ({result.stop}: {result.error or 'no detail'})."


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[… {len(text) - limit} more characters]\n"


def _figures(result: AgentResult) -> RunFigures:
    usage = result.usage
    return RunFigures(turns=result.turns,
                      input_tokens=usage.get("input_tokens", 0) + usage.get("cache_creation_input_tokens", 0)
                      + usage.get("cache_read_input_tokens", 0),
                      output_tokens=usage.get("output_tokens", 0),
                      cache_read_tokens=usage.get("cache_read_input_tokens", 0), cost_usd=result.cost_usd,
                      seconds=result.duration_s)


def result_figures(result: AgentResult) -> dict[str, Any]:
    return {"turns": result.turns, "cost_usd": round(result.cost_usd, 4), "usage": result.usage,
            "agent_seconds": round(result.duration_s, 2), "stop": result.stop}
