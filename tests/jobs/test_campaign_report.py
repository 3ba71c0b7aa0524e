"""What a campaign says on GitHub (app/jobs/campaign_report.py): its branch, its plan, its status table and the
figures the table and the dashboard share; and how the bookkeeping reads a head's checks and a burst of news
(app/jobs/campaign.py). Pure functions over `Campaign` and `Target` values: no database, no GitHub.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from app.jobs import campaign_report as say
from app.jobs.campaign import _checks_of, _latest_per_pull
from app.queue import campaigns as states
from app.queue.campaigns import Campaign, Target

START = datetime(2026, 3, 1, 9, 0, 0)
HEADER = "| Repository | State | Pull request | Checks | Review | Merged |"


def campaign(**fields: Any) -> Campaign:
    made = Campaign(id=7, repo="acme/platform", number=100, installation_id=42, requester="alice",
                    title="Turn off legacy mode", task="Set legacy = false.",
                    spec={"concurrency": 5, "branch": "honk/campaign-7-turn-off-legacy-mode"}, budget_usd=None,
                    state=states.ROLLOUT, note=None, table_comment_id=None, table_edited_at=None, created_at=START,
                    updated_at=START, rollout_at=START, finished_at=None)
    return replace(made, **fields)


def target(repo: str, state: str = states.WAITING, *, position: int = 0, canary: bool = False,
           reason: str | None = None, pull: int | None = None, pull_state: str | None = None,
           checks: str | None = None, review: str | None = None, cost: float = 0.0,
           opened_minutes: float | None = None, merged_minutes: float | None = None) -> Target:
    def at(minutes: float | None) -> datetime | None:
        return START + timedelta(minutes=minutes) if minutes is not None else None

    return Target(id=position + 1, campaign_id=7, repo=repo, position=position, canary=canary, state=state,
                  reason=reason, job_id=None, runs=1, pull_number=pull,
                  pull_url=f"https://github.com/{repo}/pull/{pull}" if pull else None, pull_state=pull_state,
                  head_sha="a" * 40 if pull else None, checks=checks, review=review, cost_usd=cost,
                  opened_at=at(opened_minutes), merged_at=at(merged_minutes), finished_at=None)


FLEET = [
    target("acme/svc-0", states.OPENED, position=0, canary=True, pull=12, pull_state="merged", checks="green",
           review="approved", cost=0.5, opened_minutes=10, merged_minutes=70),
    target("acme/svc-1", states.OPENED, position=1, canary=True, pull=4, pull_state="open", checks="red",
           review="changes_requested", cost=0.25, opened_minutes=12),
    target("acme/svc-2", states.OPENED, position=2, pull=9, pull_state="merged", checks="green", review="approved",
           cost=0.25, opened_minutes=20, merged_minutes=50),
    target("acme/svc-3", states.OPENED, position=3, pull=3, pull_state="closed", checks="green", cost=0.1,
           opened_minutes=5),
    target("acme/svc-4", states.OPENED, position=4, pull=5, pull_state="open", checks="pending", review="commented"),
    target("acme/svc-5", states.NOT_NEEDED, position=5, reason="settings.ini already says so", cost=0.05),
    target("acme/svc-6", states.FAILED, position=6, reason="the tests fail | before the change\nand after"),
    target("acme/svc-7", states.RUNNING, position=7),
    target("acme/svc-8", states.QUEUED, position=8),
    target("acme/svc-9", states.WAITING, position=9),
    target("acme/svc-10", states.STOPPED_TARGET, position=10, reason="@bob stopped the campaign"),
    target("acme/archive", states.SKIPPED, position=11, reason="archived"),
    target("acme/docs", states.SKIPPED, position=12, reason="@alice cannot write there (read access)"),
]


# The branch


@pytest.mark.parametrize(("title", "branch"), [
    ("Turn off legacy mode", "honk/campaign-7-turn-off-legacy-mode"),
    ("Bump lodash to 4.17.21!", "honk/campaign-7-bump-lodash-to-4-17-21"),
    ("  ---Ünïcode & émojis 🚀 ", "honk/campaign-7-n-code-mojis"),
    ("🚀🚀🚀", "honk/campaign-7"),
    ("", "honk/campaign-7"),
])
def test_the_campaign_branch_carries_its_id_and_a_readable_slug(title: str, branch: str) -> None:
    assert say.campaign_branch("honk/", 7, title) == branch
    assert say.campaign_of_branch("honk/", branch) == 7


def test_a_long_title_is_cut_without_a_trailing_dash() -> None:
    # Forty characters of the slug end on the dash after "call".
    branch = say.campaign_branch("honk/", 123, "Replace the deprecated logging API call in every service")
    assert branch == "honk/campaign-123-replace-the-deprecated-logging-api-call"
    slug = say.campaign_branch("honk/", 123, "Ünïcode " * 30).removeprefix("honk/campaign-123-")
    assert len(slug) <= 40 and not slug.endswith("-") and re.fullmatch(r"[a-z0-9-]+", slug)


@pytest.mark.parametrize("campaign_id", [1, 9, 10, 4242, 10**17])
@pytest.mark.parametrize("prefix", ["honk/", "bots/honk-", "a.b+c/"])
def test_branch_and_id_round_trip(campaign_id: int, prefix: str) -> None:
    for title in ("Turn off legacy mode", "42", "x" * 100, "-"):
        assert say.campaign_of_branch(prefix, say.campaign_branch(prefix, campaign_id, title)) == campaign_id


@pytest.mark.parametrize(("prefix", "branch"), [
    ("honk/", "honk/issue-3-x"), ("honk/", "honk/campaign-0-x"), ("honk/", "honk/campaign-07-x"),
    ("honk/", "honk/campaign-7x"), ("honk/", "other/campaign-7-x"), ("honk/", "main"),
    ("a.b+c/", "aXb+c/campaign-7"), ("a.b+c/", "abbc/campaign-7")])
def test_other_branches_name_no_campaign(prefix: str, branch: str) -> None:
    assert say.campaign_of_branch(prefix, branch) is None


# The status table


def _rows(body: str) -> list[str]:
    lines = body.splitlines()
    start = lines.index(HEADER) + 2
    return [line for line in lines[start:] if line.startswith("|")]


def test_the_table_has_a_row_per_repository_with_its_pull_request_checks_review_and_merge() -> None:
    made = campaign()
    body = say.table(made, FLEET, say.figures(made, FLEET, START + timedelta(hours=2)), "https://honk.example/c/7")
    assert body.startswith(say.TABLE_MARKER.format(id=7))
    assert "### 🪿 Campaign #7: Turn off legacy mode" in body
    lines = body.splitlines()
    assert lines[lines.index(HEADER) + 1] == "|---|---|---|---|---|---|"
    rows = _rows(body)
    assert len(rows) == len(FLEET)
    assert rows[0] == ("| `acme/svc-0` (canary) | 🔀 opened | [#12](https://github.com/acme/svc-0/pull/12) | ✅ green "
                       "| 👍 approved | ✅ |")
    assert rows[1] == ("| `acme/svc-1` (canary) | 🔀 opened | [#4](https://github.com/acme/svc-1/pull/4) | ❌ red "
                       "| ✍️ changes requested |  |")
    assert rows[3] == ("| `acme/svc-3` | 🔀 opened | [#3](https://github.com/acme/svc-3/pull/3) (closed) | ✅ green "
                       "|  |  |")
    assert rows[4] == ("| `acme/svc-4` | 🔀 opened | [#5](https://github.com/acme/svc-4/pull/5) | ⏳ pending "
                       "| 💬 commented |  |")
    assert rows[5] == "| `acme/svc-5` | ➖ not needed: settings.ini already says so |  |  |  |  |"
    assert [r.split(" | ")[1] for r in rows[7:11]] == ["🛠️ working", "🕒 queued", "⏳ waiting",
                                                       "🛑 stopped: @bob stopped the campaign"]
    assert rows[-1] == "| `acme/docs` | ⏭️ skipped: @alice cannot write there (read access) |  |  |  |  |"
    assert body.rstrip().endswith("Dashboard: https://honk.example/c/7")


def test_a_reason_cannot_break_the_table() -> None:
    made = campaign()
    body = say.table(made, FLEET, say.figures(made, FLEET, START), None)
    failed = _rows(body)[6]
    assert failed == "| `acme/svc-6` | ❌ failed: the tests fail / before the change and after |  |  |  |  |"
    assert all(row.count("|") == 7 for row in _rows(body))
    long = [target("acme/svc-0", states.FAILED, reason="|" * 500)]
    [row] = _rows(say.table(made, long, say.figures(made, long, START), None))
    assert row.count("|") == 7 and len(row) < 200


def test_a_target_updating_on_its_pull_request_says_so() -> None:
    waiting = [target("acme/svc-0", states.WAITING, pull=12, pull_state="open", checks="green")]
    made = campaign()
    [row] = _rows(say.table(made, waiting, say.figures(made, waiting, START), None))
    assert row.split(" | ")[1] == "⏳ update waiting"


def test_the_table_of_3000_repositories_fits_in_a_comment() -> None:
    fleet = [target(f"acme-platform-team/service-with-a-long-name-{i:04d}", states.OPENED, position=i, pull=i + 1,
                    pull_state="open", checks="green", review="approved") for i in range(3000)]
    made = campaign()
    body = say.table(made, fleet, say.figures(made, fleet, START), "https://honk.example/c/7")
    assert len(body) < say.COMMENT_LIMIT < 65_536
    rows = _rows(body)
    shown, last = rows[:-1], rows[-1]
    match = re.fullmatch(r"\| … (\d+) more repositories \| \| \| \| \| \|", last)
    assert match is not None, last
    assert 100 < len(shown) < 3000 and len(shown) + int(match.group(1)) == 3000
    assert shown[-1].startswith(f"| `acme-platform-team/service-with-a-long-name-{len(shown) - 1:04d}`")
    assert body.rstrip().endswith("Dashboard: https://honk.example/c/7")


def test_the_headline_and_the_next_step() -> None:
    canaries = [target("acme/svc-0", states.OPENED, canary=True, pull=1, pull_state="open", checks="green"),
                target("acme/svc-1", states.NOT_NEEDED, position=1, canary=True),
                target("acme/svc-2", position=2), target("acme/svc-3", position=3)]
    waiting = campaign(state=states.CANARY, rollout_at=None)
    body = say.table(waiting, canaries, say.figures(waiting, canaries, START), None)
    assert ("🐤 **Canaries** · 4 repositories · 1 opened · 1 green · 0 approved · 0 merged · 1 not needed · $0.00"
            in body)
    assert "comment `@honk rollout` to open pull requests in the other 2." in body
    auto = campaign(state=states.CANARY, rollout_at=None, spec={"auto_rollout": True})
    assert "follow once every canary's checks are green" in say.table(
        auto, canaries, say.figures(auto, canaries, START), None)
    spent = campaign(state=states.BUDGET, note="its budget of $1.00 is spent", budget_usd=1.0)
    body = say.table(spent, canaries, say.figures(spent, canaries, START), None)
    assert "💸 **Stopped at its budget**" in body and "$0.00 of $1.00" in body
    assert "\nIts budget of $1.00 is spent.\n" in body and "`@honk retry` resumes it" in body
    done = campaign(state=states.DONE, finished_at=START)
    body = say.table(done, FLEET, say.figures(done, FLEET, START), None)
    assert "🏁 **Done**" in body and "1 repository failed: `@honk retry` tries them again." in body


# The plan


def test_the_plan_names_the_canaries_the_branch_and_the_skipped_with_reasons() -> None:
    made = campaign(state=states.CANARY, rollout_at=None, budget_usd=25.0)
    body = say.plan(made, FLEET, filtered=3, dashboard="https://honk.example/c/7")
    assert body.startswith(say.PLAN_MARKER.format(id=7))
    assert ("11 repositories will get a pull request each, on the branch `honk/campaign-7-turn-off-legacy-mode`, at "
            "most 5 at a time.") in body
    assert ("First the canaries, `acme/svc-0`, `acme/svc-1`; then a writer's `@honk rollout` here starts the rest."
            in body)
    assert "Budget: $25.00; the campaign stops cleanly when it is spent." in body
    assert "| 1 | `acme/svc-0` | canary |" in body and "| 3 | `acme/svc-2` | rollout |" in body
    assert ("**Skipped** (2):\n- `acme/archive`: archived\n- `acme/docs`: @alice cannot write there (read access)"
            in body)
    assert "3 other repositories of the installation did not match the selector." in body
    assert body.rstrip().endswith("Dashboard: https://honk.example/c/7")
    assert "`acme/archive` |" not in body  # the skipped are not in the plan's table


def test_the_plan_under_auto_rollout_and_without_canaries() -> None:
    auto = campaign(state=states.CANARY, spec={"branch": "honk/campaign-7", "auto_rollout": True, "concurrency": 2})
    assert "the rest follow on their own once every canary's checks are green" in say.plan(auto, FLEET, 0, None)
    plain = [replace(t, canary=False) for t in FLEET if t.state != states.SKIPPED]
    body = say.plan(campaign(), plain, filtered=1, dashboard=None)
    assert "canaries" not in body and "Skipped" not in body and "Budget" not in body and "Dashboard" not in body
    assert "1 other repository of the installation" in body


def test_a_plan_of_many_repositories_names_the_first_hundred() -> None:
    fleet = [target(f"acme/svc-{i}", position=i) for i in range(150)]
    fleet += [target(f"acme/old-{i}", states.SKIPPED, position=150 + i, reason="archived") for i in range(120)]
    body = say.plan(campaign(), fleet, 0, None)
    assert "| 100 | `acme/svc-99` | rollout |" in body and "`acme/svc-100`" not in body
    assert "| … | 50 more | |" in body
    assert "**Skipped** (120):" in body and "- … and 20 more (see the table)" in body


# The figures


def test_figures_count_what_the_campaign_came_to() -> None:
    made = campaign()
    numbers = say.figures(made, FLEET, START + timedelta(hours=2))
    assert numbers.to_dict() == {
        "targets": 11, "skipped": 2,
        "opened": 5,  # every pull request opened: open, merged or closed
        "green": 2,  # a closed pull request's green counts for nothing
        "approved": 2, "merged": 2, "failed": 1, "not_needed": 1, "waiting": 1, "active": 2, "stopped": 1,
        "cost_usd": 1.15, "wall_seconds": 7200.0,
        "median_merge_seconds": 45 * 60.0}  # merged after 60 and after 30 minutes
    assert say.summary(numbers, replace(made, budget_usd=10.0)) == (
        "11 repositories · 5 opened · 2 green · 2 approved · 2 merged · 1 not needed · 1 failed · 2 skipped · "
        "$1.15 of $10.00")


def test_figures_of_a_finished_campaign_and_of_none() -> None:
    done = campaign(state=states.DONE, finished_at=START + timedelta(minutes=30))
    numbers = say.figures(done, [], START + timedelta(days=3))
    assert numbers.wall_seconds == 1800.0  # to its end, not to now
    assert (numbers.targets, numbers.opened, numbers.cost_usd, numbers.median_merge_seconds) == (0, 0, 0.0, None)
    one = [target("acme/svc-0", states.OPENED, pull=1, pull_state="merged", opened_minutes=0, merged_minutes=3)]
    assert say.figures(done, one, START).median_merge_seconds == 180.0


# Reading a head's checks


def run(status: str = "completed", conclusion: str | None = "success") -> dict[str, Any]:
    return {"name": "test", "status": status, "conclusion": conclusion}


@pytest.mark.parametrize(("runs", "checks"), [
    ([], "pending"),  # nothing has reported yet
    ([run()], "green"),
    ([run(), run(conclusion="neutral"), run(conclusion="skipped")], "green"),
    ([run(), run("in_progress", None)], "pending"),
    ([run("queued", None)], "pending"),
    ([run(), run(conclusion="failure")], "red"),
    ([run("in_progress", None), run(conclusion="timed_out")], "red"),  # red at once, whatever is still running
    ([run(conclusion="cancelled")], "red"),
    ([run(conclusion="action_required")], "red"),
    ([run(conclusion="startup_failure")], "red"),
])
def test_a_head_is_red_green_or_pending(runs: list[dict[str, Any]], checks: str) -> None:
    assert _checks_of(runs) == checks


# A burst of news


def news(repo: str, pull: int, kind: str, **facts: Any) -> dict[str, Any]:
    return {"type": "campaign_sync", "campaign_id": 7, "target_repo": repo, "pull_number": pull, "news": kind,
            **facts}


def test_a_burst_asks_github_for_each_pull_requests_checks_once_and_keeps_every_review() -> None:
    burst = [
        news("acme/svc-0", 12, "checks", head_sha="1" * 40),
        news("acme/svc-0", 12, "review", review="approved"),
        news("acme/svc-1", 12, "checks", head_sha="2" * 40),  # another repository's #12
        news("acme/svc-0", 12, "checks", head_sha="3" * 40),
        news("acme/svc-0", 13, "checks", head_sha="4" * 40),
        news("acme/svc-0", 12, "review", review="changes_requested"),
        news("acme/svc-0", 12, "merged"),
        news("acme/svc-0", 12, "checks", head_sha="5" * 40),
        {"type": "campaign_sync", "campaign_id": 7, "table_now": True},  # a command's, no news
    ]
    kept = _latest_per_pull(burst)
    checks = [(n["target_repo"], n["pull_number"], n["head_sha"]) for n in kept if n.get("news") == "checks"]
    assert checks == [("acme/svc-1", 12, "2" * 40), ("acme/svc-0", 13, "4" * 40), ("acme/svc-0", 12, "5" * 40)]
    assert [n.get("review") for n in kept if n.get("news") == "review"] == ["approved", "changes_requested"]
    assert [n for n in kept if n.get("news") == "merged"] == [burst[6]]
    assert kept == [item for item in burst if item in kept]  # in the order they came
    assert len(kept) == len(burst) - 2
    assert _latest_per_pull([]) == []
