"""Fleet campaigns, end to end (CONTRACT.md section 7): a real `honk serve`, the local GitHub with an installation
of 30 generated repositories (REST and git over HTTP), and a model that reads each conversation, so that any
number of repositories can run at once in any order.

The change every campaign here asks for: turn `legacy = true` into `legacy = false` in `settings.ini`. Of the fleet,
every repository whose number is a multiple of 3 has no `settings.ini` (the selector's `has_file` leaves it out),
and every one ending in 4 has it already done (nothing to change: "not needed").
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.e2e import REPO, World, serve
from tests.fakes.messages_api import bash, edit, end, last_tool_result, reply
from tests.support import wait_for

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

FLEET = 30
LABEL = "honk-campaign"


def fleet_files(index: int) -> dict[str, Any]:
    """Every fifth repository has the topic `payments`; the odd ones are Python, the even ones Go."""
    facts = {"topics": ["payments"] if index % 5 == 0 else [], "language": "Python" if index % 2 else "Go"}
    if index % 3 == 0:
        return facts | {"files": {"README.md": f"# svc-{index:03d}\n"}}
    done = index % 10 == 4
    return facts | {"files": {
        "README.md": f"# svc-{index:03d}\n",
        "settings.ini": f"[service]\nname = svc-{index:03d}\nlegacy = {'false' if done else 'true'}\n"}}


OWNER = "Also add `owner = platform` under [service]."


def fleet_model(body: dict[str, Any]) -> dict[str, Any]:
    """An instant model for any repository: read settings.ini, flip `legacy` (and add the owner when the task asks
    for it), or say there is nothing to do."""
    if len(body["messages"]) == 1:
        return reply(bash("cat settings.ini"))
    said = last_tool_result(body)
    task = said_first(body)
    if "legacy = true" in said:
        return reply(edit("str_replace", "settings.ini", old_str="legacy = true", new_str="legacy = false"))
    if OWNER in task and "[service]\nname" in said:
        return reply(edit("str_replace", "settings.ini", old_str="[service]\n",
                          new_str="[service]\nowner = platform\n"))
    if "edited" in said.lower():
        return end("Turn off legacy mode\n\nsettings.ini is up to date with the campaign's task.")
    return end("Nothing to change: settings.ini already has legacy = false.")


def said_first(body: dict[str, Any]) -> str:
    content = body["messages"][0]["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content if isinstance(b, dict))


def slow(seconds: float) -> Any:
    """The fleet model, taking its time over every answer (so that work is in flight when a test acts)."""
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        if "Resolve issue" in said_first(body):  # a person's issue, not the campaign's: at once
            return end("They spin backwards; nothing to change.")
        time.sleep(seconds)
        return fleet_model(body)
    return answer


def spec(**fields: Any) -> str:
    lines = [f"{key}: {value}" for key, value in {"repos": "all", "has_file": "settings.ini", **fields}.items()]
    return ("Turn off legacy mode in every service.\n\nSet `legacy = false` in settings.ini.\n\n"
            "```yaml honk-campaign\n" + "\n".join(lines) + "\n```\n")


@pytest.fixture
def fleet(world: World) -> Iterator[World]:
    world.github.create_fleet(FLEET, every=fleet_files)
    world.model.agent_default = fleet_model
    yield world


def selected() -> list[str]:
    return [f"acme/svc-{i:03d}" for i in range(FLEET) if i % 3]


def campaign_api(world: World, campaign_id: int = 1) -> dict[str, Any]:
    """The campaign as /api/campaigns/{id} shows it ({"detail": ...} until it exists: a CLI start is queued)."""
    return httpx.get(f"{world.url}/api/campaigns/{campaign_id}", timeout=10).json()


def until(world: World, what: str, check: Any, timeout: float = 120) -> Any:
    try:
        return wait_for(check, timeout=timeout, interval=0.2, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: timed out\n" + world.logs()[-6000:]) from None


def targets_in(world: World, *states: str) -> list[dict[str, Any]]:
    return [t for t in campaign_api(world)["targets"] if t["state"] in states]


def campaign_pulls(world: World) -> dict[str, list[dict[str, Any]]]:
    """Every repository's pull requests from a campaign branch."""
    found: dict[str, list[dict[str, Any]]] = {}
    for index in range(FLEET):
        repo = f"acme/svc-{index:03d}"
        pulls = [p for p in world.github.pulls(repo) if p["head"]["ref"].startswith("honk/campaign-")]
        if pulls:
            found[repo] = pulls
    return found


def start(world: World, body: str, sender: str = "alice") -> tuple[int, dict[str, Any]]:
    issue = world.github.create_issue(REPO, "Turn off legacy mode", body, user=sender)
    answer = world.label(issue, sender=sender, label=LABEL)
    assert answer.status_code == 202, answer.text
    return issue, world.finished(answer.json()["job"])


def command(world: World, issue: int, words: str, sender: str = "alice") -> dict[str, Any]:
    answer = world.github.deliver("issue_comment", world.github.issue_comment_created(REPO, issue, words, sender))
    assert answer.status_code == 202, answer.text
    return world.finished(answer.json()["job"])


def table(world: World, issue: int) -> str:
    """The status table's text ("" until Honk has written it; never two)."""
    found = [c["body"] for c in world.bot_comments(issue) if "honk:campaign-table" in c["body"]]
    assert len(found) <= 1, found
    return found[0] if found else ""


def test_canaries_first_then_the_rest_on_a_writers_rollout(fleet: World) -> None:
    world = fleet
    serve(world, HONK_WORKER_CONCURRENCY="4")
    world.github.set_permission("acme/svc-007", "alice", "read")  # alice cannot write to one of them
    issue, started = start(world, spec(canary=3, concurrency=3))
    assert started["status"] == "succeeded" and started["result"]["outcome"] == "started", started

    bot = world.github.bot_login
    assert [r["content"] for r in world.github.reactions(REPO, issue) if r["user"]["login"] == bot] == ["eyes"]
    plan = [c["body"] for c in world.bot_comments(issue) if "honk:campaign-plan" in c["body"]]
    assert len(plan) == 1 and "acme/svc-001" in plan[0] and "acme/svc-007" in plan[0]
    assert "cannot write there" in plan[0]

    # The canaries (the first three selected) run; nothing else does until a writer says so.
    until(world, "the canaries", lambda: len(targets_in(world, "opened", "not_needed")) == 3 or None)
    time.sleep(1.5)
    api = campaign_api(world)
    assert api["state"] == "canary"
    # svc-003 has no settings.ini; svc-004 needs nothing: pull requests in two canaries, nowhere else.
    assert sorted(campaign_pulls(world)) == ["acme/svc-001", "acme/svc-002"]
    # The table catches up within seconds (it is edited at most every few seconds while only progress changes).
    until(world, "the canaries' table", lambda: "@honk rollout" in table(world, issue) or None, timeout=30)

    # A reader's rollout is refused; a writer's goes on.
    refused = command(world, issue, "@honk rollout", sender="bob")
    assert refused["result"]["outcome"] == "not_authorised"
    assert command(world, issue, "@honk rollout")["result"]["outcome"] == "rollout"
    chosen = [r for r in selected() if r != "acme/svc-007"]
    until(world, "the rollout", lambda: campaign_api(world).get("state") == "done" or None, timeout=240)

    pulls = campaign_pulls(world)
    needed = [r for r in chosen if not r.endswith("4")]
    assert sorted(pulls) == sorted(needed)
    for repo, found in pulls.items():
        assert len(found) == 1, repo
        [pull] = found
        assert pull["head"]["ref"].startswith("honk/campaign-1-turn-off-legacy-mode")
        assert f"{REPO}#{issue}" in pull["body"] and f"one of {len(chosen)}" in pull["body"]
        assert world.github.file_at(repo, pull["head"]["ref"], "settings.ini").endswith("legacy = false\n")
    api = campaign_api(world)
    by_repo = {t["repo"]: t for t in api["targets"]}
    assert by_repo["acme/svc-004"]["state"] == "not_needed" and "already" in by_repo["acme/svc-004"]["reason"]
    assert by_repo["acme/svc-007"]["state"] == "skipped" and "cannot write" in by_repo["acme/svc-007"]["reason"]
    assert "acme/svc-003" not in by_repo  # filtered out by has_file
    assert api["figures"]["opened"] == len(needed) and api["figures"]["failed"] == 0

    # One table, edited in place, saying where each repository stands (the last edit follows the last state).
    body = until(world, "the final table", lambda: "🏁" in table(world, issue) and table(world, issue))
    assert "| Repository | State | Pull request | Checks | Review | Merged |" in body
    assert "`acme/svc-004`" in body and "not needed" in body and "🏁" in body
    assert len([c for c in world.bot_comments(issue) if "honk:campaign-table" in c["body"]]) == 1


def test_green_canaries_roll_out_on_their_own(fleet: World) -> None:
    world = fleet
    serve(world, HONK_WORKER_CONCURRENCY="4")
    issue, started = start(world, spec(canary=2, concurrency=4, auto_rollout="true"))
    assert started["result"]["outcome"] == "started", started
    until(world, "the canaries", lambda: len(targets_in(world, "opened")) == 2 or None)
    time.sleep(1.5)
    assert campaign_api(world)["state"] == "canary"  # their checks have not reported yet
    # CI reports on each canary's head: green everywhere (Honk's own check run passed too).
    for repo in ("acme/svc-001", "acme/svc-002"):
        [pull] = campaign_pulls(world)[repo]
        suite = world.github.add_check_suite(repo, pull["head"]["sha"], "success")
        answer = world.github.deliver("check_suite", world.github.check_suite_completed(repo, suite))
        assert answer.status_code in (200, 202), answer.text
    until(world, "the automatic rollout", lambda: campaign_api(world).get("state") == "done" or None, timeout=240)
    assert any("Every canary of campaign #1 is green" in c["body"] for c in world.bot_comments(issue))
    assert sorted(campaign_pulls(world)) == sorted(r for r in selected() if not r.endswith("4"))
    by_repo = {t["repo"]: t for t in campaign_api(world)["targets"]}
    assert by_repo["acme/svc-001"]["checks"] == "green" and by_repo["acme/svc-002"]["checks"] == "green"
    body = until(world, "the final table", lambda: "🏁" in table(world, issue) and table(world, issue))
    assert "✅ green" in body

    # Reviews and merges come back into the table from webhooks, not from polling every pull request.
    [pull] = campaign_pulls(world)["acme/svc-005"]
    review = world.github.add_review("acme/svc-005", pull["number"], "alice", "APPROVED")
    world.github.deliver("pull_request_review", world.github.pull_request_review_submitted(
        "acme/svc-005", pull["number"], review))
    world.github.deliver("pull_request", world.github.pull_request_closed("acme/svc-005", pull["number"], merged=True))
    until(world, "the merge in the table", lambda: campaign_api(world)["figures"]["merged"] == 1 or None)
    target = {t["repo"]: t for t in campaign_api(world)["targets"]}["acme/svc-005"]
    assert (target["review"], target["merged"]) == ("approved", True)
    until(world, "the merge in the comment", lambda: "| ✅ |" in table(world, issue) or None, timeout=30)


def test_stop_halts_the_campaign_and_retry_resumes_it(fleet: World) -> None:
    world = fleet
    world.model.agent_default = slow(0.4)
    serve(world, HONK_WORKER_CONCURRENCY="3")
    issue, _ = start(world, spec(canary=0, concurrency=2))
    until(world, "the first pull request", lambda: campaign_pulls(world) or None)
    stopped = command(world, issue, "@honk stop")
    assert stopped["result"]["outcome"] == "stopped", stopped
    until(world, "every job of the campaign ended", lambda: all(
        world.job(t["job_id"])["status"] in ("succeeded", "failed", "cancelled")
        for t in campaign_api(world)["targets"] if t["job_id"]) or None)
    frozen = campaign_pulls(world)
    api = campaign_api(world)
    assert api["state"] == "stopped" and targets_in(world, "stopped")
    assert "stopped it" in (api["note"] or "")
    time.sleep(2)
    assert campaign_pulls(world) == frozen  # no new pull request after a stop
    assert until(world, "the stopped table", lambda: "Stopped" in table(world, issue) or None)

    # Retry picks up what the stop left: every repository still gets exactly one pull request.
    assert command(world, issue, "@honk retry")["result"]["outcome"] == "retried"
    until(world, "the resumed campaign", lambda: campaign_api(world).get("state") == "done" or None, timeout=240)
    pulls = campaign_pulls(world)
    assert sorted(pulls) == sorted(r for r in selected() if not r.endswith("4"))
    assert all(len(found) == 1 for found in pulls.values())


def test_update_reapplies_an_edited_task_to_every_open_pull_request(fleet: World) -> None:
    world = fleet
    serve(world, HONK_WORKER_CONCURRENCY="4")
    repos = ["acme/svc-001", "acme/svc-002", "acme/svc-004"]
    body = spec(repos=f"[{', '.join(repos)}]", canary=0)
    issue, _ = start(world, body)
    until(world, "the campaign", lambda: campaign_api(world).get("state") == "done" or None)
    assert sorted(campaign_pulls(world)) == ["acme/svc-001", "acme/svc-002"]  # svc-004 needs nothing
    heads = {repo: found[0]["head"]["sha"] for repo, found in campaign_pulls(world).items()}

    unchanged = command(world, issue, "@honk update")
    assert unchanged["result"]["outcome"] == "unchanged"
    world.github.edit_issue(REPO, issue, body=body.replace("Set `legacy = false` in settings.ini.",
                                                           f"Set `legacy = false` in settings.ini. {OWNER}"))
    assert command(world, issue, "@honk update")["result"]["outcome"] == "updating"
    until(world, "the update", lambda: all(
        found[0]["head"]["sha"] != heads[repo] for repo, found in campaign_pulls(world).items()) or None)
    until(world, "the campaign", lambda: campaign_api(world).get("state") == "done" or None)
    for repo, found in campaign_pulls(world).items():
        assert len(found) == 1
        ref = found[0]["head"]["ref"]
        assert "owner = platform" in world.github.file_at(repo, ref, "settings.ini")
        assert len(world.github.log(repo, ref)) == 3  # the initial commit, the change, the follow-up
    # A repository without a pull request was not touched by the update.
    assert not [p for p in world.github.pulls("acme/svc-004")]


def test_a_bad_block_or_a_reader_starts_nothing(fleet: World) -> None:
    world = fleet
    serve(world)
    body = spec(canary=2, concurrency="five")
    issue, job = start(world, body)
    assert job["result"]["outcome"] == "invalid_spec"
    [said] = world.bot_comments(issue)
    line = body.splitlines().index("concurrency: five") + 1
    assert "`concurrency`" in said["body"] and f"line {line}" in said["body"] and "Nothing has started" in said["body"]

    other = world.github.create_issue(REPO, "Turn off legacy mode", spec(), user="bob")
    refused = world.finished(world.label(other, sender="bob", label=LABEL).json()["job"])
    assert refused["result"]["outcome"] == "not_authorised"
    assert world.bot_comments(other) == []
    assert httpx.get(f"{world.url}/api/campaigns", timeout=10).json()["campaigns"] == []
    assert campaign_pulls(world) == {} and world.model.bodies == []


def test_a_person_is_served_before_a_running_campaign(fleet: World) -> None:
    world = fleet
    world.model.agent_default = slow(0.3)
    serve(world, HONK_WORKER_CONCURRENCY="2")
    start(world, spec(canary=0, concurrency=5))
    until(world, "the campaign under way", lambda: targets_in(world, "running") or None)
    # A person's request, on another repository, while the campaign keeps both slots' worth of work queued.
    issue = world.github.create_issue(REPO, "Widgets spin backwards", "", user="alice")
    job = world.finished(world.label(issue).json()["job"], timeout=60)
    queued = next(e["at"] for e in job["events"] if e["kind"] == "job.queued")
    began = next(e["at"] for e in job["events"] if e["kind"] == "job.started")
    waited = (datetime.fromisoformat(began.rstrip("Z")) - datetime.fromisoformat(queued.rstrip("Z"))).total_seconds()
    assert job["priority"] == "person" and waited < 5, waited
    target_job = world.job(targets_in(world, "running", "queued", "opened", "not_needed")[0]["job_id"])
    assert target_job["priority"] == "background"


def test_a_worker_killed_mid_rollout_loses_no_repository_and_doubles_none(fleet: World) -> None:
    world = fleet
    world.model.agent_default = slow(0.2)
    web = world.start("web", "--port", world.url.rsplit(":", 1)[1])
    web.wait_http(f"{world.url}/healthz")
    fast = {"HONK_LEASE_SECONDS": "2", "HONK_WORKER_CONCURRENCY": "4"}
    first = world.start("worker", **fast)
    issue, _ = start(world, spec(canary=0, concurrency=4))
    until(world, "the rollout under way", lambda: len(campaign_pulls(world)) >= 3 or None)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    # GitHub redelivers the label meanwhile: it is the same delivery, and starts nothing.
    label = next(d for d in world.github.deliveries if d.event == "issues")
    assert world.github.redeliver(label.id).json() == {"status": "duplicate"}

    world.start("worker", **fast)
    until(world, "the campaign", lambda: campaign_api(world).get("state") == "done" or None, timeout=240)
    pulls = campaign_pulls(world)
    assert sorted(pulls) == sorted(r for r in selected() if not r.endswith("4"))
    assert all(len(found) == 1 for found in pulls.values())
    for repo in pulls:
        assert len([b for b in world.github.branches(repo) if b.startswith("honk/campaign-")]) == 1
    assert not [p for p in world.github.pushes if p.forced]
    api = campaign_api(world)
    assert api["figures"]["failed"] == 0 and not targets_in(world, "waiting", "queued", "running")
    reclaimed = [t for t in api["targets"] if t["job_id"]
                 and "job.reclaimed" in [e["kind"] for e in world.job(t["job_id"])["events"]]]
    assert reclaimed, "the kill should have caught a repository's job mid-run"
    assert len([c for c in world.bot_comments(issue) if "honk:campaign-plan" in c["body"]]) == 1


def test_a_secondary_rate_limit_storm_slows_the_campaign_and_fails_nothing(fleet: World) -> None:
    world = fleet
    serve(world, HONK_WORKER_CONCURRENCY="3")
    # Every fifth repository is a payments service; of those, svc-005, 010, 020 and 025 have a settings.ini. One is
    # archived (left out by default) and one excluded by name.
    world.github.archive_repo("acme/svc-020")
    body = spec(topics="[payments]", language="[Python, Go]", has_file="'**/settings.ini'", exclude="[svc-010]",
                canary=0, concurrency=3)
    world.github.secondary_share = 0.2  # one API request in five answers "secondary rate limit", retry-after 1
    _, started = start(world, body)
    assert started["status"] == "succeeded", started
    until(world, "the campaign", lambda: campaign_api(world).get("state") == "done" or None, timeout=300)
    api = campaign_api(world)
    assert sorted(t["repo"] for t in api["targets"]) == ["acme/svc-005", "acme/svc-025"]
    assert api["figures"]["failed"] == 0 and api["figures"]["opened"] == 2
    assert all(len(found) == 1 for found in campaign_pulls(world).values())
    assert world.github.rate_limited("secondary"), "the storm should have hit"
    for target in api["targets"]:
        assert world.job(target["job_id"])["status"] == "succeeded"


def test_honk_campaign_start_opens_the_issue_and_starts_from_the_command_line(fleet: World, tmp_path: Any) -> None:
    world = fleet
    serve(world, HONK_WORKER_CONCURRENCY="3")
    broken = tmp_path / "broken.md"
    broken.write_text("Turn off legacy mode.\n\n```yaml honk-campaign\nrepos: all\ncanary: -1\n```\n")
    cli = world.start("campaign", "start", "--repo-of-issue", REPO, "--file", str(broken))
    assert cli.proc.wait(timeout=60) == 2
    assert "`canary`" in cli.output() and "line 5" in cli.output() and "Nothing was created" in cli.output()
    with pytest.raises(KeyError):
        world.github.issue(REPO, 1)  # no issue was opened

    good = tmp_path / "legacy.md"
    good.write_text("# Turn off legacy mode\n\n" + spec(repos="[acme/svc-001, acme/svc-004]", canary=0))
    cli = world.start("campaign", "start", "--repo-of-issue", REPO, "--file", str(good))
    assert cli.proc.wait(timeout=60) == 0, cli.output()
    assert f"Opened {REPO}#1" in cli.output()
    issue = world.github.issue(REPO, 1)
    assert issue["title"] == "Turn off legacy mode" and [x["name"] for x in issue["labels"]] == [LABEL]
    until(world, "the campaign", lambda: campaign_api(world).get("state") == "done" or None)
    assert sorted(campaign_pulls(world)) == ["acme/svc-001"]
    assert until(world, "the table", lambda: "🏁" in table(world, 1) or None)


def test_the_campaigns_budget_stops_it_cleanly_and_says_so(fleet: World) -> None:
    world = fleet
    serve(world, HONK_WORKER_CONCURRENCY="2")
    issue, _ = start(world, spec(repos="[acme/svc-001, acme/svc-002, acme/svc-005]", canary=0, concurrency=1,
                                 budget_usd=0.0001))
    until(world, "the budget", lambda: campaign_api(world).get("state") == "budget" or None)
    api = campaign_api(world)
    assert sorted(campaign_pulls(world)) == ["acme/svc-001"]  # the first one spent it all
    assert [t["state"] for t in api["targets"]] == ["opened", "stopped", "stopped"]
    assert api["figures"]["cost_usd"] >= 0.0001 and api["budget_usd"] == 0.0001
    [said] = [c["body"] for c in world.bot_comments(issue) if "💸" in c["body"] and "campaign-table" not in c["body"]]
    assert "its budget of $0.0001 is spent" in said and "budget_usd" in said
    until(world, "the table", lambda: "Stopped at its budget" in table(world, issue) or None, timeout=30)
