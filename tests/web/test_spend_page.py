"""`GET /spend` and `GET /api/spend` (app/web/spend.py): spending by month, organization, repository, requester
and model, with a bar per day, protected like the job pages; and `honk spend`, the same figures in a terminal.

The page is checked in a real headless Chromium (Debian's `chromium`, driven by playwright), which skips saying why
without one (and fails instead with HONK_REQUIRE_BROWSER=1, as in CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.policy import days_of
from app.process import HonkState
from app.queue.spending import SpendCall, Spender, SpendLedger
from app.settings import Settings
from app.web.app import create_app
from app.web.auth import SESSION_COOKIE, session_cookie
from tests.support import ROOT, honk_env, live_server

SCREENSHOTS = os.environ.get("HONK_SCREENSHOT_DIR")
TOKEN = "a dashboard token long enough to pass"
MONTH = "2026-03"
POLICY = "caps:\n  repository: {acme/widgets: 10}\n  default: {organization: 50}\ncampaign_budget_usd: 300\n"
# (day of MONTH, repository, requester, model, kind, cost)
CALLS = [(2, "acme/widgets", "alice", "claude-opus-5-5", "agent", 1.50),
         (2, "acme/widgets", "alice", "claude-opus-5-5", "judge", 0.25),
         (9, "acme/widgets", "bob", "claude-sonnet-4-5", "agent", 6.00),
         (9, "globex/app", "carol", "claude-opus-5-5", "agent", 2.00),
         (17, "globex/app", "carol", "claude-opus-5-5", "agent", 0.75),
         (31, "acme/gadgets", "alice", "claude-sonnet-4-5", "agent", 3.50)]


def add_calls(state: HonkState) -> None:
    """MONTH's calls as the ledger keeps them, on the days given; and one call today, through the ledger itself."""
    with state.db.session() as session:
        for day, repository, requester, model, kind, cost in CALLS:
            at = datetime(2026, 3, day, 12, 0)
            session.add(SpendCall(at=at, month=MONTH, day=at.date().isoformat(), installation_id=42,
                                  organization=repository.split("/")[0], repository=repository, requester=requester,
                                  model=model, provider="anthropic", job_id=1, kind=kind, input_tokens=10_000,
                                  output_tokens=1_000, cache_creation_input_tokens=0, cache_read_input_tokens=5_000,
                                  cost_usd=cost))
    from app.queue.spending import Call

    SpendLedger(state.db).record(Spender(42, "acme/widgets", "alice"),
                                 Call("claude-opus-5-5", "anthropic", "agent", 0.5, {"output_tokens": 10}))


@pytest.fixture
def spend_state(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[HonkState]:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    state = HonkState.create(make_settings(honk_database_url=f"sqlite:///{tmp_path / 'spend.db'}",
                                           honk_dashboard_token=TOKEN, honk_policy_file=policy))
    state.db.migrate()
    add_calls(state)
    yield state
    state.db.dispose()


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


# Over HTTP

def test_the_page_and_its_json_are_protected_like_the_job_pages(spend_state: HonkState) -> None:
    with live_server(create_app(spend_state)) as url, httpx.Client(base_url=url, timeout=10) as client:
        page = client.get("/spend", params={"month": MONTH})
        assert page.status_code == 303 and page.headers["location"] == f"/login?next=%2Fspend%3Fmonth%3D{MONTH}"
        assert client.get("/spend", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/spend").status_code == 401
        assert client.get("/spend", headers=bearer()).status_code == 200
        assert client.get("/api/spend", headers=bearer()).status_code == 200
    with live_server(create_app(spend_state)) as url, httpx.Client(
            base_url=url, timeout=10, cookies={SESSION_COOKIE: session_cookie(TOKEN)}) as signed_in:
        shown = signed_in.get("/spend")  # the login form's session
        assert shown.status_code == 200 and "default-src 'none'" in shown.headers["content-security-policy"]


def test_without_a_token_it_is_open_on_loopback_only(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    state = HonkState.create(make_settings(honk_database_url=f"sqlite:///{tmp_path / 'open.db'}"))
    state.db.migrate()
    with live_server(create_app(state)) as url, httpx.Client(base_url=url, timeout=10) as client:
        page = client.get("/spend")
        assert page.status_code == 200 and "No spending policy (HONK_POLICY_FILE)" in page.text
        assert "No model calls in" in page.text
        state.listen_host = "0.0.0.0"
        assert client.get("/spend").status_code == 403 and client.get("/api/spend").status_code == 403
    state.db.dispose()


def test_the_json_has_the_rows_the_days_the_months_and_the_policy(spend_state: HonkState) -> None:
    with live_server(create_app(spend_state)) as url, httpx.Client(base_url=url, timeout=10, headers=bearer()) as c:
        repos = c.get("/api/spend", params={"month": MONTH, "by": "repo"}).json()
        assert [(r["key"], r["calls"], r["cost_usd"], r["cap"]) for r in repos["rows"]] == [
            ("acme/widgets", 3, 7.75, 10.0), ("acme/gadgets", 1, 3.5, None), ("globex/app", 2, 2.75, None)]
        assert repos["total_usd"] == 14.0 and repos["calls"] == 6 and repos["dimension"] == "repository"
        days = {d["day"]: d["cost_usd"] for d in repos["days"]}
        assert len(days) == 31 and days["2026-03-02"] == 1.75 and days["2026-03-09"] == 8.0 and days["2026-03-01"] == 0
        assert repos["months"][-1] == {"month": MONTH, "cost_usd": 14.0, "calls": 6} and len(repos["months"]) == 2
        assert repos["policy"]["campaign_budget_usd"] == 300 and repos["policy"]["problem"] is None
        orgs = c.get("/api/spend", params={"month": MONTH, "by": "org"}).json()
        assert [(r["key"], r["cap"]) for r in orgs["rows"]] == [("acme", 50.0), ("globex", 50.0)]
        models = c.get("/api/spend", params={"month": MONTH, "by": "model"}).json()
        assert [(r["key"], r["cost_usd"]) for r in models["rows"]] == [("claude-sonnet-4-5", 9.5),
                                                                       ("claude-opus-5-5", 4.5)]
        people = c.get("/api/spend", params={"month": MONTH, "by": "requester"}).json()
        assert [r["key"] for r in people["rows"]] == ["bob", "alice", "carol"]
        months = c.get("/api/spend", params={"by": "month"}).json()
        assert [r["key"] for r in months["rows"]][-1] == MONTH and len(months["rows"]) == 2
        this_month = c.get("/api/spend").json()  # default: this month, by repository
        assert [(r["key"], r["cost_usd"]) for r in this_month["rows"]] == [("acme/widgets", 0.5)]
        for bad in ({"month": "March"}, {"month": "2026-13"}, {"by": "colour"}, {"month": "\x00"}):
            answer = c.get("/api/spend", params=bad)
            assert answer.status_code == 400, bad
            assert c.get("/spend", params=bad).status_code == 400


def test_a_broken_policy_is_said_on_the_page(spend_state: HonkState) -> None:
    assert spend_state.settings.honk_policy_file is not None
    spend_state.settings.honk_policy_file.write_text("caps: [\n")
    with live_server(create_app(spend_state)) as url:
        page = httpx.get(f"{url}/spend", params={"month": MONTH}, headers=bearer(), timeout=10)
    assert page.status_code == 200
    assert "The spending policy cannot be read, so jobs will not run until it is fixed" in page.text
    assert "is not valid YAML at line 2" in page.text


def test_honk_spend_prints_the_same_figures(spend_state: HonkState, tmp_path: Path) -> None:
    env = honk_env(tmp_path, HONK_DATABASE_URL=spend_state.settings.database_url,
                   HONK_POLICY_FILE=str(spend_state.settings.honk_policy_file))

    def honk_spend(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app", "spend", *args], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=60)

    table = honk_spend("--month", MONTH, "--by", "repo")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == f"Spending in {MONTH} (UTC) by repository"
    assert lines[2].split() == ["repository", "calls", "tokens", "cost", "cap", "used"]
    assert lines[3].split() == ["acme/widgets", "3", "48,000", "$7.75", "$10", "78%"]
    assert lines[-1].split() == ["total", "6", "96,000", "$14.00"]
    everything = honk_spend("--month", MONTH)
    assert everything.stdout.startswith(f"Spending in {MONTH} (UTC): $14.00 in 6 model calls")
    for title in ("by organization", "by repository", "by requester", "by model"):
        assert f"Spending in {MONTH} (UTC) {title}" in everything.stdout
    as_json = json.loads(honk_spend("--month", MONTH, "--by", "model", "--json").stdout)
    assert [(r["key"], r["cost_usd"]) for r in as_json["rows"]] == [("claude-sonnet-4-5", 9.5),
                                                                     ("claude-opus-5-5", 4.5)]
    overview = json.loads(honk_spend("--month", MONTH, "--json").stdout)
    assert set(overview["by"]) == {"org", "repo", "requester", "model"} and overview["total_usd"] == 14.0
    months = honk_spend("--by", "month")
    assert MONTH in months.stdout and months.stdout.startswith("Spending by month")
    bad = honk_spend("--month", "March")
    assert bad.returncode == 2 and "'March' is not a month written YYYY-MM" in bad.stderr


# In the browser


def test_the_page_shows_a_table_and_a_bar_per_day_in_chromium(browser: Any, spend_state: HonkState) -> None:
    with live_server(create_app(spend_state)) as url:
        context = browser.new_context()
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))

        page.goto(f"{url}/spend?month={MONTH}")
        assert urlsplit(page.url).path == "/login"  # protected: to the login form first
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/spend?month={MONTH}")

        assert page.inner_text("h1") == "Spending"
        assert "Policy: 2 monthly caps; any model; campaign budget $300." in page.inner_text("#policy")
        assert page.inner_text("#total") == "$14.00 in 6 model calls"
        # The table: by repository (the default), dearest first, with the cap and how much of it is used.
        rows = page.locator("#spend-table tbody tr[data-key]")
        assert [rows.nth(i).get_attribute("data-key") for i in range(rows.count())] == [
            "acme/widgets", "acme/gadgets", "globex/app"]
        first = rows.first.inner_text().split("\t")
        assert first[0] == "acme/widgets" and "$7.75" in first and "$10" in first and "78%" in first[-1]
        assert "$14.00" in page.inner_text("#spend-table tr.total")

        # The chart: one bar per day of the month, as tall as what the day cost, each with its figure.
        bars = page.locator("#chart svg rect.bar")
        assert bars.count() == len(days_of(MONTH)) == 31
        heights = {bars.nth(i).get_attribute("data-day"): float(bars.nth(i).get_attribute("height") or 0)
                   for i in range(bars.count())}
        assert heights["2026-03-09"] == max(heights.values()) == 160  # the dearest day fills the chart
        assert heights["2026-03-02"] == pytest.approx(160 * 1.75 / 8, abs=0.1)
        assert heights["2026-03-01"] == 0 and heights["2026-03-31"] > 0
        assert bars.nth(8).locator("title").text_content() == "2026-03-09: $8.00"
        box = page.locator("#chart svg").bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 80  # drawn, not collapsed

        # Another dimension, chosen with the form, and another month from the months table.
        page.select_option("#by", "model")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(f"{url}/spend?month={MONTH}&by=model")
        assert page.locator("#spend-table tbody tr[data-key]").first.get_attribute("data-key") == "claude-sonnet-4-5"
        assert page.locator("#spend-table th").first.inner_text() == "Model"
        if SCREENSHOTS:
            page.goto(f"{url}/spend?month={MONTH}&by=repo")
            page.screenshot(path=str(Path(SCREENSHOTS) / "spend.png"), full_page=True)
        months = page.locator("#months a")
        assert months.count() == 2
        months.first.click()  # the newest: this month
        page.wait_for_load_state()
        assert page.locator("#spend-table tbody tr[data-key]").count() == 1
        assert problems == []  # no script errors, nothing the Content-Security-Policy refused
        context.close()
