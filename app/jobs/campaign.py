"""Fleet campaigns (CONTRACT.md section 7): the campaign issue's jobs.

    start (label, `honk campaign start`, Slack) -> read the issue's block -> resolve the repositories (the
        installation's list, the filters, `has_file` on each tree, the requester's write access on each)
        -> the campaign and its targets, one commit -> the plan comment
    `@honk rollout | stop | update | retry` -> change the campaign's rows (and cancel jobs for a stop)
    bookkeeping (`campaign_sync`: after each target, on each webhook about a campaign pull request, after each
        command) -> record the news -> fill free slots, roll out, stop at the budget -> edit the status table

Every change to what runs goes through `CampaignStore`, in one transaction with the jobs it makes, so that a
redelivered webhook, a retried job or a killed worker never loses a target nor runs one twice. Only the
bookkeeping job writes the table, one at a time per campaign.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from githubkit.exception import GitHubException

from app.github.client import GitHubApp, Repo, can_write
from app.jobs import campaign_report as say
from app.jobs.campaign_spec import CampaignSpec, CampaignSpecError, Candidate, matching_path, parse_campaign, preselect
from app.jobs.steps import reaction_target
from app.policy import PolicyError, current_policy
from app.queue.campaigns import Campaign, CampaignStore, Target
from app.queue.context import JobContext, JobFailed
from app.queue.requests import JobKind, JobRequest

log = logging.getLogger("honk.campaign")

LOOKUPS_AT_ONCE = 8  # GitHub requests in flight while resolving targets (trees, permissions)
# The status table is edited at most this often while nothing but progress changes: every edit is a content-creating
# request, which GitHub limits to 500 an hour per installation, and a campaign's pull requests need them more.
TABLE_EVERY = 10.0


# ------------------------------------------------------------------------------------------ the campaign issue


async def campaign(ctx: JobContext, app: GitHubApp) -> dict[str, Any]:
    """A person's request on a campaign issue (authorised as a writer of its repository by the registry)."""
    job = ctx.job
    async with await app.repo(job.installation_id, job.repo) as repo:
        target = reaction_target(job.payload)
        if target is not None:
            try:
                await repo.react(*target)
            except GitHubException as exc:
                log.warning("cannot react to the request: %s", exc)
        store = CampaignStore(ctx.queue)
        if job.payload.get("type") == "campaign_command":
            return await _command(ctx, app, repo, store, job.payload.get("command", ""))
        return await _start(ctx, app, repo, store)


async def _start(ctx: JobContext, app: GitHubApp, repo: Repo, store: CampaignStore) -> dict[str, Any]:
    job = ctx.job
    existing = await asyncio.to_thread(store.by_issue, job.repo, job.number)
    if existing is not None:
        # A second label, a redelivery or a retried start: the campaign stands; say where to look.
        await asyncio.to_thread(store.sync, existing, delay=0.0)
        return {"outcome": "exists", "campaign": existing.id}
    issue = await repo.issue(job.number)  # the body as it is now, not as the delivery had it
    try:
        request = parse_campaign(issue.get("body"))
    except CampaignSpecError as exc:
        await repo.comment(job.number, _refusal(str(exc), ctx))
        await ctx.audit.record("campaign.invalid", error=str(exc), key=exc.key, line=exc.line)
        return {"outcome": "invalid_spec", "detail": str(exc)}
    author = (issue.get("user") or {}).get("login") or ""
    identity = await app.identity(job.installation_id)
    if author not in (job.requester, identity.bot_login) and not can_write(await repo.permission(author)):
        # The body is what every repository's run is told to do: it must be a writer's word, not data.
        detail = (f"the issue was written by @{author}, who cannot write to {job.repo}; a campaign's task must be "
                  "written by someone with write access. Open the campaign in an issue of your own.")
        await repo.comment(job.number, _refusal(detail, ctx))
        return {"outcome": "untrusted_task", "detail": detail}

    spec = request.spec
    operator = job.payload.get("operator") is True  # `honk campaign start` without --requester
    resolved = await resolve(app, job.installation_id or 0, spec, None if operator else job.requester or "")
    await ctx.audit.record("campaign.resolved", targets=resolved.targets, skipped=resolved.skipped,
                           filtered=resolved.filtered, github_lookups=resolved.lookups)
    if not resolved.targets:
        detail = "no repository of this installation matches the campaign's selector" + (
            f" ({len(resolved.skipped)} skipped: " + "; ".join(f"`{r}` {why}" for r, why in resolved.skipped[:10])
            + ")" if resolved.skipped else "")
        await repo.comment(job.number, _refusal(detail, ctx))
        return {"outcome": "no_targets", "skipped": resolved.skipped}
    branch_prefix = ctx.settings.honk_branch_prefix
    title = (issue.get("title") or f"Campaign in {job.repo}#{job.number}").strip()
    made, created = await asyncio.to_thread(
        store.create, repo=job.repo, number=job.number or 0, installation_id=job.installation_id or 0,
        requester=job.requester or "", title=title, task=request.task,
        spec=spec.to_dict() | {"sender": _sender(job.payload), "operator": operator}, budget_usd=_budget(ctx, spec),
        targets=resolved.targets, canaries=spec.canary, skipped=resolved.skipped)
    branch = say.campaign_branch(branch_prefix, made.id, made.title)
    await _plan_comment(ctx, repo, made, branch, resolved.filtered)
    await ctx.audit.record("campaign.started" if created else "campaign.exists", campaign=made.id,
                           targets=len(resolved.targets), skipped=len(resolved.skipped), branch=branch)
    return {"outcome": "started" if created else "exists", "campaign": made.id, "targets": len(resolved.targets),
            "skipped": len(resolved.skipped)}


async def _plan_comment(ctx: JobContext, repo: Repo, made: Campaign, branch: str, filtered: int) -> None:
    """The plan, once: a retried start finds the comment it wrote."""
    marker = say.PLAN_MARKER.format(id=made.id)
    if any(marker in (c.get("body") or "") for c in await repo.issue_comments(made.number)):
        return
    targets = await asyncio.to_thread(CampaignStore(ctx.queue).targets, made.id)
    shown = Campaign(**{**made.__dict__, "spec": made.spec | {"branch": branch}})
    await repo.comment(made.number, say.plan(shown, targets, filtered, _dashboard(ctx, made.id)))


async def _command(ctx: JobContext, app: GitHubApp, repo: Repo, store: CampaignStore, command: str
                   ) -> dict[str, Any]:
    job = ctx.job
    made = await asyncio.to_thread(store.by_issue, job.repo, job.number)
    if made is None:
        label = ctx.settings.honk_campaign_label
        await repo.comment(job.number, f"There is no campaign on this issue yet. Label it `{label}` to start one.")
        return {"outcome": "no_campaign"}
    who = job.requester
    if command == "rollout":
        rolled = await asyncio.to_thread(store.rollout, made.id)
        if rolled is None:
            await repo.comment(job.number, f"Nothing to roll out: campaign #{made.id} is {_state_words(made.state)}.")
            return {"outcome": "not_in_canary", "campaign": made.id, "state": made.state}
        await repo.comment(job.number, f"🚀 Rolling out campaign #{made.id} to the rest of its repositories, as @{who} "
                                       "asked.")
        return {"outcome": "rollout", "campaign": made.id}
    if command == "stop":
        stopped = await asyncio.to_thread(store.stop, made.id, who or "someone")
        if stopped.already:
            await repo.comment(job.number, f"Campaign #{made.id} is already {_state_words(made.state)}.")
            return {"outcome": "not_running", "campaign": made.id}
        for job_id in stopped.cancel:
            await asyncio.to_thread(ctx.queue.cancel, job_id)
        await repo.comment(job.number, f"🛑 Stopped campaign #{made.id} as @{who} asked: no new pull request will be "
                                       f"opened, {len(stopped.cancel)} running or queued job(s) cancelled. The open "
                                       "pull requests stay open. `@honk retry` resumes it.")
        return {"outcome": "stopped", "campaign": made.id, "cancelled": stopped.cancel}
    if command == "retry":
        # The block is read again for its budget: raising `budget_usd` then `@honk retry` goes on past the old one.
        try:
            budget = _budget(ctx, parse_campaign((await repo.issue(made.number)).get("body")).spec)
        except CampaignSpecError:
            budget = None  # the block broke since: the campaign keeps its budget
        again = await asyncio.to_thread(store.retry, made.id, budget_usd=budget)
        words = (f"🔁 Retrying {len(again)} repositories of campaign #{made.id}." if again
                 else f"Campaign #{made.id} has no failed or stopped repository to retry.")
        await repo.comment(job.number, words)
        return {"outcome": "retried" if again else "nothing_to_retry", "campaign": made.id,
                "targets": [t.repo for t in again]}
    if command == "update":
        return await _update(ctx, repo, store, made)
    raise JobFailed(f"unknown campaign command {command!r}")


async def _update(ctx: JobContext, repo: Repo, store: CampaignStore, made: Campaign) -> dict[str, Any]:
    issue = await repo.issue(made.number)
    try:
        request = parse_campaign(issue.get("body"))
    except CampaignSpecError as exc:
        await repo.comment(made.number, f"❌ I cannot update campaign #{made.id}: {exc}")
        return {"outcome": "invalid_spec", "detail": str(exc)}
    if request.task == made.task:
        await repo.comment(made.number, f"The task of campaign #{made.id} has not changed since it started, so there "
                                        "is nothing to update. Edit the issue's text first.")
        return {"outcome": "unchanged", "campaign": made.id}
    again = await asyncio.to_thread(store.update, made.id, request.task)
    await repo.comment(made.number, f"🔁 The task changed: reapplying it to {len(again)} open pull request(s) of "
                                    f"campaign #{made.id} as follow-up commits; repositories not reached yet get the "
                                    "new task. (The selector is read once, at the start: a campaign keeps its "
                                    "repositories.)")
    return {"outcome": "updating", "campaign": made.id, "targets": [t.repo for t in again]}


# ------------------------------------------------------------------------------------------ bookkeeping


async def campaign_sync(ctx: JobContext) -> dict[str, Any]:
    """Record news of the campaign's pull requests, fill its free slots, roll out or stop as its rules say, and
    bring its table up to date. Needs nobody's authority: it acts only within a campaign a writer started."""
    job = ctx.job
    store = CampaignStore(ctx.queue)
    absorbed = await asyncio.to_thread(ctx.queue.absorb, job.id, ctx.lease)
    made = await asyncio.to_thread(store.get, int(job.payload.get("campaign_id") or 0))
    if made is None:
        return {"outcome": "no_campaign"}
    app = GitHubApp.for_settings(ctx.settings)
    payloads = [job.payload, *(j.payload for j in absorbed)]
    news = [p for p in payloads if p.get("news")]
    recorded = [await _record(app, store, made, j) for j in _latest_per_pull(news)]
    before = made.state
    advanced = await asyncio.to_thread(store.advance, made.id, target_job)
    # What the repositories' own jobs changed (their last one finished it, spent its budget) is said here too.
    told = [*(word for p in payloads for word in p.get("announce") or []), *advanced.announcements()]
    for job_id in [*(j for p in payloads for j in p.get("cancel") or []), *advanced.cancel]:
        await asyncio.to_thread(ctx.queue.cancel, int(job_id))
    made = await asyncio.to_thread(store.get, made.id) or made
    targets = await asyncio.to_thread(store.targets, made.id)
    wait = await _table_wait(store, made)
    later = wait > 0 and made.state == before and not told and not any(p.get("table_now") for p in payloads)
    if later:
        # Only progress changed, and the table was edited moments ago: one later run brings it up to date (runs
        # queued meanwhile fold into it).
        await asyncio.to_thread(store.sync, made, delay=wait)
    else:
        async with await app.repo(made.installation_id, made.repo) as repo:
            await _announce(repo, made, targets, told)
            await _show_table(ctx, store, repo, made, targets)
    await ctx.audit.record("campaign.synced", campaign=made.id, state=made.state, news=len(news),
                           recorded=sum(recorded), queued=[t.repo for t in advanced.queued],
                           absorbed=[j.id for j in absorbed], table_in_seconds=round(wait, 1) if later else 0)
    return {"outcome": "synced", "campaign": made.id, "state": made.state, "queued": len(advanced.queued)}


async def _announce(repo: Repo, made: Campaign, targets: list[Target], told: list[str]) -> None:
    """A comment for each turn the campaign took: rolled out by itself, stopped at its budget, done."""
    if "rolled_out" in told:
        await repo.comment(made.number, f"🚀 Every canary of campaign #{made.id} is green: rolling out to the rest "
                                        "(`auto_rollout`).")
    if "budget" in told:
        await repo.comment(made.number, f"💸 Campaign #{made.id} stopped: {made.note}. No new pull request will be "
                                        "opened; the open ones stay open. Raise `budget_usd` in the block and "
                                        "comment `@honk retry` to go on.")
    if "finished" in told and made.state == "done":
        await repo.comment(made.number, f"🏁 Campaign #{made.id} is done: "
                                        f"{say.summary(say.figures(made, targets, _now()), made)}.")


async def _record(app: GitHubApp, store: CampaignStore, made: Campaign, news: dict[str, Any]) -> bool:
    """One piece of news, checked against GitHub where the webhook alone cannot say: a head is green only when
    every check run on it has completed without failing."""
    repo_name, number = _repo_of(news), int(news.get("pull_number") or 0)
    head = news.get("head_sha")
    kind = news.get("news")
    if kind == "checks" and head:
        async with await app.repo(made.installation_id, repo_name) as repo:
            runs = await repo.check_runs_for_ref(head)
        checks = _checks_of(runs)
        return await asyncio.to_thread(store.track, made.id, repo_name, number, head_sha=head, checks=checks)
    if kind == "review":
        return await asyncio.to_thread(store.track, made.id, repo_name, number, review=news.get("review"))
    if kind in ("merged", "closed"):
        return await asyncio.to_thread(store.track, made.id, repo_name, number, pull_state=kind)
    return False


def _checks_of(runs: list[dict[str, Any]]) -> str:
    """red when any check failed, green when all have completed and none failed, else pending."""
    if any(r.get("conclusion") in ("failure", "timed_out", "cancelled", "action_required", "startup_failure")
           for r in runs):
        return "red"
    if runs and all(r.get("status") == "completed" for r in runs):
        return "green"
    return "pending"


def _latest_per_pull(news: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A burst of news, each pull request's checks asked of GitHub once (reviews and closings all count)."""
    seen: set[tuple[str, int, str]] = set()
    kept = []
    for item in reversed(news):
        key = (_repo_of(item), int(item.get("pull_number") or 0), str(item.get("news")))
        if item.get("news") == "checks":
            if key in seen:
                continue
            seen.add(key)
        kept.append(item)
    return list(reversed(kept))


def _repo_of(news: dict[str, Any]) -> str:
    return str(news.get("target_repo") or "")


async def _show_table(ctx: JobContext, store: CampaignStore, repo: Repo, made: Campaign, targets: list[Target]
                      ) -> None:
    body = say.table(made, targets, say.figures(made, targets, _now()), _dashboard(ctx, made.id))
    comment_id = made.table_comment_id
    if comment_id is None:
        marker = say.TABLE_MARKER.format(id=made.id)
        found = [c for c in await repo.issue_comments(made.number) if marker in (c.get("body") or "")]
        comment_id = found[0]["id"] if found else (await repo.comment(made.number, body))["id"]
        if not found:
            await asyncio.to_thread(store.table_edited, made.id, comment_id)
            return
    await repo.edit_comment(comment_id, body)
    await asyncio.to_thread(store.table_edited, made.id, comment_id)


async def _table_wait(store: CampaignStore, made: Campaign) -> float:
    """Seconds until the table may be edited again (0: now)."""
    if made.table_edited_at is None:
        return 0.0
    since = (await asyncio.to_thread(store.now) - made.table_edited_at).total_seconds()
    return max(0.0, TABLE_EVERY - since)


def target_job(made: Campaign, target: Target) -> JobRequest:
    """The job that runs one repository of a campaign, as the campaign's requester."""
    sender = made.spec.get("sender") or {}
    return JobRequest(kind=JobKind.CAMPAIGN_TARGET, repo=target.repo, number=None, requester=made.requester,
                      installation_id=made.installation_id,
                      trigger={"type": "campaign_target", "campaign_id": made.id, "target": target.repo,
                               "run": target.runs, "sender": sender, "operator": made.spec.get("operator") is True})


# ------------------------------------------------------------------------------------------ resolving


@dataclass
class Resolution:
    targets: list[str]
    skipped: list[tuple[str, str]]
    filtered: int  # repositories of the installation that did not match (`repos: all` only)
    lookups: int  # GitHub requests made to resolve


async def resolve(app: GitHubApp, installation_id: int, spec: CampaignSpec, requester: str | None) -> Resolution:
    """The campaign's repositories: the installation's list (one request per 100), the selector's filters, then
    for each remaining repository its tree for `has_file` (one request each, no contents calls) and the
    requester's permission (one each; None: the operator's campaign, no person to check). A repository where the
    requester cannot write is skipped, saying so."""
    installed = await app.installation_repositories(installation_id)
    lookups = max(1, -(-len(installed) // 100))
    kept, skipped, filtered = preselect(spec, [Candidate.from_github(r) for r in installed])
    limit = asyncio.Semaphore(LOOKUPS_AT_ONCE)

    async def look(candidate: Candidate) -> str | None:
        """None when the repository is a target; else why it is not ("" when silently filtered out)."""
        nonlocal lookups
        async with limit, await app.repo(installation_id, candidate.full_name) as repo:
            if spec.has_file:
                lookups += 1
                try:
                    paths, _ = await repo.tree_paths(candidate.default_branch)
                except GitHubException as exc:
                    return f"its files could not be listed ({_short(exc)})"
                if matching_path(spec.has_file, paths) is None:
                    return f"has no file matching `{spec.has_file}`" if not spec.selects_all else ""
            if requester is None:
                return None
            lookups += 1
            role = await repo.permission(requester)
            if not can_write(role):
                return f"@{requester} cannot write there ({role} access)"
            return None

    reasons = await asyncio.gather(*(look(c) for c in kept))
    targets = []
    for candidate, reason in zip(kept, reasons, strict=True):
        if reason is None:
            targets.append(candidate.full_name)
        elif reason:
            skipped.append((candidate.full_name, reason))
        else:
            filtered += 1
    return Resolution(targets, skipped, filtered, lookups)


def _budget(ctx: JobContext, spec: CampaignSpec) -> float | None:
    """The campaign's own `budget_usd`, else the operator's policy default (`campaign_budget_usd`)."""
    if spec.budget_usd is not None:
        return spec.budget_usd
    try:
        policy = current_policy(ctx.settings.honk_policy_file)
    except PolicyError:
        return None  # the spending gate refuses every target's run until it is fixed, and says so
    return policy.campaign_budget_usd if policy else None


def _refusal(detail: str, ctx: JobContext) -> str:
    return (f"❌ I cannot start this campaign: {detail}\n\nNothing has started. Fix the issue and label it "
            f"`{ctx.settings.honk_campaign_label}` again.")


def _sender(payload: dict[str, Any]) -> dict[str, Any]:
    sender = payload.get("sender") or {}
    return {k: sender[k] for k in ("login", "id", "type") if k in sender}


def _dashboard(ctx: JobContext, campaign_id: int) -> str | None:
    base = ctx.settings.honk_public_url
    return f"{base}/campaigns/{campaign_id}" if base else None


def _state_words(state: str) -> str:
    return {"canary": "running its canaries", "rollout": "rolling out", "stopped": "stopped",
            "budget": "stopped at its budget", "done": "done"}.get(state, state)


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
