"""Fleet campaigns, end to end (CONTRACT.md section 7): a real `honk serve`, the local GitHub with an installation
of 30 generated repositories (REST and git over HTTP), and a model that reads each conversation, so that any
number of repositories can run at once in any order.

The change every campaign here asks for: turn `legacy = true` into `legacy = false` in `settings.ini`. Of the fleet,
every repository whose number is a multiple of 3 has no `settings.ini` (the selector's `has_file` leaves it out),
and every one ending in 4 has it already done (nothing to change: "not needed").
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
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
    if index % 3 == 0:
        return {"files": {"README.md": f"# svc-{index:03d}\n"}}
    done = index % 10 == 4
    return {"files": {"README.md": f"# svc-{index:03d}\n",
                      "settings.ini": f"[service]\nname = svc-{index:03d}\nlegacy = {'false' if done else 'true'}\n"}}


def fleet_model(body: dict[str, Any]) -> dict[str, Any]:
    """An instant model for any repository: read settings.ini, flip `legacy`, or say there is nothing to do."""
    if len(body["messages"]) == 1:
        return reply(bash("cat settings.ini"))
    said = last_tool_result(body)
    if "legacy = true" in said:
        return reply(edit("str_replace", "settings.ini", old_str="legacy = true", new_str="legacy = false"))
    if "legacy = false" in said and "cat" not in said:
        return end("Nothing to change: settings.ini already has legacy = false.")
    if "has been edited" in said or "edited" in said.lower():
        return end("Turn off legacy mode\n\nsettings.ini now says legacy = false.")
    return end("Nothing to change: settings.ini already has legacy = false.")


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
    [found] = [c for c in world.bot_comments(issue) if "honk:campaign-table" in c["body"]]
    return found["body"]


def test_canaries_first_then_the_rest_on_a_writers_rollout(fleet: World) -> None:
    world = fleet
    serve(world, HONK_WORKER_CONCURRENCY="4")
    world.github.set_permission("acme/svc-007", "alice", "read")  # alice cannot write to one of them
    issue, started = start(world, spec(canary=3, concurrency=3))
    assert started["status"] == "succeeded" and started["result"]["outcome"] == "started", started

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
    assert "@honk rollout" in table(world, issue)

    # A reader's rollout is refused; a writer's goes on.
    refused = command(world, issue, "@honk rollout", sender="bob")
    assert refused["result"]["outcome"] == "not_authorised"
    assert command(world, issue, "@honk rollout")["result"]["outcome"] == "rollout"
    chosen = [r for r in selected() if r != "acme/svc-007"]
    until(world, "the rollout", lambda: campaign_api(world)["state"] == "done" or None, timeout=240)

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
