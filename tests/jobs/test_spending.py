"""Spending caps applied to jobs (app/jobs/spending.py and its steps; CONTRACT section 9).

First the gate on its own, against a real database: the start check (a broken policy, a model not allowed, a cap
already reached), admissions and records per call, the judge through the gate. Then end to end, with a real
`honk serve`, the local GitHub and the scripted model: a request over a cap is refused with a status comment that
names the cap and its reset, and a run that reaches a cap stops after that turn, keeps its work and says so."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.agent.judge import JudgeVerdict
from app.jobs.repo_config import RepoConfig, parse_repo_config
from app.jobs.spending import JobSpend, judged, open_gate
from app.policy import resets_on
from app.process import HonkState
from app.queue.context import JobAudit, JobContext, JobFailed
from app.queue.db import Database
from app.queue.requests import JobKind, JobRequest
from app.queue.spending import Call, SpendCall, Spender, SpendLedger, SpendReservation
from tests.e2e import FIX, REPO, World, serve
from tests.fakes.messages_api import bash, edit, end, reply

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
USAGE = {"input_tokens": 1000, "output_tokens": 100}


@pytest.fixture
def job_context(state: HonkState, tmp_path: Path) -> Callable[..., JobContext]:
    """A queued job's context, with the policy file (if any) written to disk first."""
    deliveries = itertools.count(1)

    def make(policy: str | None = None, repo: str = "acme/widgets", requester: str = "alice",
             **settings: Any) -> JobContext:
        accepted = state.queue.accept_delivery(f"delivery-{next(deliveries)}", "issues", "labeled",
                                               JobRequest(kind=JobKind.RESOLVE_ISSUE, repo=repo, number=7,
                                                          requester=requester, installation_id=42, trigger={}))
        job = state.queue.get(accepted.job_id)
        assert job is not None
        if policy is not None:
            path = tmp_path / "policy.yml"
            path.write_text(policy)
            settings["honk_policy_file"] = path
        return JobContext(job, state.settings.model_copy(update=settings), state.queue,
                          JobAudit(state.queue, job.id))

    return make


def ledger_rows(db: Database) -> list[tuple[str, str, str, float, int | None]]:
    with db.session() as session:
        return [(r.kind, r.model, r.provider, round(r.cost_usd, 6), r.job_id)
                for r in session.scalars(select(SpendCall).order_by(SpendCall.id))]


def test_without_a_policy_every_call_is_recorded_and_nothing_is_capped(job_context: Callable[..., JobContext],
                                                                        state: HonkState) -> None:
    ctx = job_context(honk_judge_provider="bedrock")

    async def scenario() -> JudgeVerdict:
        async with await open_gate(ctx, RepoConfig()) as gate:
            assert await gate.admit("any-model-at-all") is None
            await gate.spent("claude-opus-5-5", USAGE, 0.25)
            verdict = JudgeVerdict("approve", "fine", "claude-opus-5-5", 0.05, USAGE, False)

            async def review() -> JudgeVerdict:
                return verdict
            return await judged(gate, "claude-opus-5-5", review)

    assert asyncio.run(scenario()).decision == "approve"
    assert ledger_rows(state.db) == [("agent", "claude-opus-5-5", "anthropic", 0.25, ctx.job.id),
                                     ("judge", "claude-opus-5-5", "bedrock", 0.05, ctx.job.id)]


def test_a_job_over_a_cap_is_refused_before_it_starts(job_context: Callable[..., JobContext],
                                                      state: HonkState) -> None:
    policy = "caps:\n  repository: {acme/widgets: 100}\n  default: {requester: 500}\n"
    ledger = SpendLedger(state.db)
    ledger.record(Spender(42, "acme/widgets", "bob"), Call("claude-opus-5-5", "anthropic", "agent", 100.02))
    month = ledger.month()
    ctx = job_context(policy)
    with pytest.raises(JobFailed) as refused:
        asyncio.run(open_gate(ctx, RepoConfig()))
    assert str(refused.value) == (
        f"a monthly spending cap is reached: the repository acme/widgets has spent $100.02 of its $100 monthly cap; "
        f"it resets on {resets_on(month).isoformat()} (UTC). I did not start the work.")
    assert refused.value.retry is False
    [event] = [e for e in state.queue.events(ctx.job.id) if e.kind == "spend.refused"]
    assert event.data["cap"] == "repository" and event.data["cap_usd"] == 100
    # Another repository of the organization is not under that cap.
    asyncio.run(open_gate(job_context(policy, repo="acme/gadgets"), RepoConfig()))


def test_a_model_the_policy_does_not_allow_is_refused_with_where_it_came_from(
        job_context: Callable[..., JobContext]) -> None:
    policy = "allowed_models: [claude-opus-5-5, claude-sonnet-4-5]\n"
    ctx = job_context(policy)
    with pytest.raises(JobFailed) as by_repo:
        asyncio.run(open_gate(ctx, parse_repo_config("model: claude-haiku-4-5\n")))
    assert str(by_repo.value) == (
        "the model `claude-haiku-4-5` (`model:` in `.github/honk.yml`) is not allowed by this Honk's spending policy, "
        "which allows `claude-opus-5-5`, `claude-sonnet-4-5`. Choose one of them in `.github/honk.yml` and ask again.")
    with pytest.raises(JobFailed, match=r"the model `claude-haiku-4-5` \(HONK_MODEL\) is not allowed"):
        asyncio.run(open_gate(job_context(policy, honk_model="claude-haiku-4-5"), RepoConfig()))
    with pytest.raises(JobFailed, match=r"the model `claude-haiku-4-5` \(HONK_JUDGE_MODEL\) is not allowed"):
        asyncio.run(open_gate(job_context(policy, honk_judge_model="claude-haiku-4-5"), RepoConfig()))
    # The judge's model matters only when the judge is on; an allowed repository model is fine.
    asyncio.run(open_gate(job_context(policy, honk_judge_model="claude-haiku-4-5", honk_judge=False),
                          parse_repo_config("model: claude-sonnet-4-5\n")))


def test_a_broken_policy_stops_jobs_instead_of_running_them_uncapped(job_context: Callable[..., JobContext],
                                                                     state: HonkState, tmp_path: Path) -> None:
    ctx = job_context("caps:\n  repository:\n    acme/widgets: lots\n")
    with pytest.raises(JobFailed) as broken:
        asyncio.run(open_gate(ctx, RepoConfig()))
    assert str(broken.value) == ("this Honk's spending policy cannot be read, so I run no model until its operator "
                                 "fixes it (`honk doctor` says what is wrong). Ask again once it is fixed.")
    assert broken.value.retry is True  # the operator may fix it meanwhile
    # What is wrong is for the operator (the file names other organizations' repositories), not for GitHub.
    [event] = [e for e in state.queue.events(ctx.job.id) if e.kind == "spend.policy_broken"]
    assert "`caps.repository.acme/widgets`" in event.data["error"] and "(line 3)" in event.data["error"]
    missing = job_context(honk_policy_file=tmp_path / "gone.yml")
    with pytest.raises(JobFailed, match="spending policy cannot be read"):
        asyncio.run(open_gate(missing, RepoConfig()))
    [event] = [e for e in state.queue.events(missing.job.id) if e.kind == "spend.policy_broken"]
    assert "gone.yml (HONK_POLICY_FILE) does not exist" in event.data["error"]

    # A file that breaks mid-run stops the run at its next call.
    good = job_context("caps: {}\n", requester="bob")

    async def mid_run() -> str | None:
        gate = await open_gate(good, RepoConfig())
        Path(good.settings.honk_policy_file or "").write_text("caps: [\n")
        return await gate.admit("claude-opus-5-5")

    assert "spending policy cannot be read" in (asyncio.run(mid_run()) or "")


def test_a_run_reaching_its_cap_is_stopped_at_the_next_call_and_the_judge_is_not_asked(
        job_context: Callable[..., JobContext], state: HonkState) -> None:
    ctx = job_context("caps:\n  requester: {alice: 1}\nreserve_per_call_usd: 0.25\n")
    asked: list[str] = []

    async def review() -> JudgeVerdict:
        asked.append("judge")
        return JudgeVerdict("approve", "fine", "claude-opus-5-5", 0.1, USAGE, False)

    async def scenario() -> tuple[str | None, str | None, JudgeVerdict]:
        async with await open_gate(ctx, RepoConfig()) as gate:
            assert await gate.admit("claude-opus-5-5") is None
            with state.db.session() as session:  # one reservation, of the configured minimum
                assert session.scalars(select(SpendReservation.amount_usd)).all() == [0.25]
            await gate.spent("claude-opus-5-5", USAGE, 0.6)
            assert await gate.admit("claude-opus-5-5") is None  # $0.60 of $1; reserves $0.60, the dearest so far
            with state.db.session() as session:
                assert session.scalars(select(SpendReservation.amount_usd)).all() == [0.6]
            await gate.spent("claude-opus-5-5", USAGE, 0.5)
            stop = await gate.admit("claude-opus-5-5")
            other = await gate.admit("claude-sonnet-4-5")
            return stop, other, await judged(gate, "claude-opus-5-5", review)

    stop, other, verdict = asyncio.run(scenario())
    assert stop is not None and stop.startswith("@alice has spent $1.10 of their $1 monthly cap; it resets on ")
    assert other == stop
    assert asked == [] and verdict.decision == "undecided" and verdict.reason == f"it was not asked, because {stop}"
    assert [row[3] for row in ledger_rows(state.db)] == [0.6, 0.5]
    with state.db.session() as session:
        assert session.scalars(select(SpendReservation)).all() == []


def test_a_failed_call_gives_its_reservation_back(job_context: Callable[..., JobContext], state: HonkState) -> None:
    ctx = job_context("caps:\n  repository: {acme/widgets: 10}\n")

    async def scenario() -> None:
        gate = JobSpend(ctx)
        async with gate:
            assert await gate.admit("claude-opus-5-5") is None  # and the call fails: no `spent`
        with state.db.session() as session:
            assert session.scalars(select(SpendReservation)).all() == []

    asyncio.run(scenario())


# End to end

POLICY = "caps:\n  repository: {acme/widgets: 100}\nallowed_models: [claude-opus-5-5]\n"


def policy_env(world: World, text: str) -> dict[str, str]:
    path = world.tmp / "policy.yml"
    path.write_text(text)
    return {"HONK_POLICY_FILE": str(path)}


@needs_bwrap
def test_a_request_over_a_cap_is_refused_with_the_cap_and_its_reset(world: World) -> None:
    db = Database(world.env["HONK_DATABASE_URL"])
    db.migrate()
    ledger = SpendLedger(db)
    ledger.record(Spender(1, REPO, "bob"), Call("claude-opus-5-5", "anthropic", "agent", 100.02))
    month = ledger.month()
    db.dispose()
    serve(world, **policy_env(world, POLICY))
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "They should spin forwards.", user="alice")
    world.model.script(*FIX)

    job = world.finished(world.label(issue).json()["job"])
    assert (job["status"], job["attempts"]) == ("failed", 1), world.logs()
    [status] = world.bot_comments(issue)
    assert (f"a monthly spending cap is reached: the repository acme/widgets has spent $100.02 of its $100 monthly "
            f"cap; it resets on {resets_on(month).isoformat()} (UTC). I did not start the work.") in status["body"]
    assert world.model.bodies == [] and world.github.pulls(REPO) == []
    assert list(world.github.branches(REPO)) == ["main"]


@needs_bwrap
def test_a_model_outside_the_policy_is_refused_with_a_clear_message(world: World) -> None:
    world.github.create_repo("acme/gadgets", {"gadget.py": "x = 1\n", ".github/honk.yml": "model: claude-haiku-4-5\n"})
    serve(world, **policy_env(world, POLICY))
    issue = world.github.create_issue("acme/gadgets", "Gadgets", "", user="alice")
    job = world.finished(world.github.deliver("issues", world.github.issues_labeled("acme/gadgets", issue, "honk",
                                                                                    "alice")).json()["job"])
    assert job["status"] == "failed", world.logs()
    [status] = [c for c in world.github.comments("acme/gadgets", issue) if c["user"]["login"] == world.github.bot_login]
    assert ("the model `claude-haiku-4-5` (`model:` in `.github/honk.yml`) is not allowed by this Honk's spending "
            "policy, which allows `claude-opus-5-5`. Choose one of them in `.github/honk.yml` and ask again."
            ) in status["body"]
    assert world.model.bodies == []


@needs_bwrap
def test_a_run_that_reaches_its_cap_stops_after_that_turn_keeps_its_work_and_says_so(world: World) -> None:
    # $1.50 for the repository; the first turn alone costs about $2 (100,000 output tokens at $20 per million).
    serve(world, **policy_env(world, "caps:\n  repository: {acme/widgets: 1.5}\n"))
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "They should spin forwards.", user="alice")
    world.model.script(reply(edit("str_replace", "widgets.py", old_str="backwards", new_str="forwards"),
                             usage={"output_tokens": 100_000}),
                       reply(bash("cat widgets.py")),  # never asked for: the cap stops the run first
                       end("Done."))

    job = world.finished(world.label(issue).json()["job"])
    assert job["status"] == "succeeded", world.logs()
    assert len(world.model.bodies) == 1 and world.model.judge_bodies == []  # one turn; the judge not asked either
    [stop] = [e["data"] for e in job["events"] if e["kind"] == "agent.stop"]
    assert (stop["stop"], stop["budget"], stop["turns"]) == ("budget", "spend_cap", 1)
    assert stop["error"].startswith("the repository acme/widgets has spent $2.0")
    assert "of its $1.50 monthly cap; it resets on " in stop["error"]

    [status] = world.bot_comments(issue)
    body = status["body"]
    assert "(draft)" in body, body
    assert "⚠️ the run stopped at a spending cap: the repository acme/widgets has spent $2.0" in body
    assert "of its $1.50 monthly cap; it resets on" in body and "Its work so far is kept." in body
    workspace = world.tmp / "data" / "workspaces" / f"job-{job['id']}"
    assert f"💾 The work so far is kept on the Honk host in `{workspace.resolve()}`" in body \
        or f"💾 The work so far is kept on the Honk host in `{workspace}`" in body
    assert (workspace / "widgets.py").read_text() == "def spin():\n    return 'forwards'\n"  # kept on disk
    assert "The judge could not decide (it was not asked, because the repository acme/widgets" in body
    [pull] = world.github.pulls(REPO)
    assert pull["draft"] is True and "stopped at a spending cap" in pull["body"]

    # The one call is in the ledger, and the spend page's JSON shows it.
    spend = httpx.get(f"{world.url}/api/spend", params={"by": "repo"}, timeout=10).json()
    [row] = spend["rows"]
    assert row["key"] == REPO and row["calls"] == 1 and row["cost_usd"] > 1.5 and row["cap"] == 1.5
    # The next request is refused before it starts.
    world.model.script(*FIX)
    again = world.github.issue_comment_created(REPO, issue, "@honk try again", "alice")
    second = world.finished(world.github.deliver("issue_comment", again).json()["job"])
    assert second["status"] == "failed" and "a monthly spending cap is reached" in second["error"]
    assert len(world.model.bodies) == 1
