"""What a red CI run on a Honk pull request says, and whether Honk should answer it.

The facts a CI fix needs, each a small function: who pushed the head (Honk fixes only its own commits unasked),
how many CI fixes in a row already sit on the branch (`Honk-Fix: ci` trailers, so the count survives restarts and
needs no table), and what failed: the failing check runs of other Apps on the head, with their output and, for
GitHub Actions, the failed jobs' logs, cut by the same extractors as the `verify` tool.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from githubkit.exception import GitHubException

from app.agent import DataBlock, Task
from app.checkout.extract import extract
from app.checkout.workspace import Mirror, git
from app.github.client import AppIdentity, Repo
from app.jobs import report

log = logging.getLogger("honk.ci")

FAILED = {"failure", "timed_out", "startup_failure"}  # conclusions that are a red CI; cancelled is a person's act
PER_CHECK_CHARS = 3_000  # what the model sees of one failing check, cut by the extractors
MAX_CHECKS = 8  # failing checks read per fix; the rest are named
_ACTIONS_JOB = re.compile(r"/actions/runs/(\d+)/job/(\d+)")
_RECORD, _FIELD = "\x1e", "\x1f"


@dataclass(frozen=True)
class CheckFailure:
    name: str
    app: str  # the App that ran it, e.g. "github-actions"
    url: str | None
    text: str  # what locates the failure, cut to PER_CHECK_CHARS


async def pushed_by_honk(mirror: Mirror, sha: str, identity: AppIdentity) -> bool:
    """Whether Honk committed `sha` (as its bot, the way `steps.commit_and_push` does). A head a person pushed
    is never fixed unasked."""
    out = await git("log", "-1", "--format=%cn%x1f%ce", sha, cwd=mirror.path, check=False)
    name, _, email = out.strip().partition(_FIELD)
    return name == identity.bot_login and email == identity.bot_email


async def fixes_in_a_row(mirror: Mirror, sha: str, identity: AppIdentity, limit: int = 50) -> int:
    """How many of Honk's CI-fix commits end the branch at `sha`: the CI fixes since the last commit that was not
    one (a green run resets it too, since Honk fixes only red heads and a green head gets no fix on top)."""
    out = await git("log", "--first-parent", f"-{limit}", f"--format=%ce{_FIELD}%B{_RECORD}", sha, cwd=mirror.path,
                    check=False)
    count = 0
    for record in out.split(_RECORD):
        email, _, message = record.strip("\n").partition(_FIELD)
        if not email:
            continue
        if email != identity.bot_email or report.CI_FIX_TRAILER not in message:
            break
        count += 1
    return count


async def failing_checks(repo: Repo, sha: str, *, app_id: int | None, runs: frozenset[int] = frozenset()
                         ) -> tuple[list[CheckFailure], list[str]]:
    """The failing check runs on `sha` of every App but Honk, with what locates each failure; and the names of
    those left unread beyond MAX_CHECKS. `runs` are workflow runs the event named, read first."""
    checks = [c for c in await repo.check_runs_for_ref(sha) if c.get("conclusion") in FAILED and not _ours(c, app_id)]
    read, unread = checks[:MAX_CHECKS], [c.get("name") or "?" for c in checks[MAX_CHECKS:]]
    logs = await _actions_logs(repo, read, runs)
    return [_failure(check, logs.get(check.get("id"))) for check in read], unread


def ci_task(*, repo: str, pull: dict[str, Any], sha: str, failures: list[CheckFailure], unread: list[str],
            asked_by: str | None) -> Task:
    """The agent's task for a CI fix. The checks' output is data: a test or a build script in the repository
    prints whatever it likes."""
    who = (f"@{asked_by} (who has write access) asked you to fix it." if asked_by
           else "Honk pushed that commit, so fixing it is part of the same work.")
    lines = [f"The CI checks of pull request #{pull['number']} in {repo} (branch `{pull['head']['ref']}`) failed on "
             f"its head commit {sha[:12]}. {who} Find the cause of each failure and fix it in the code; change a "
             "test or a CI setting only when it is what is wrong. Call verify before you finish, and reply with a "
             "short summary of the cause and the fix.",
             f"The pull request: {pull.get('title') or ''}"]
    if unread:
        lines.append(f"Also failing, not shown here: {', '.join(unread)}.")
    data = [DataBlock(f"check `{f.name}` ({f.app}) on {sha[:12]}", f.text) for f in failures]
    return Task(instruction="\n\n".join(lines), repository=repo, data=data)


def _ours(check: dict[str, Any], app_id: int | None) -> bool:
    """Honk's own check run: its failing must never start a CI fix of itself."""
    app = check.get("app") or {}
    return (app_id is not None and app.get("id") == app_id) or check.get("name") == report.CHECK_NAME


async def _actions_logs(repo: Repo, checks: list[dict[str, Any]], runs: frozenset[int]) -> dict[int, str]:
    """The failed GitHub Actions jobs' logs, by job id (an Actions job's id is its check run's id): each workflow
    run's jobs listed once, then each failed job's log fetched through its redirect."""
    run_ids = set(runs)
    for check in checks:
        found = _ACTIONS_JOB.search(check.get("details_url") or check.get("html_url") or "")
        if found:
            run_ids.add(int(found.group(1)))
    wanted = {c.get("id") for c in checks}
    logs: dict[int, str] = {}
    for run_id in sorted(run_ids):
        try:
            jobs = await repo.workflow_run_jobs(run_id)
        except GitHubException as exc:
            log.warning("cannot list the jobs of workflow run %s: %s", run_id, exc)
            continue
        for job in jobs:
            if job.get("id") in wanted and job.get("conclusion") in FAILED:
                try:
                    logs[job["id"]] = await repo.job_log(job["id"])
                except GitHubException as exc:  # logs expire; the check's own output still says something
                    log.warning("cannot read the log of job %s: %s", job.get("id"), exc)
    return logs


def _failure(check: dict[str, Any], job_log: str | None) -> CheckFailure:
    name = str(check.get("name") or "?")
    output = check.get("output") or {}
    said = "\n\n".join(str(output.get(k)) for k in ("title", "summary", "text") if output.get(k))
    if job_log:
        text = extract(job_log, name).render(PER_CHECK_CHARS - min(len(said), 600) - 2)
        text = (said[:600] + "\n\n" + text) if said else text
    else:
        text = extract(said, name).render(PER_CHECK_CHARS) if said else "(the check gave no output)"
    app = (check.get("app") or {}).get("slug") or "?"
    return CheckFailure(name, str(app), check.get("html_url"), text[:PER_CHECK_CHARS])
