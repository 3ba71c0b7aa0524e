"""The campaign pages, `/campaigns` and `/campaigns/{id}`, and their JSON, `/api/campaigns` and
`/api/campaigns/{id}` (app/web/campaigns.py; CONTRACT.md sections 2 and 7).

Campaigns are made through the store (`CampaignStore`) as the campaign jobs make them: created, advanced (target jobs
queued), their targets finished and their pull requests tracked; only the times are then set by hand, so that wall
time and the median time to merge are figures a test can read. Over plain HTTP on SQLite and PostgreSQL: the figures,
the JSON, 404s, protection and escaping. In a real headless Chromium (Debian's `chromium`, driven by playwright):
the list, a click through to a campaign and its figures. The browser test skips saying why without Chromium or
playwright, and fails instead with HONK_REQUIRE_BROWSER=1 (as in CI).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import update

from app.process import HonkState
from app.queue import campaigns as states
from app.queue.campaigns import Campaign, CampaignRow, CampaignStore, Target, TargetRow
from app.queue.requests import JobKind, JobRequest
from app.settings import Settings
from app.web.app import create_app
from app.web.auth import SESSION_COOKIE, session_cookie
from tests.support import live_server

SCREENSHOTS = os.environ.get("HONK_SCREENSHOT_DIR")
TOKEN = "a dashboard token long enough to pass"
HOSTILE = "<script>document.title='pwned'</script>"
ESCAPED = "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"
ISSUE_REPO = "acme/fleet"
TARGETS = ["acme/one", "acme/two", "acme/three", "acme/four", "acme/five"]


# Campaigns, made as the campaign jobs make them

def target_job(made: Campaign, target: Target) -> JobRequest:
    """What app/jobs/campaign.py queues for a target (its handler is not run here)."""
    return JobRequest(kind=JobKind.CAMPAIGN_TARGET, repo=target.repo, number=None, requester=made.requester,
                      installation_id=made.installation_id,
                      trigger={"type": "campaign_target", "campaign_id": made.id, "target": target.repo,
                               "run": target.runs})


@dataclass
class Fleet:
    rolled: Campaign  # rolled out, then stopped: every kind of row
    fresh: Campaign  # newer, still waiting on its canary
    jobs: dict[str, int]  # the rolled-out campaign's target jobs, by repository


def pull(repo: str, number: int) -> dict[str, Any]:
    return {"number": number, "html_url": f"https://github.com/{repo}/pull/{number}", "state": "open"}


def make_fleet(state: HonkState) -> Fleet:
    store = CampaignStore(state.queue)
    spec = {"repos": TARGETS, "canary": 2, "concurrency": 5, "auto_rollout": False}
    rolled, created = store.create(repo=ISSUE_REPO, number=5, installation_id=42, requester="alice",
                                   title="Bump lodash to 4.17.21", task="Bump lodash.", spec=spec, budget_usd=25.0,
                                   targets=TARGETS, canaries=2, skipped=[("acme/archive", f"archived {HOSTILE}")])
    assert created
    jobs = {t.repo: t.job_id for t in store.advance(rolled.id, target_job).queued}
    assert list(jobs) == ["acme/one", "acme/two"]  # the canaries first
    assert store.target_finished(rolled.id, "acme/one", jobs["acme/one"], state=states.OPENED,
                                 pull=pull("acme/one", 11), head_sha="a1", checks="green", cost_usd=1.25)
    assert store.target_finished(rolled.id, "acme/two", jobs["acme/two"], state=states.NOT_NEEDED,
                                 reason="lodash is already at 4.17.21", cost_usd=0.5)
    assert store.rollout(rolled.id) is not None
    jobs |= {t.repo: t.job_id for t in store.advance(rolled.id, target_job).queued}
    assert list(jobs) == TARGETS
    assert store.target_finished(rolled.id, "acme/three", jobs["acme/three"], state=states.OPENED,
                                 pull=pull("acme/three", 12), head_sha="b1", checks="pending", cost_usd=2.0)
    assert store.track(rolled.id, "acme/three", 12, head_sha="b1", checks="green")
    for repo, number in (("acme/one", 11), ("acme/three", 12)):
        assert store.track(rolled.id, repo, number, review="approved")
        assert store.track(rolled.id, repo, number, pull_state="merged")
    # A failure whose reason and pull request link are hostile: text, never markup or a script link.
    assert store.target_finished(rolled.id, "acme/four", jobs["acme/four"], state=states.FAILED,
                                 reason=f"tests failed: {HOSTILE}",
                                 pull={"number": 13, "html_url": "javascript:alert(1)"}, cost_usd=0.25)
    stopped = store.stop(rolled.id, "bob")  # acme/five was still queued: stopped
    assert stopped.cancel == [jobs["acme/five"]]

    with state.db.session() as session:  # times a test can read: 6 h 30 min in all, merged after 1 h and 3 h
        start = state.db.now(session) - timedelta(days=1)
        session.execute(update(CampaignRow).where(CampaignRow.id == rolled.id)
                        .values(created_at=start, finished_at=start + timedelta(hours=6, minutes=30)))
        for repo, hours in (("acme/one", 1), ("acme/three", 3)):
            session.execute(update(TargetRow).where(TargetRow.campaign_id == rolled.id, TargetRow.repo == repo)
                            .values(opened_at=start + timedelta(hours=1),
                                    merged_at=start + timedelta(hours=1 + hours)))

    fresh, _ = store.create(repo=ISSUE_REPO, number=9, installation_id=42, requester="carol",
                            title=f"Add CODEOWNERS {HOSTILE}", task="Add one.", spec={"canary": 1}, budget_usd=None,
                            targets=["acme/one", "acme/two"], canaries=1, skipped=[])
    return Fleet(store.get(rolled.id) or rolled, fresh, jobs)


ROLLED_FIGURES = {"targets": 5, "skipped": 1, "opened": 3, "green": 2, "approved": 2, "merged": 2, "failed": 1,
                  "not_needed": 1, "waiting": 0, "active": 0, "stopped": 1, "cost_usd": 4.0,
                  "wall_seconds": 6.5 * 3600, "median_merge_seconds": 2 * 3600}


def cells(html: str, row: str) -> dict[str, str]:
    """The list page's figures of one campaign's row, by name."""
    match = re.search(rf'<tr data-campaign="{row}">(.*?)</tr>', html, re.S)
    assert match, row
    return dict(re.findall(r'data-figure="(\w+)">(.*?)</td>', match.group(1)))


def figures_shown(html: str) -> dict[str, str]:
    """The campaign page's figures, by name, as text."""
    return {name: re.sub(r"<[^>]+>", "", value).strip()
            for name, value in re.findall(r'<div data-figure="(\w+)"><dt>[^<]*</dt><dd>(.*?)</dd></div>', html)}


# Over plain HTTP, on SQLite and PostgreSQL (no token, on loopback: open)

def test_the_list_shows_every_campaign_newest_first_with_its_figures(state: HonkState) -> None:
    fleet = make_fleet(state)
    with live_server(create_app(state)) as url:
        page = httpx.get(f"{url}/campaigns", timeout=10)
    assert page.status_code == 200 and page.headers["content-security-policy"].startswith("default-src 'none'")
    html = page.text
    assert [int(i) for i in re.findall(r'<tr data-campaign="(\d+)"', html)] == [fleet.fresh.id, fleet.rolled.id]
    assert cells(html, str(fleet.rolled.id)) == {
        "targets": "5", "opened": "3", "green": "2", "approved": "2", "merged": "2", "failed": "1",
        "not_needed": "1", "cost": "$4.00", "wall": "6 h 30 min"}
    assert cells(html, str(fleet.fresh.id))["targets"] == "2" and cells(html, str(fleet.fresh.id))["opened"] == "0"
    assert f'<a href="/campaigns/{fleet.rolled.id}">#{fleet.rolled.id}</a>' in html
    assert f'<a href="https://github.com/{ISSUE_REPO}/issues/5">{ISSUE_REPO}#5</a>' in html  # the campaign issue
    assert "Bump lodash to 4.17.21" in html and ">stopped</span>" in html and ">canaries</span>" in html
    assert "<script" not in html and f"Add CODEOWNERS {ESCAPED}" in html


def test_the_campaign_page_shows_its_figures_state_and_every_repository(state: HonkState) -> None:
    fleet = make_fleet(state)
    with live_server(create_app(state)) as url:
        page = httpx.get(f"{url}/campaigns/{fleet.rolled.id}", timeout=10)
    assert page.status_code == 200
    html = page.text
    assert figures_shown(html) == {
        "targets": "5", "opened": "3", "green": "2", "approved": "2", "merged": "2", "failed": "1",
        "not_needed": "1", "skipped": "1", "stopped": "1", "cost": "$4.00 of $25.00", "wall": "6 h 30 min",
        "median_merge": "2 h 00 min"}
    assert f"Campaign #{fleet.rolled.id}: Bump lodash to 4.17.21" in html
    assert '<span class="badge status-cancelled" id="state">stopped</span>' in html
    assert '<p id="note">@bob stopped it.</p>' in html
    assert f'href="https://github.com/{ISSUE_REPO}/issues/5">{ISSUE_REPO}#5</a>' in html

    rows = dict(re.findall(r'<tr data-repo="([^"]+)">(.*?)</tr>', html, re.S))
    assert list(rows) == [*TARGETS, "acme/archive"]  # the plan's order, the skipped last
    one = rows["acme/one"]
    assert "canary" in one and ">opened</span>" in one and 'href="https://github.com/acme/one/pull/11">#11</a>' in one
    assert ">green</span>" in one and ">approved</span>" in one and ">merged</span>" in one and "$1.25" in one
    assert f'<a class="job" href="/jobs/{fleet.jobs["acme/one"]}">' in one
    assert ">not needed</span>" in rows["acme/two"] and "lodash is already at 4.17.21" in rows["acme/two"]
    assert "canary" not in rows["acme/three"] and "$2.00" in rows["acme/three"]
    four = rows["acme/four"]
    assert ">failed</span>" in four and f"tests failed: {ESCAPED}" in four
    assert "#13" in four and "javascript:" not in html  # an unsafe link is text, not an href
    assert ">stopped</span>" in rows["acme/five"] and "@bob stopped the campaign" in rows["acme/five"]
    assert ">skipped</span>" in rows["acme/archive"] and f"archived {ESCAPED}" in rows["acme/archive"]
    assert "<script" not in html


def test_the_json_has_the_campaign_its_figures_and_every_target(state: HonkState) -> None:
    fleet = make_fleet(state)
    with live_server(create_app(state)) as url, httpx.Client(base_url=url, timeout=10) as client:
        body = client.get(f"/api/campaigns/{fleet.rolled.id}").json()
        listing = client.get("/api/campaigns").json()
        fresh = client.get(f"/api/campaigns/{fleet.fresh.id}").json()
    assert set(body) == {"id", "repo", "number", "title", "state", "note", "requester", "created_at", "finished_at",
                         "budget_usd", "spec", "figures", "targets"}
    assert (body["id"], body["repo"], body["number"], body["state"], body["note"], body["requester"]) == (
        fleet.rolled.id, ISSUE_REPO, 5, "stopped", "@bob stopped it", "alice")
    assert body["budget_usd"] == 25.0 and body["spec"]["canary"] == 2 and body["created_at"].endswith("Z")
    assert body["figures"] == ROLLED_FIGURES
    targets = {t["repo"]: t for t in body["targets"]}
    assert list(targets) == [*TARGETS, "acme/archive"]
    assert targets["acme/one"] == {"repo": "acme/one", "canary": True, "state": "opened", "reason": None,
                                   "job_id": fleet.jobs["acme/one"], "pull_number": 11,
                                   "pull_url": "https://github.com/acme/one/pull/11", "pull_state": "merged",
                                   "checks": "green", "review": "approved", "merged": True, "cost_usd": 1.25}
    assert targets["acme/four"]["reason"] == f"tests failed: {HOSTILE}"  # JSON carries the text as it is
    assert targets["acme/archive"]["state"] == "skipped" and targets["acme/archive"]["job_id"] is None
    assert [c["id"] for c in listing["campaigns"]] == [fleet.fresh.id, fleet.rolled.id]
    assert listing["campaigns"][1]["figures"] == ROLLED_FIGURES and "targets" not in listing["campaigns"][1]
    assert fresh["state"] == "canary" and fresh["finished_at"] is None and fresh["budget_usd"] is None
    assert fresh["figures"]["waiting"] == 2 and fresh["figures"]["median_merge_seconds"] is None


def test_unknown_campaigns_are_404(state: HonkState) -> None:
    make_fleet(state)
    with live_server(create_app(state)) as url, httpx.Client(base_url=url, timeout=10) as client:
        for campaign_id in ("999", "0", "-1", str(2**63), "1" * 30):
            page = client.get(f"/campaigns/{campaign_id}")
            assert page.status_code == 404 and f"There is no campaign {campaign_id}." in page.text
            assert "No such campaign" in page.text
            data = client.get(f"/api/campaigns/{campaign_id}")
            assert data.status_code == 404 and data.json() == {"detail": f"there is no campaign {campaign_id}"}


# Protection, like the job pages

@pytest.fixture
def open_state(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[HonkState]:
    state = HonkState.create(make_settings(honk_database_url=f"sqlite:///{tmp_path / 'open.db'}"))
    state.db.migrate()
    yield state
    state.db.dispose()


@pytest.fixture
def token_state(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[HonkState]:
    state = HonkState.create(make_settings(honk_database_url=f"sqlite:///{tmp_path / 'token.db'}",
                                           honk_dashboard_token=TOKEN))
    state.db.migrate()
    yield state
    state.db.dispose()


def test_without_campaigns_the_list_says_how_to_start_one(open_state: HonkState) -> None:
    with live_server(create_app(open_state)) as url:
        page = httpx.get(f"{url}/campaigns", timeout=10)
        listing = httpx.get(f"{url}/api/campaigns", timeout=10).json()
    assert page.status_code == 200 and "No campaigns yet" in page.text
    assert "<code>honk-campaign</code>" in page.text and "honk campaign start" in page.text
    assert listing == {"campaigns": []}


def test_without_a_token_the_pages_are_open_on_loopback_and_off_beyond_it(open_state: HonkState) -> None:
    fleet = make_fleet(open_state)
    paths = ("/campaigns", f"/campaigns/{fleet.rolled.id}", "/api/campaigns", f"/api/campaigns/{fleet.rolled.id}")
    with live_server(create_app(open_state)) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert [client.get(path).status_code for path in paths] == [200] * 4
        # DNS rebinding: a loopback Honk reached under another name is refused.
        assert client.get("/campaigns", headers={"Host": "attacker.example"}).status_code == 403
        assert client.get(paths[3], headers={"Host": "attacker.example"}).status_code == 403
        open_state.listen_host = "0.0.0.0"
        for path in paths:
            off = client.get(path)
            assert off.status_code == 403 and "HONK_DASHBOARD_TOKEN" in off.text, path
            assert "Bump lodash" not in off.text


def test_with_a_token_the_pages_need_it(token_state: HonkState) -> None:
    fleet = make_fleet(token_state)
    page, data = f"/campaigns/{fleet.rolled.id}", f"/api/campaigns/{fleet.rolled.id}"
    with live_server(create_app(token_state)) as url, httpx.Client(base_url=url, timeout=10) as client:
        bare = client.get(page)
        assert bare.status_code == 303 and bare.headers["location"] == f"/login?next=%2Fcampaigns%2F{fleet.rolled.id}"
        for path in ("/campaigns", page, "/api/campaigns", data):
            wrong = client.get(path, headers={"Authorization": "Bearer not the token"})
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer", path
            assert "Bump lodash" not in wrong.text
            assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, path
        assert client.get("/api/campaigns").status_code == client.get(data).status_code == 401  # never a redirect
        assert client.get("/api/campaigns/999").status_code == 401  # no telling which campaigns exist
    with live_server(create_app(token_state)) as url, httpx.Client(
            base_url=url, timeout=10, cookies={SESSION_COOKIE: session_cookie(TOKEN)}) as signed_in:
        assert signed_in.get(page).status_code == signed_in.get(data).status_code == 200  # the login form's session


# In the browser


def test_the_list_leads_to_a_campaign_and_its_figures_in_chromium(browser: Any, token_state: HonkState) -> None:
    fleet = make_fleet(token_state)
    with live_server(create_app(token_state)) as url:
        context = browser.new_context()
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))

        page.goto(f"{url}/campaigns")
        assert urlsplit(page.url).path == "/login"  # protected: to the login form first
        assert parse_qs(urlsplit(page.url).query)["next"] == ["/campaigns"]
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/campaigns")

        assert page.inner_text("h1") == "Campaigns"
        rows = page.locator("#campaigns tbody tr")
        assert [rows.nth(i).get_attribute("data-campaign") for i in range(rows.count())] == [
            str(fleet.fresh.id), str(fleet.rolled.id)]
        assert page.title() != "pwned" and page.locator("main script").count() == 0
        assert f"Add CODEOWNERS {HOSTILE}" in rows.first.inner_text()  # shown as text
        row = page.locator(f"tr[data-campaign='{fleet.rolled.id}']")
        assert row.locator("[data-figure=merged]").inner_text() == "2"
        assert row.locator("[data-figure=cost]").inner_text() == "$4.00"

        row.locator(f"a[href='/campaigns/{fleet.rolled.id}']").click()
        page.wait_for_url(f"{url}/campaigns/{fleet.rolled.id}")
        assert page.inner_text("h1") == f"Campaign #{fleet.rolled.id}: Bump lodash to 4.17.21 stopped"

        def figure(name: str) -> str:
            return page.inner_text(f"#figures [data-figure={name}] dd")

        assert [figure(n) for n in ("targets", "opened", "green", "approved", "merged", "failed", "not_needed",
                                    "skipped")] == ["5", "3", "2", "2", "2", "1", "1", "1"]
        assert figure("cost") == "$4.00 of $25.00"
        assert figure("wall") == "6 h 30 min" and figure("median_merge") == "2 h 00 min"
        assert page.inner_text("#note") == "@bob stopped it."
        box = page.locator("#figures").bounding_box()
        assert box is not None and box["width"] > 300  # laid out by base.html's styles, not collapsed
        targets = page.locator("#targets tbody tr")
        assert targets.count() == 6
        four = page.locator("tr[data-repo='acme/four']")
        assert f"tests failed: {HOSTILE}" in four.locator("td.state").inner_text()
        assert four.locator("a.pull").count() == 0  # the javascript: link is not a link
        one = page.locator("tr[data-repo='acme/one']")
        assert one.locator("a.pull").get_attribute("href") == "https://github.com/acme/one/pull/11"
        assert one.locator("a.job").get_attribute("href") == f"/jobs/{fleet.jobs['acme/one']}"
        assert page.title() == f"Campaign #{fleet.rolled.id} · Honk"
        if SCREENSHOTS:
            page.screenshot(path=str(Path(SCREENSHOTS) / f"campaign-{fleet.rolled.id}.png"), full_page=True)
        assert problems == []  # no script errors, nothing the Content-Security-Policy refused
        context.close()
