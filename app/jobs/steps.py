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
from typing import Any

from githubkit.exception import GitHubException

from app.agent import Agent, AgentResult, DataBlock, Task, prompts
from app.agent.judge import Judge, JudgeVerdict
from app.checkout.egress import EgressProxy
from app.checkout.sandbox import Sandbox, SandboxError
from app.checkout.verify import Verification, Verifier, run_setup, run_verifiers
from app.checkout.workspace import GitError, Mirror, Workspace, git
from app.github.client import AppIdentity, GitHubApp, Repo, can_write
from app.jobs import report, spending
from app.jobs.guard import check_change
from app.jobs.repo_config import DEFAULT_SOURCE, RepoConfig, RepoConfigError, parse_repo_config
from app.jobs.report import JobLink, Outcome, RunFigures
from app.jobs.slack_thread import PullFacts, ThreadStatus
from app.jobs.verifiers import verifiers_for
from app.queue.context import JobContext, JobFailed

log = logging.getLogger("honk.jobs")

TEST_TIMEOUT = 900.0  # per verifier: test suites outlast the shell's per-command timeout
MAX_DIFF_CHARS = 200_000  # the diff kept in the audit trail for the job page
# Which trigger gets the 👀: a comment by its id, a label by its issue. A review as a whole has no reactions.
_REACTS_TO = {"issue_comment": "comment", "pr_comment": "comment", "command": "comment",
              "fix_ci_command": "comment", "campaign_command": "comment", "review_comment": "review_comment"}


class StatusComment:
    """The one comment per run that says where the job is, edited in place."""

    def __init__(self, repo: Repo, number: int, link: JobLink, bot_login: str, *, silent: bool = False) -> None:
        self.repo, self.number, self.link, self.bot_login = repo, number, link, bot_login
        self.id: int | None = None
        self.notes: list[str] = []  # said under whatever outcome the run ends with (e.g. hosts setup could not reach)
        # A silent status says nothing on GitHub: for work that reports elsewhere (a check run), or that may
        # turn out to need no answer at all (most CI events).
        self.silent = silent
        self.slack: ThreadStatus | None = None  # the Slack thread's status message, for a request from Slack

    async def show(self, body: str) -> None:
        if self.silent:
            return
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

    async def queued(self) -> None:
        await self.show(report.queued(self.link))
        if self.slack is not None:
            await self.slack.queued()

    async def step(self, text: str) -> None:
        await self.show(report.working(self.link, text))
        if self.slack is not None:
            await self.slack.step(text)

    async def pull_opened(self, pull: dict[str, Any], *, draft: bool, verification: Verification,
                          attempt: Attempt) -> None:
        """The run opened or updated its pull request: the Slack thread records it and shows it at the end."""
        if self.slack is not None:
            await self.slack.pull_opened(PullFacts(
                pull["number"], pull.get("html_url") or "", pull.get("title") or "", draft,
                report.verification_line(verification), report.judge_line(attempt.judgement),
                stopped_early(attempt.result)))

    async def finish(self, outcome: Outcome, figures: RunFigures | None, *, state: str = "done") -> None:
        """The final state; `state` tells the Slack thread what kind (`done`, `retrying`, `failed`, `stopped`)."""
        outcome = Outcome(outcome.headline, [*outcome.details, *self.notes])
        await self.show(report.finished(self.link, outcome, figures))
        if self.slack is not None:
            await self.slack.finish(outcome, figures, state=state)


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
    spend: spending.JobSpend | None = None  # the spending policy's gate, from the agent's first round
    keep_workspace: bool = False  # a run stopped at a spending cap keeps its work on disk

    async def can_write(self, login: str) -> bool:
        if login not in self.permissions:
            self.permissions[login] = can_write(await self.repo.permission(login))
        return self.permissions[login]


@dataclass
class Attempt:
    """The agent's work on a workspace, once Honk has verified it and the judge has read it."""

    result: AgentResult
    changed: list[str]  # staged paths; empty when the model changed nothing
    verification: Verification | None  # None when there was nothing to verify
    judgement: JudgeVerdict | None = None  # None when the judge is off or there was no change
    vetoes: int = 0

    @property
    def vetoed(self) -> bool:
        """The judge's last word was a veto (after the one round it gets back to the agent)."""
        return self.judgement is not None and self.judgement.decision == "veto"

    @property
    def sound(self) -> bool:
        """Every verifier passed and the judge did not veto: what decides a draft under `draft: on_failure`."""
        return not (self.verification and self.verification.failed) and not self.vetoed


@dataclass
class Pushed:
    sha: str
    verification: Verification  # after a catch-up, the run on the rebased commit
    notes: list[str]  # what the status comment should add (the branch had moved)
    check_run: int | None = None  # the `Honk` check run on `sha`, in progress until `check_finished`


# Opening and acknowledging


@asynccontextmanager
async def opened(ctx: JobContext, app: GitHubApp, *, silent: bool = False) -> AsyncIterator[Run]:
    """The job's repository, as the App's installation, with a status comment that is not posted yet."""
    job = ctx.job
    identity = await app.identity(job.installation_id)
    link = JobLink(job.id, ctx.settings.honk_public_url)
    async with await app.repo(job.installation_id, job.repo) as repo:
        status = StatusComment(repo, job.number, link, identity.bot_login, silent=silent)
        status.slack = await ThreadStatus.for_job(ctx)  # None unless Slack asked
        yield Run(ctx=ctx, repo=repo, identity=identity, status=status)


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
    await run.status.queued()


def reaction_target(trigger: dict[str, Any]) -> tuple[str, int] | None:
    comment_id = (trigger.get("comment") or {}).get("id")
    kind = _REACTS_TO.get(trigger.get("type", ""))
    if kind and isinstance(comment_id, int):
        return kind, comment_id
    number = (trigger.get("issue") or {}).get("number")
    if trigger.get("type") in ("label", "issue_comment", "campaign_label") and isinstance(number, int):
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
                    [f"The work so far is kept on the Honk host in `{workspace.path}`."]), run.figures,
                    state="stopped")
        raise
    finally:
        if not keep and not run.keep_workspace:
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
    """Run the agent, then the gate: Honk runs every verifier itself and hands failures back for up to
    HONK_VERIFY_ROUNDS more rounds; then the judge reads the diff, and a veto goes back to the agent once."""
    settings, config = run.ctx.settings, run.config
    verifiers, no_verifiers = verifiers_for(config, workspace.path)
    agent_settings = settings.model_copy(update={"honk_model": config.model_over(settings)})
    run.spend = await spending.open_gate(run.ctx, config)  # JobFailed: a cap is reached, a model is not allowed
    await run.status.step("working on the change")
    async with run.spend, Agent(agent_settings, workspace.path, run.ctx.audit, budget=config.budget_over(settings),
                                secrets=[run.repo.token], sandbox=sandbox, verifiers=verifiers,
                                no_verifiers=no_verifiers, verify_timeout=TEST_TIMEOUT, spend=run.spend) as agent:
        gate = _Gate(run, agent, workspace, sandbox, verifiers, no_verifiers)
        attempt = await gate.verified(await agent.run(task), rounds=settings.honk_verify_rounds)
        if attempt.changed and settings.honk_judge:
            attempt.judgement = await judge(run, workspace, task)
            if attempt.judgement.decision == "veto" and attempt.result.stop == "completed":
                await run.status.step("the judge vetoed the change; addressing its reason")
                result = await agent.resume(prompts.VETOED, data=[DataBlock("the judge's reason",
                                                                            attempt.judgement.reason)])
                judged = attempt.judgement
                attempt = await gate.verified(result, rounds=settings.honk_verify_rounds - gate.rounds_used)
                attempt.judgement = await judge(run, workspace, task) if attempt.changed else judged
                attempt.vetoes = 1 + (attempt.judgement.decision == "veto")
    run.figures = _figures(attempt.result, attempt.judgement)
    if attempt.result.budget == "spend_cap" and attempt.result.turns:
        run.keep_workspace = True
        run.status.notes.append(f"💾 The work so far is kept on the Honk host in `{workspace.path}`.")
    return attempt


class _Gate:
    """Honk's own run of the verifiers after the agent stops, with failures handed back to it."""

    def __init__(self, run: Run, agent: Agent, workspace: Workspace, sandbox: Sandbox, verifiers: list[Verifier],
                 no_verifiers: str) -> None:
        self.run, self.agent, self.workspace, self.sandbox = run, agent, workspace, sandbox
        self.verifiers, self.no_verifiers = verifiers, no_verifiers
        self.rounds_used = 0

    async def verified(self, result: AgentResult, *, rounds: int) -> Attempt:
        changed = await _stage(self.agent, self.workspace)
        verification = await self.check() if changed else None
        for round_ in range(1, max(rounds, 0) + 1):
            if not (verification and verification.failed and result.stop == "completed"):
                break
            self.rounds_used += 1
            failing = ", ".join(r.name for r in verification.failing)
            await self.run.status.step(f"verifiers failed ({failing}); fixing them (round {round_} of {rounds})")
            result = await self.agent.resume(prompts.VERIFIERS_FAILED, data=[
                DataBlock("Honk's run of the verifiers", verification.verdict())])
            changed = await _stage(self.agent, self.workspace)
            verification = await self.check() if changed else None
        return Attempt(result, changed, verification)

    async def check(self) -> Verification:
        return await verify(self.run, self.sandbox, self.verifiers, self.no_verifiers)


async def judge(run: Run, workspace: Workspace, task: Task) -> JudgeVerdict:
    """The independent judge's verdict on the staged change: it reads the request, the repository's
    instructions and the diff, never the agent's transcript."""
    await run.status.step("the judge is reading the change")
    judge_ = Judge(run.ctx.settings, run.ctx.audit, secrets=[run.repo.token])
    diff = await workspace.diff()
    return await spending.judged(run.spend, judge_.model, lambda: judge_.review(
        request=prompts.task_message(task), diff=diff, instructions=prompts.repository_notes(workspace.path),
        repository=run.ctx.job.repo))  # past a spending cap the judge is not asked


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


async def verify(run: Run, sandbox: Sandbox, verifiers: list[Verifier], no_verifiers: str) -> Verification:
    """Honk's own run of the repository's verifiers, each in a fresh sandbox."""
    names = ", ".join(v.name for v in verifiers)
    await run.status.step(f"running the verifiers ({names})" if verifiers else "checking the change")
    verification = await run_verifiers(sandbox, verifiers, TEST_TIMEOUT, reason=no_verifiers)
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
                          summary: str, catch_up: bool = False, ci_fix: bool = False) -> Pushed:
    """Commit the staged change as the App's bot, crediting the requester, and push it without force. With
    `catch_up`, a branch that moved meanwhile (a person pushed) gets the commit replayed on top, verified
    again, then pushed; otherwise the push fails."""
    assert attempt.verification is not None, "there is nothing to push without a verified change"
    await run.status.step("pushing the change")
    diff = await workspace.diff()
    started = time.monotonic()
    sha = await _commit(run, workspace, title=title, summary=summary, ci_fix=ci_fix)
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
        verifiers, no_verifiers = verifiers_for(run.config, workspace.path)
        verification = await run_verifiers(sandbox, verifiers, TEST_TIMEOUT, reason=no_verifiers)
        await run.ctx.audit.record("verify.tests", after_catch_up=True, **verification.to_dict())
        notes.append("The branch had new commits; my change is on top of them.")
        await workspace.push(run.repo.token)
    await run.ctx.audit.record("git.pushed", branch=workspace.branch, commit=sha, files=attempt.changed,
                               seconds=round(time.monotonic() - started, 3), diff=report.clip(diff, MAX_DIFF_CHARS))
    return Pushed(sha, verification, notes, await check_started(run, sha))


async def _commit(run: Run, workspace: Workspace, *, title: str, summary: str, ci_fix: bool = False) -> str:
    job = run.ctx.job
    sender = job.payload.get("sender") or {}
    # A person is credited; a CI fix was asked for by a bot's delivery, and credits nobody.
    co_author = (f"{job.requester} <{sender['id']}+{job.requester}@users.noreply.github.com>"
                 if sender.get("id") and job.requester and sender.get("type") != "Bot" else None)
    message = report.commit_message(title=title, summary=summary, job_id=job.id, co_author=co_author, ci_fix=ci_fix)
    return await workspace.commit(message, name=run.identity.bot_login, email=run.identity.bot_email)


# The `Honk` check run


async def check_started(run: Run, sha: str) -> int | None:
    """A `Honk` check run on `sha`, in progress while Honk works. The check run is a report, not the work: a
    failure to write it (the App lacking `checks: write`, say) is recorded and the job goes on."""
    try:
        made = await run.repo.create_check_run(
            name=report.CHECK_NAME, head_sha=sha, status="in_progress", external_id=str(run.ctx.job.id),
            details_url=run.status.link.url, output={"title": "Honk is working", "summary": run.status.link.markdown()})
    except GitHubException as exc:
        log.warning("cannot create the check run: %s", exc)
        await run.ctx.audit.record("check_run.failed", commit=sha, error=str(exc)[:500])
        return None
    await run.ctx.audit.record("check_run.started", commit=sha, check_run=made["id"])
    return made["id"]


async def check_finished(run: Run, check_run: int | None, verification: Verification | None,
                         judgement: JudgeVerdict | None, note: str | None = None) -> None:
    """Complete the check run: success, failure or neutral, with each verifier, the verdict and the figures."""
    if check_run is None:
        return
    conclusion = report.check_conclusion(verification, judgement)
    output = report.check_output(verification=verification, judgement=judgement, figures=run.figures,
                                 link=run.status.link, note=note)
    try:
        await run.repo.update_check_run(check_run, status="completed", conclusion=conclusion, output=output)
    except GitHubException as exc:
        log.warning("cannot complete the check run: %s", exc)
        await run.ctx.audit.record("check_run.failed", check_run=check_run, error=str(exc)[:500])
        return
    await run.ctx.audit.record("check_run.finished", check_run=check_run, conclusion=conclusion)


def outcome_details(attempt: Attempt, verification: Verification) -> list[str]:
    """What the status comment says under its headline: the verifiers, the judge, an early stop."""
    stopped = stopped_early(attempt.result)
    judged = report.judge_line(attempt.judgement)
    return [report.verification_line(verification), *([judged] if judged else []),
            *([f"⚠️ {stopped}"] if stopped else [])]


# Results


def stopped_early(result: AgentResult) -> str | None:
    """Why the agent stopped before it was done, in words for the status comment; None when it completed."""
    if result.stop == "completed":
        return None
    if result.stop == "budget" and result.budget == "spend_cap":
        return f"the run stopped at a spending cap: {result.error}. Its work so far is kept."
    if result.stop == "budget":
        return f"the run stopped at its {result.budget} budget; the change may be incomplete."
    if result.stop == "refusal":
        return f"the model declined to continue ({result.refusal_category or 'no category given'})."
    return f"the run ended early ({result.stop}: {result.error or 'no detail'})."


def result_figures(attempt: Attempt) -> dict[str, Any]:
    result, judgement = attempt.result, attempt.judgement
    return {"turns": result.turns, "cost_usd": round(result.cost_usd + (judgement.cost_usd if judgement else 0), 4),
            "usage": result.usage, "agent_seconds": round(result.duration_s, 2), "stop": result.stop,
            "judge": judgement.to_dict() if judgement else None}


async def _report_failure(run: Run, message: str, *, final: bool) -> None:
    if final:
        outcome = Outcome(f"❌ I could not finish this: {message}",
                          ["Label the issue again or mention me to retry once the cause is fixed."])
    else:
        outcome = Outcome(f"⚠️ A step failed and I will retry shortly: {message}")
    try:
        await run.status.finish(outcome, run.figures, state="failed" if final else "retrying")
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


def _figures(result: AgentResult, judgement: JudgeVerdict | None = None) -> RunFigures:
    """The run's figures; the judge's tokens and cost count in them (it is part of what the run cost)."""
    usage = dict(result.usage)
    for key, value in (judgement.usage if judgement else {}).items():
        usage[key] = usage.get(key, 0) + value
    return RunFigures(turns=result.turns,
                      input_tokens=usage.get("input_tokens", 0) + usage.get("cache_creation_input_tokens", 0)
                      + usage.get("cache_read_input_tokens", 0),
                      output_tokens=usage.get("output_tokens", 0),
                      cache_read_tokens=usage.get("cache_read_input_tokens", 0),
                      cost_usd=result.cost_usd + (judgement.cost_usd if judgement else 0.0),
                      seconds=result.duration_s, judge_cost_usd=judgement.cost_usd if judgement else 0.0,
                      fallback=result.fallback)
