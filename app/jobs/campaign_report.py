"""What a campaign says on GitHub: its plan, its status table (one comment, edited in place), its branch, the
task each repository's run is given, and the line that ties each pull request to the campaign.

The table and the dashboard (app/web/campaigns.py) read the same `figures`.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.agent import Task
from app.policy import usd
from app.queue import campaigns as states
from app.queue.campaigns import Campaign, Target

PLAN_MARKER = "<!-- honk:campaign-plan={id} -->"
TABLE_MARKER = "<!-- honk:campaign-table={id} -->"
COMMENT_LIMIT = 60_000  # GitHub takes 65,536 characters in a comment; the rest of the table is on the dashboard
_PLAN_ROWS = 100  # repositories named in the plan comment; the table and the dashboard have them all


def campaign_branch(prefix: str, campaign_id: int, title: str) -> str:
    """`honk/campaign-7-bump-lodash`: the id makes it the campaign's (webhooks find it by this), the slug readable."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].rstrip("-")
    return f"{prefix}campaign-{campaign_id}" + (f"-{slug}" if slug else "")


def campaign_of_branch(prefix: str, branch: str) -> int | None:
    """The campaign id in a campaign branch's name, or None for any other branch."""
    match = re.match(rf"{re.escape(prefix)}campaign-([1-9][0-9]{{0,17}})(?:-|$)", branch)
    return int(match.group(1)) if match else None


def target_task(campaign: Campaign, repo: str, total: int) -> Task:
    """What one repository's run is asked: the campaign's task, from the campaign issue, written by a writer
    (the campaign does not start otherwise), for this repository only."""
    instruction = (
        f"Apply the change below to {repo}. It is one of {total} repositories of a fleet campaign asked for in "
        f"{campaign.subject} by @{campaign.requester} (who has write access here and there); each repository gets "
        "its own pull request.\n\n"
        "If this repository does not need the change (it does not apply here, or it is already done), change "
        "nothing and say why in one sentence: that is a fine outcome, reported as \"not needed\".\n\n"
        f"The campaign's task:\n\n# {campaign.title}\n\n{campaign.task}")
    return Task(instruction=instruction, repository=repo)


def part_of(campaign: Campaign, issue_url: str, total: int) -> str:
    """The pull request's line tying it to its campaign."""
    return (f"Part of the campaign [{campaign.subject}]({issue_url}): one of {total} pull requests, one per "
            "repository. Review it like any other; `@honk` here asks for changes to this one.")


@dataclass(frozen=True)
class Figures:
    """A campaign's figures, for its table and its dashboard."""

    targets: int  # selected repositories (not skipped)
    skipped: int
    opened: int  # pull requests opened (still open, merged or closed)
    green: int
    approved: int
    merged: int
    failed: int
    not_needed: int
    waiting: int
    active: int  # queued or running
    stopped: int
    cost_usd: float
    wall_seconds: float | None  # from the start to the end (or now)
    median_merge_seconds: float | None  # from a pull request's opening to its merge

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def figures(campaign: Campaign, targets: Sequence[Target], now: datetime) -> Figures:
    count = Counter(t.state for t in targets)
    pulls = [t for t in targets if t.pull_number is not None]
    merge_times = [(t.merged_at - t.opened_at).total_seconds() for t in targets
                   if t.merged_at is not None and t.opened_at is not None]
    end = campaign.finished_at or now
    return Figures(
        targets=len(targets) - count[states.SKIPPED], skipped=count[states.SKIPPED], opened=len(pulls),
        green=sum(1 for t in pulls if t.checks == "green" and t.pull_state != "closed"),
        approved=sum(1 for t in pulls if t.review == "approved"), merged=sum(1 for t in pulls if t.merged),
        failed=count[states.FAILED], not_needed=count[states.NOT_NEEDED], waiting=count[states.WAITING],
        active=count[states.QUEUED] + count[states.RUNNING], stopped=count[states.STOPPED_TARGET],
        cost_usd=round(sum(t.cost_usd for t in targets), 4),
        wall_seconds=max(0.0, (end - campaign.created_at).total_seconds()),
        median_merge_seconds=statistics.median(merge_times) if merge_times else None)


# The plan

def plan(campaign: Campaign, targets: Sequence[Target], filtered: int, dashboard: str | None) -> str:
    chosen = [t for t in targets if t.state != states.SKIPPED]
    skipped = [t for t in targets if t.state == states.SKIPPED]
    canaries = [t for t in chosen if t.canary]
    spec = campaign.spec
    lines = [PLAN_MARKER.format(id=campaign.id),
             f"### 📋 Campaign #{campaign.id}: the plan",
             f"{_count(len(chosen), 'repository', 'repositories')} will get a pull request each, on the branch "
             f"`{spec.get('branch', '')}`, at most {spec.get('concurrency', 5)} at a time."]
    if canaries:
        then = ("the rest follow on their own once every canary's checks are green" if spec.get("auto_rollout")
                else "then a writer's `@honk rollout` here starts the rest")
        lines.append(f"First the canaries, {', '.join(f'`{t.repo}`' for t in canaries)}; {then}.")
    budget = campaign.budget_usd
    if budget is not None:
        lines.append(f"Budget: {usd(budget, cents=True)}; the campaign stops cleanly when it is spent.")
    lines += ["", "| # | Repository | Role |", "|---|---|---|"]
    for place, target in enumerate(chosen[:_PLAN_ROWS], start=1):
        lines.append(f"| {place} | `{target.repo}` | {'canary' if target.canary else 'rollout'} |")
    if len(chosen) > _PLAN_ROWS:
        lines.append(f"| … | {len(chosen) - _PLAN_ROWS} more | |")
    if skipped:
        lines += ["", f"**Skipped** ({len(skipped)}):", *[f"- `{t.repo}`: {t.reason}" for t in skipped[:_PLAN_ROWS]]]
        if len(skipped) > _PLAN_ROWS:
            lines.append(f"- … and {len(skipped) - _PLAN_ROWS} more (see the table)")
    if filtered:
        lines.append(f"\n{_count(filtered, 'other repository', 'other repositories')} of the installation did not "
                     "match the selector.")
    lines.append("\nCommands here: `@honk rollout`, `@honk stop`, `@honk update` (after editing the task), "
                 "`@honk retry` (failed repositories)." + (f" Dashboard: {dashboard}" if dashboard else ""))
    return "\n".join(lines)


# The status table

_STATE_WORDS = {
    states.WAITING: "⏳ waiting", states.QUEUED: "🕒 queued", states.RUNNING: "🛠️ working",
    states.OPENED: "🔀 opened", states.NOT_NEEDED: "➖ not needed", states.FAILED: "❌ failed",
    states.STOPPED_TARGET: "🛑 stopped", states.SKIPPED: "⏭️ skipped",
}
_CHECKS = {"green": "✅ green", "red": "❌ red", "pending": "⏳ pending"}
_REVIEWS = {"approved": "👍 approved", "changes_requested": "✍️ changes requested", "commented": "💬 commented"}
_HEADLINES = {
    states.CANARY: "🐤 **Canaries**", states.ROLLOUT: "🚀 **Rolling out**", states.STOPPED: "🛑 **Stopped**",
    states.BUDGET: "💸 **Stopped at its budget**", states.DONE: "🏁 **Done**",
}


def table(campaign: Campaign, targets: Sequence[Target], numbers: Figures, dashboard: str | None) -> str:
    """The status table: one row per repository, the skipped last, cut to fit a comment."""
    head = [TABLE_MARKER.format(id=campaign.id), f"### 🪿 Campaign #{campaign.id}: {campaign.title}",
            f"{_HEADLINES.get(campaign.state, campaign.state)} · {summary(numbers, campaign)}"]
    if campaign.note:
        head.append(f"\n{campaign.note[:1].upper()}{campaign.note[1:]}.")
    next_step = _next_step(campaign, targets)
    if next_step:
        head.append(f"\n{next_step}")
    head += ["", "| Repository | State | Pull request | Checks | Review | Merged |", "|---|---|---|---|---|---|"]
    foot = [f"\nDashboard: {dashboard}" if dashboard else ""]
    rows: list[str] = []
    used = sum(len(line) + 1 for line in head + foot) + 200
    for place, target in enumerate(targets):
        row = _row(target)
        if used + len(row) + 1 > COMMENT_LIMIT:
            rows.append(f"| … {len(targets) - place} more repositories | | | | | |")
            break
        rows.append(row)
        used += len(row) + 1
    return "\n".join(head + rows + foot).rstrip() + "\n"


def _row(target: Target) -> str:
    name = f"`{target.repo}`" + (" (canary)" if target.canary else "")
    state = _STATE_WORDS.get(target.state, target.state)
    if target.state == states.WAITING and target.pull_number is not None:
        state = "⏳ update waiting"
    if target.state in (states.SKIPPED, states.FAILED, states.NOT_NEEDED, states.STOPPED_TARGET) and target.reason:
        state += f": {_cell(target.reason)}"
    pull = f"[#{target.pull_number}]({target.pull_url})" if target.pull_number and target.pull_url else (
        f"#{target.pull_number}" if target.pull_number else "")
    if target.pull_state == "closed":
        pull += " (closed)"
    checks = _CHECKS.get(target.checks or "", "") if target.pull_number else ""
    review = _REVIEWS.get(target.review or "", "") if target.pull_number else ""
    merged = "✅" if target.merged else ""
    return f"| {name} | {state} | {pull} | {checks} | {review} | {merged} |"


def summary(numbers: Figures, campaign: Campaign) -> str:
    parts = [_count(numbers.targets, "repository", "repositories"), f"{numbers.opened} opened",
             f"{numbers.green} green", f"{numbers.approved} approved", f"{numbers.merged} merged"]
    if numbers.not_needed:
        parts.append(f"{numbers.not_needed} not needed")
    if numbers.failed:
        parts.append(f"{numbers.failed} failed")
    if numbers.skipped:
        parts.append(f"{numbers.skipped} skipped")
    cost = usd(numbers.cost_usd, cents=True) + (f" of {usd(campaign.budget_usd, cents=True)}"
                                                 if campaign.budget_usd is not None else "")
    return " · ".join([*parts, cost])


def _next_step(campaign: Campaign, targets: Sequence[Target]) -> str | None:
    if campaign.state == states.CANARY:
        canaries = [t for t in targets if t.canary]
        rest = sum(1 for t in targets if not t.canary and t.state == states.WAITING)
        if canaries and all(t.state in states.FINISHED for t in canaries):
            if campaign.spec.get("auto_rollout"):
                return (f"The canaries are done; the other {rest} repositories follow once every canary's checks are "
                        "green (or comment `@honk rollout`).")
            return f"The canaries are done: comment `@honk rollout` to open pull requests in the other {rest}."
    if campaign.state in (states.STOPPED, states.BUDGET):
        return "No new pull request will be opened; the open ones stay open. `@honk retry` resumes it."
    failed = sum(1 for t in targets if t.state == states.FAILED)
    if campaign.state == states.DONE and failed:
        return f"{_count(failed, 'repository', 'repositories')} failed: `@honk retry` tries them again."
    return None


def _cell(text: str, limit: int = 120) -> str:
    """Text safe inside a Markdown table cell: one line, no pipes, short."""
    flat = " ".join(text.replace("|", "/").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
