"""The named steps every job kind is made of, so that each kind reads as a short sequence of them:

    open the repository -> acknowledge -> fetch -> check out -> prepare the sandbox (setup)
        -> agent rounds (agent, stage, verify, fix) -> guard -> commit and push -> finish the status comment

A `Run` carries what one job learns on its way (the repository as the App, the status comment, the
repository's config, the run's figures); the steps take it and say what they did in the job's audit trail.
Every step is idempotent on a retry: the status comment is found again by the job's marker, and a branch
continues from what is already pushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from githubkit.exception import GitHubException

from app.agent import Agent, AgentResult, DataBlock, Task
from app.checkout.egress import EgressProxy
from app.checkout.sandbox import Sandbox, SandboxError
from app.checkout.verify import Verification, run_setup, run_tests
from app.checkout.workspace import GitError, Mirror, Workspace, git
from app.github.client import AppIdentity, GitHubApp, Repo, can_write
from app.jobs import report
from app.jobs.guard import check_change
from app.jobs.repo_config import DEFAULT_SOURCE, RepoConfig, RepoConfigError, detect_test_command, parse_repo_config
from app.jobs.report import JobLink, Outcome, RunFigures
from app.queue.context import JobContext, JobFailed

log = logging.getLogger("honk.jobs")

FIX_ROUNDS = 2  # extra agent rounds when Honk's own test run fails
TEST_TIMEOUT = 900.0
MAX_DIFF_CHARS = 200_000  # the diff kept in the audit trail for the job page
# Which trigger gets the 👀: a comment by its id, a label by its issue. A review as a whole has no reactions.
_REACTS_TO = {"issue_comment": "comment", "pr_comment": "comment", "command": "comment",
              "review_comment": "review_comment"}


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
    fetch_seconds: float = 0.0

    async def can_write(self, login: str) -> bool:
        if login not in self.permissions:
            self.permissions[login] = can_write(await self.repo.permission(login))
        return self.permissions[login]


@dataclass
class Attempt:
    """The agent's work on a workspace, once Honk has verified it."""

    result: AgentResult
    changed: list[str]  # staged paths; empty when the model changed nothing
    verification: Verification | None  # None when there was nothing to verify


@dataclass
class Pushed:
    sha: str
    verification: Verification  # after a catch-up, the run on the rebased commit
    notes: list[str]  # what the status comment should add (the branch had moved)


# Opening and acknowledging


@asynccontextmanager
async def opened(ctx: JobContext, app: GitHubApp) -> AsyncIterator[Run]:
    """The job's repository, as the App's installation, with a status comment that is not posted yet."""
    job = ctx.job
    identity = await app.identity(job.installation_id)
    link = JobLink(job.id, ctx.settings.honk_public_url)
    async with await app.repo(job.installation_id, job.repo) as repo:
        yield Run(ctx=ctx, repo=repo, identity=identity, status=StatusComment(repo, job.number, link,
                                                                              identity.bot_login))


async def acknowledge(run: Run, triggers: list[dict[str, Any]]) -> None:
    """👀 on what asked (each comment, or the issue for a label), then the status comment says "queued"."""
    for trigger in triggers:
        target = reaction_target(trigger)
        if target is None:
            continue
        try:
            await run.repo.react(*target)
        except GitHubException as exc:
            log.warning("cannot react to the request: %s", exc)  # a missing 👀 must not stop the work
    await run.status.show(report.queued(run.status.link))


def reaction_target(trigger: dict[str, Any]) -> tuple[str, int] | None:
    comment_id = (trigger.get("comment") or {}).get("id")
    kind = _REACTS_TO.get(trigger.get("type", ""))
    if kind and isinstance(comment_id, int):
        return kind, comment_id
    number = (trigger.get("issue") or {}).get("number")
    if trigger.get("type") in ("label", "issue_comment") and isinstance(number, int):
        return "issue", number
    return None


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


# The workspace


async def fetch(run: Run, info: dict[str, Any]) -> Mirror:
    """Bring the repository's mirror up to date and read its config from the default branch."""
    await run.status.step("preparing a workspace")
    mirror = Mirror.for_url(run.ctx.settings.honk_data_dir, info["clone_url"])
    started = time.monotonic()
    await mirror.fetch(run.repo.token)
    run.fetch_seconds = time.monotonic() - started
    run.config = await load_config(mirror, info["default_branch"])
    return mirror


async def check_out(run: Run, mirror: Mirror, info: dict[str, Any], *, branch: str, start: str,
                    continued: bool) -> Workspace:
    """The job's own checkout of `start`, on `branch`."""
    settings, job = run.ctx.settings, run.ctx.job
    started = time.monotonic()
    workspace = await Workspace.create(mirror, settings.honk_data_dir / "workspaces" / f"job-{job.id}",
                                       branch=branch, start=start)
    await run.ctx.audit.record("workspace", branch=branch, base=workspace.base, continued=continued,
                               default_branch=info["default_branch"], fetch_s=round(run.fetch_seconds, 3),
                               clone_s=round(time.monotonic() - started, 3))
    return workspace


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


async def load_config(mirror: Mirror, default_branch: str) -> RepoConfig:
    text = await git("show", f"refs/heads/{default_branch}:{DEFAULT_SOURCE}", cwd=mirror.path, check=False)
    try:
        return parse_repo_config(text or None)
    except RepoConfigError as exc:
        raise JobFailed(str(exc)) from None


# The sandbox and the agent


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
                            f"```\n{failure.output[-2000:]}\n```\n\nFix `setup` in `{DEFAULT_SOURCE}` and ask again.")
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
        verification = await verify(run, sandbox, test_command, test_reason) if changed else None
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
            verification = await verify(run, sandbox, test_command, test_reason) if changed else None
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


async def verify(run: Run, sandbox: Sandbox, command: str | None, reason: str) -> Verification:
    """Honk's own run of the repository's tests, in a fresh sandbox."""
    await run.status.step(f"running `{command}`" if command else "checking the change")
    verification = await run_tests(sandbox, command, reason, TEST_TIMEOUT)
    await run.ctx.audit.record("verify.tests", **verification.to_dict())
    return verification


# Pushing


async def guard_change(run: Run, workspace: Workspace) -> None:
    """Refuse a change that adds a secret, touches workflows or protected paths, or holds a nested repository
    or a symlink leading out."""
    workspace.pin()
    refusals = await asyncio.to_thread(check_change, workspace.path, workspace.base, run.config, workspace.git_env())
    if refusals:
        await run.ctx.audit.record("guard.refused", refusals=[r.message for r in refusals])
        lines = "\n".join(f"- {r.message}" for r in refusals)
        raise JobFailed(f"I made a change but will not push it:\n\n{lines}\n\nNothing was pushed. Adjust the "
                        f"request (or `protected_paths` / `allow_workflows` in `{DEFAULT_SOURCE}`) and ask again.")


async def commit_and_push(run: Run, workspace: Workspace, sandbox: Sandbox, attempt: Attempt, *, title: str,
                          summary: str, catch_up: bool = False) -> Pushed:
    """Commit the staged change as the App's bot, crediting the requester, and push it without force. With
    `catch_up`, a branch that moved meanwhile (a person pushed) gets the commit replayed on top, verified
    again, then pushed; otherwise the push fails."""
    assert attempt.verification is not None, "there is nothing to push without a verified change"
    await run.status.step("pushing the change")
    diff = await workspace.diff()
    started = time.monotonic()
    sha = await _commit(run, workspace, title=title, summary=summary)
    verification, notes = attempt.verification, []
    try:
        await workspace.push(run.repo.token)
    except GitError:
        if not catch_up:
            raise
        identity = run.identity
        if not await workspace.catch_up(run.repo.token, name=identity.bot_login, email=identity.bot_email):
            raise JobFailed("the branch moved while I worked and my change conflicts with the new commits; "
                            "nothing was pushed. Ask again to start from the branch as it is now.") from None
        sha = await workspace.head()
        if verification.command:
            verification = await run_tests(sandbox, verification.command, verification.reason, TEST_TIMEOUT)
        await run.ctx.audit.record("verify.tests", after_catch_up=True, **verification.to_dict())
        notes.append("The branch had new commits; my change is on top of them.")
        await workspace.push(run.repo.token)
    await run.ctx.audit.record("git.pushed", branch=workspace.branch, commit=sha, files=attempt.changed,
                               seconds=round(time.monotonic() - started, 3), diff=report.clip(diff, MAX_DIFF_CHARS))
    return Pushed(sha, verification, notes)


async def _commit(run: Run, workspace: Workspace, *, title: str, summary: str) -> str:
    job = run.ctx.job
    sender = job.payload.get("sender") or {}
    co_author = (f"{job.requester} <{sender['id']}+{job.requester}@users.noreply.github.com>"
                 if sender.get("id") and job.requester else None)
    message = report.commit_message(title=title, summary=summary, job_id=job.id, co_author=co_author)
    return await workspace.commit(message, name=run.identity.bot_login, email=run.identity.bot_email)


# Results


def stopped_early(result: AgentResult) -> str | None:
    """Why the agent stopped before it was done, in words for the status comment; None when it completed."""
    if result.stop == "completed":
        return None
    if result.stop == "budget":
        return f"the run stopped at its {result.budget} budget; the change may be incomplete."
    if result.stop == "refusal":
        return f"the model declined to continue ({result.refusal_category or 'no category given'})."
    return f"the run ended early ({result.stop}: {result.error or 'no detail'})."


def result_figures(result: AgentResult) -> dict[str, Any]:
    return {"turns": result.turns, "cost_usd": round(result.cost_usd, 4), "usage": result.usage,
            "agent_seconds": round(result.duration_s, 2), "stop": result.stop}


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
        return config.test, f"from `{DEFAULT_SOURCE}`"
    detected = detect_test_command(root)
    if detected:
        return detected.command, detected.reason
    return None, f"no test command in `{DEFAULT_SOURCE}` and none detected (pytest, npm, go, cargo, make)"


def _figures(result: AgentResult) -> RunFigures:
    usage = result.usage
    return RunFigures(turns=result.turns,
                      input_tokens=usage.get("input_tokens", 0) + usage.get("cache_creation_input_tokens", 0)
                      + usage.get("cache_read_input_tokens", 0),
                      output_tokens=usage.get("output_tokens", 0),
                      cache_read_tokens=usage.get("cache_read_input_tokens", 0), cost_usd=result.cost_usd,
                      seconds=result.duration_s)
