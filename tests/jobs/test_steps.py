"""The shared steps of every job kind (app/jobs/steps.py), one at a time: GitHub at the HTTP boundary (respx),
real git for the workspace steps."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.agent import AgentResult
from app.audit import MemoryAudit
from app.checkout.verify import Verification
from app.checkout.workspace import GitError, Mirror, Workspace
from app.github.client import AppIdentity, GitHubApp, GitHubRetry
from app.jobs import report, steps
from app.jobs.repo_config import parse_repo_config
from app.jobs.steps import Attempt, Run, StatusComment
from app.queue.context import JobContext, JobFailed
from app.queue.models import Job
from app.settings import Settings
from tests.support import app_private_key

API = "https://github.steps.test/api/v3"
REPO = "acme/widgets"
IDENTITY = AppIdentity(id=7, slug="honk-test", name="Honk test", bot_id=99)


@pytest.fixture(scope="module")
def key() -> str:
    return app_private_key()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], key: str) -> Settings:
    return make_settings(github_app_id=7, github_private_key=key, github_api_url=API,
                         honk_public_url="https://honk.example.org")


class Issue:
    """One issue's comments and reactions as GitHub keeps them, behind respx routes."""

    def __init__(self, router: respx.MockRouter, number: int) -> None:
        self.comments: list[dict[str, Any]] = []
        self.reactions: list[tuple[str, int]] = []
        self.refuse_reactions_on: set[int] = set()
        base = f"/repos/{REPO}"
        router.get(f"{base}/issues/{number}/comments").mock(side_effect=self._list)
        router.post(f"{base}/issues/{number}/comments").mock(side_effect=self._post)
        router.patch(url__regex=rf"{base}/issues/comments/(?P<id>\d+)$").mock(side_effect=self._edit)
        router.post(url__regex=rf"{base}/(?P<kind>issues|issues/comments|pulls/comments)/(?P<id>\d+)/reactions$"
                    ).mock(side_effect=self._react)

    def _list(self, request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        return httpx.Response(200, json=self.comments if page == 1 else [])

    def _post(self, request: httpx.Request) -> httpx.Response:
        comment = {"id": 1000 + len(self.comments), "body": json.loads(request.content)["body"],
                   "user": {"login": IDENTITY.bot_login}}
        self.comments.append(comment)
        return httpx.Response(201, json=comment)

    def _edit(self, request: httpx.Request, id: str) -> httpx.Response:
        [comment] = [c for c in self.comments if c["id"] == int(id)]
        comment["body"] = json.loads(request.content)["body"]
        return httpx.Response(200, json=comment)

    def _react(self, request: httpx.Request, kind: str, id: str) -> httpx.Response:
        if int(id) in self.refuse_reactions_on:
            return httpx.Response(403, json={"message": "Resource not accessible by integration"})
        self.reactions.append((kind, int(id)))
        return httpx.Response(201, json={"content": "eyes"})


@pytest.fixture
def issue() -> Iterator[Issue]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        router.post("/app/installations/42/access_tokens").mock(
            return_value=httpx.Response(201, json={"token": "ghs_steps", "expires_at": expires}))
        yield Issue(router, 7)


def job(**fields: Any) -> Job:
    values: dict[str, Any] = {"id": 31, "kind": "resolve_issue", "subject": f"{REPO}#7", "repo": REPO, "number": 7,
                              "installation_id": 42, "requester": "alice", "attempts": 1, "max_attempts": 5,
                              "payload": {"type": "label", "issue": {"number": 7, "title": "Spin"},
                                          "sender": {"login": "alice", "id": 5}},
                              "created_at": datetime.now(UTC).replace(tzinfo=None)}
    return Job(**(values | fields))


async def open_run(settings: Settings, the_job: Job) -> tuple[Run, MemoryAudit]:
    audit = MemoryAudit()
    ctx = JobContext(job=the_job, settings=settings, queue=None, audit=audit)  # type: ignore[arg-type]
    app = GitHubApp(settings, retry=GitHubRetry(base_seconds=0.01))
    repo = await app.repo(42, REPO)
    status = StatusComment(repo, the_job.number or 0, report.JobLink(the_job.id, settings.honk_public_url),
                           IDENTITY.bot_login)
    return Run(ctx=ctx, repo=repo, identity=IDENTITY, status=status), audit


def test_what_gets_the_eyes() -> None:
    assert steps.reaction_target({"type": "label", "issue": {"number": 7}}) == ("issue", 7)
    assert steps.reaction_target({"type": "issue_comment", "comment": {"id": 11}, "issue": {"number": 7}}) == (
        "comment", 11)
    assert steps.reaction_target({"type": "issue_comment", "issue": {"number": 7}}) == ("issue", 7)
    assert steps.reaction_target({"type": "pr_comment", "comment": {"id": 12}}) == ("comment", 12)
    assert steps.reaction_target({"type": "command", "comment": {"id": 13}}) == ("comment", 13)
    assert steps.reaction_target({"type": "review_comment", "comment": {"id": 14}}) == ("review_comment", 14)
    assert steps.reaction_target({"type": "review", "review": {"id": 15}}) is None  # reviews have no reactions
    assert steps.reaction_target({"type": "label", "issue": {"number": "7"}}) is None  # never trust the shape


def test_acknowledge_reacts_to_every_request_then_says_queued(settings: Settings, issue: Issue) -> None:
    issue.refuse_reactions_on = {12}  # a refused 👀 must not stop the work

    async def scenario() -> None:
        run, _ = await open_run(settings, job())
        await steps.acknowledge(run, [{"type": "label", "issue": {"number": 7}},
                                      {"type": "pr_comment", "comment": {"id": 12}},
                                      {"type": "review", "review": {"id": 3}},
                                      {"type": "review_comment", "comment": {"id": 14}}])

    asyncio.run(scenario())
    assert issue.reactions == [("issues", 7), ("pulls/comments", 14)]
    [status] = issue.comments
    assert status["body"].startswith("👀 On it: queued as [job #31](https://honk.example.org/jobs/31)")
    assert report.job_of(status["body"]) == 31


def test_a_retry_edits_its_own_status_comment_and_the_notes_come_under_the_outcome(settings: Settings,
                                                                                 issue: Issue) -> None:
    issue.comments.append({"id": 500, "body": report.queued(report.JobLink(31, None)),
                           "user": {"login": IDENTITY.bot_login}})
    issue.comments.append({"id": 501, "body": report.queued(report.JobLink(30, None)),  # another job's
                           "user": {"login": IDENTITY.bot_login}})

    async def scenario() -> None:
        run, _ = await open_run(settings, job())
        run.status.notes.append("🧱 Setup's network filter blocked `evil.example:443`.")
        await run.status.finish(report.Outcome("✅ Done", ["details"]), None)

    asyncio.run(scenario())
    assert len(issue.comments) == 2  # edited in place, nothing new posted
    body = issue.comments[0]["body"]
    assert body.index("✅ Done") < body.index("details") < body.index("blocked `evil.example:443`")
    assert issue.comments[1]["body"] == report.queued(report.JobLink(30, None))


@pytest.mark.parametrize(("error", "attempts", "said"), [
    (JobFailed("the setup failed"), 1, "❌ I could not finish this: the setup failed"),
    (JobFailed("GitHub is down", retry=True), 1, "⚠️ A step failed and I will retry shortly: GitHub is down"),
    (JobFailed("GitHub is down", retry=True), 5, "❌ I could not finish this: GitHub is down"),
    (GitError("git push failed"), 2, "⚠️ A step failed and I will retry shortly: GitError: git push failed"),
])
def test_failures_are_said_in_the_status_comment_and_raised(settings: Settings, issue: Issue, error: Exception,
                                                            attempts: int, said: str) -> None:
    async def scenario() -> None:
        run, _ = await open_run(settings, job(attempts=attempts))
        async with steps.failures_reported(run):
            raise error

    with pytest.raises(type(error)):
        asyncio.run(scenario())
    [status] = issue.comments
    assert status["body"].startswith(said), status["body"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=Octo", "-c", "user.email=octo@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    (seed / "widgets.py").write_text("def spin():\n    return 'backwards'\n")
    git(seed, "add", ".")
    git(seed, "commit", "-qm", "init")
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(tmp_path / "upstream.git"))
    return tmp_path / "upstream.git"


def attempt(changed: list[str]) -> Attempt:
    result = AgentResult(stop="completed", summary="Spin forwards", turns=1, usage={}, cost_usd=0.0, duration_s=0.0)
    return Attempt(result, changed, Verification("not_run", None, "no test command"))


@pytest.mark.parametrize("catch_up", [False, True])
def test_commit_and_push_catches_up_with_a_moved_branch_only_when_asked(settings: Settings, issue: Issue,
                                                                       upstream: Path, tmp_path: Path,
                                                                       catch_up: bool) -> None:
    async def scenario() -> str:
        run, audit = await open_run(settings, job())
        mirror = Mirror.for_url(tmp_path / "data", str(upstream))
        await mirror.fetch(None)
        workspace = await Workspace.create(mirror, tmp_path / "job-31", branch="main", start="main")
        # A person pushes to the branch while Honk works.
        other = tmp_path / "person"
        git(tmp_path, "clone", "-q", str(upstream), str(other))
        (other / "NOTES.md").write_text("mine\n")
        git(other, "add", ".")
        git(other, "commit", "-qm", "human notes")
        git(other, "push", "-q", "origin", "main")
        (workspace.path / "widgets.py").write_text("def spin():\n    return 'forwards'\n")
        changed = await workspace.stage_all()
        pushed = await steps.commit_and_push(run, workspace, None, attempt(changed),  # type: ignore[arg-type]
                                             title="Spin forwards", summary="It spun backwards.", catch_up=catch_up)
        assert pushed.notes == ["The branch had new commits; my change is on top of them."]
        [event] = audit.of_kind("git.pushed")
        assert event["commit"] == pushed.sha and event["files"] == ["widgets.py"] and "forwards" in event["diff"]
        return pushed.sha

    if not catch_up:
        with pytest.raises(GitError, match="push"):
            asyncio.run(scenario())
        assert git(upstream, "log", "--format=%s", "main").splitlines() == ["human notes", "init"]
        return
    sha = asyncio.run(scenario())
    assert git(upstream, "log", "--format=%s", "main").splitlines() == ["Spin forwards", "human notes", "init"]
    assert git(upstream, "rev-parse", "main").strip() == sha
    message = git(upstream, "log", "-1", "--format=%an|%B", "main")
    assert message.startswith("honk-test[bot]|Spin forwards") and "Co-authored-by: alice <5+alice@" in message


def test_the_guard_refuses_with_every_reason_and_pushes_nothing(settings: Settings, issue: Issue, upstream: Path,
                                                               tmp_path: Path) -> None:
    async def scenario() -> MemoryAudit:
        run, audit = await open_run(settings, job())
        run.config = parse_repo_config("protected_paths: ['widgets.py']")
        mirror = Mirror.for_url(tmp_path / "data", str(upstream))
        await mirror.fetch(None)
        workspace = await Workspace.create(mirror, tmp_path / "job-31", branch="honk/issue-7", start="main")
        (workspace.path / "widgets.py").write_text("changed\n")
        (workspace.path / ".github" / "workflows").mkdir(parents=True)
        (workspace.path / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
        await workspace.stage_all()
        with pytest.raises(JobFailed) as refused:
            await steps.guard_change(run, workspace)
        text = str(refused.value)
        assert "`widgets.py` matches `widgets.py`" in text and ".github/workflows/ci.yml" in text
        assert "Nothing was pushed" in text
        return audit

    audit = asyncio.run(scenario())
    assert len(audit.of_kind("guard.refused")[0]["refusals"]) == 2
    assert git(upstream, "branch", "--list", "--format=%(refname:short)").split() == ["main"]


def test_stopped_early_says_why_in_words() -> None:
    def result(stop: str, **extra: Any) -> AgentResult:
        return AgentResult(stop=stop, summary="", turns=3, usage={}, cost_usd=0.0, duration_s=0.0,
                           **extra)  # type: ignore[arg-type]

    assert steps.stopped_early(result("completed")) is None
    assert steps.stopped_early(result("budget", budget="cost")) == (
        "the run stopped at its cost budget; the change may be incomplete.")
    assert "declined to continue (cyber)" in (steps.stopped_early(result("refusal", refusal_category="cyber")) or "")
    assert steps.stopped_early(result("api_error", error="529 overloaded")) == (
        "the run ended early (api_error: 529 overloaded).")
