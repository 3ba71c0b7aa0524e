"""The job pages, `/jobs` and `/jobs/{id}`.

In a real headless Chromium (Debian's `chromium`, driven by playwright) against a real `honk serve` that has
run real jobs with the local GitHub and the scripted model, as tests/jobs/test_resolve_issue.py does: the list, the
filters, the job page, and the dashboard token's login form. Over plain HTTP: escaping of hostile text,
pagination, filters, bearer tokens and cookies.

The browser tests skip, saying why, without Chromium or playwright; with HONK_REQUIRE_BROWSER=1 (set by .ci/run)
they fail instead, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.intake.triggers import TriggerRules, decide
from app.process import HonkState
from app.settings import Settings
from app.web.app import create_app
from app.web.auth import SESSION_COOKIE, session_cookie
from tests.fakes.github import FakeGitHub
from tests.fakes.messages_api import FakeMessagesAPI, bash, edit, end, reply, thinking, verdict
from tests.support import HonkProcess, app_private_key, free_port, honk_env, labeled_payload, live_server, wait_for

# Read at import time: the make_settings fixture clears HONK_* variables from the environment.
SCREENSHOTS = os.environ.get("HONK_SCREENSHOT_DIR")  # where to keep a picture of the job page, if anywhere
TOKEN = "correct horse battery staple"
REPO, OTHER = "acme/widgets", "acme/gadgets"
HOSTILE = "<script>document.title='pwned'</script>"
FIX = (reply(thinking("Read the code first."), bash(f"cat widgets.py; echo \"{HOSTILE}\"")),
       reply(edit("str_replace", "widgets.py", old_str="backwards", new_str="forwards")),
       end("Make widgets spin forwards\n\nspin() returned 'backwards'; it now returns 'forwards'."))


# The browser


# A real Honk that has run real jobs

@dataclass
class Site:
    url: str
    github: FakeGitHub
    fixed: int  # a job that opened a pull request, asked for in a comment
    refused: int  # a reader's label: not authorised
    broken: int  # another repository with a bad .github/honk.yml: failed
    comment_url: str
    issue_url: str

    def job(self, job_id: int) -> dict[str, Any]:
        return httpx.get(f"{self.url}/api/jobs/{job_id}", headers=bearer(TOKEN), timeout=10).json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed; the jobs these pages show need the sandbox")
    tmp = tmp_path_factory.mktemp("pages")
    key = app_private_key()
    github = FakeGitHub(app_id=4242, private_key_pem=key, permissions={"alice": "write", "bob": "read"},
                        root=tmp / "github")
    github.create_repo(REPO, {"widgets.py": "def spin():\n    return 'backwards'\n",
                              ".github/honk.yml": "test: grep -q forwards widgets.py\n"})
    github.create_repo(OTHER, {"gadget.py": "x = 1\n", ".github/honk.yml": "budget:\n  max_turns: -3\n"})
    url = f"http://127.0.0.1:{free_port()}"
    judge = verdict("approve", "The diff <b>only</b> flips the return value, as asked.")
    with github.serve() as github_url, FakeMessagesAPI(judge_default=judge) as model:
        github.webhook_target(f"{url}/api/github/webhooks", "pages-secret")
        env = honk_env(tmp, GITHUB_APP_ID="4242", GITHUB_PRIVATE_KEY=key.replace("\n", "\\n"),
                       GITHUB_API_URL=github_url, GITHUB_WEBHOOK_SECRET="pages-secret",
                       HONK_DATABASE_URL=f"sqlite:///{tmp / 'honk.db'}", HONK_POLL_SECONDS="0.1",
                       HONK_DASHBOARD_TOKEN=TOKEN, **model.env())
        honk = HonkProcess(["serve", "--port", url.rsplit(":", 1)[1]], env, tmp, tmp / "honk.log")
        try:
            honk.wait_http(f"{url}/healthz")
            model.script(*FIX)
            issue = github.create_issue(REPO, "Widgets spin backwards", "They should spin forwards.", user="alice")
            comment = github.issue_comment_created(REPO, issue, "@honk please fix this", "alice")
            reader = github.create_issue(REPO, "Make widgets fly", "", user="bob")
            gadget = github.create_issue(OTHER, "Gadgets", "", user="alice")
            # Three subjects, so the jobs run side by side; only the first one talks to the model.
            jobs = [github.deliver("issue_comment", comment).json()["job"],
                    github.deliver("issues", github.issues_labeled(REPO, reader, "honk", "bob")).json()["job"],
                    github.deliver("issues", github.issues_labeled(OTHER, gadget, "honk", "alice")).json()["job"]]
            site = Site(url, github, *jobs, comment["comment"]["html_url"], comment["issue"]["html_url"])
            for job_id in jobs:
                _finished(site, job_id, honk)
            yield site
        finally:
            honk.stop()
    github.close()


def _finished(site: Site, job_id: int, honk: HonkProcess) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = site.job(job_id)
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None
    try:
        return wait_for(done, timeout=60, interval=0.1, what=f"job {job_id}")
    except AssertionError:
        raise AssertionError(f"job {job_id} did not finish: {site.job(job_id)}\n{honk.output()[-4000:]}") from None


def signed_in(browser: Any, site: Site) -> Any:
    """A page in a fresh browser context that has signed in with the login form."""
    page = browser.new_context().new_page()
    page.goto(f"{site.url}/login")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/jobs")
    return page


def listed(page: Any) -> list[int]:
    return [int(row.get_attribute("data-job")) for row in page.query_selector_all("tr[data-job]")]


# In the browser

def test_the_login_form_opens_the_pages_and_a_wrong_token_does_not(browser: Any, site: Site) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{site.url}/jobs/{site.fixed}")
    assert urlsplit(page.url).path == "/login"  # sent to the form, not shown a bare 401
    assert parse_qs(urlsplit(page.url).query)["next"] == [f"/jobs/{site.fixed}"]

    page.fill("#token", "not the token")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 401
    assert "not the dashboard token" in page.inner_text("[role=alert]")
    assert context.cookies() == []

    page.fill("#token", TOKEN)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("button[type=submit]")
    # The form's own origin, not `null` (which a Referrer-Policy of no-referrer would make it, and the
    # cross-site check refuse).
    assert answer.value.request.header_value("origin") == site.url
    page.wait_for_url(f"{site.url}/jobs/{site.fixed}")  # back where the user was going
    assert page.inner_text("h1").startswith(f"Job #{site.fixed}")
    [cookie] = context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (SESSION_COOKIE, True, "Strict")
    assert TOKEN not in cookie["value"] and TOKEN.replace(" ", "+") not in cookie["value"]

    page.click("text=Sign out")
    page.wait_for_url(f"{site.url}/login")
    page.goto(f"{site.url}/jobs")
    assert urlsplit(page.url).path == "/login"
    context.close()


def test_the_list_shows_finished_jobs_newest_first_and_filters_them(browser: Any, site: Site) -> None:
    page = signed_in(browser, site)
    assert listed(page) == [site.broken, site.refused, site.fixed]
    row = page.inner_text(f"tr[data-job='{site.fixed}']")
    job = site.job(site.fixed)
    for shown in ("succeeded", REPO, "#1", "Widgets spin backwards", "alice", f"{job['totals']['turns']}",
                  f"${job['totals']['cost_usd']:.4f}"):
        assert shown in row, (shown, row)
    assert page.get_attribute(f"tr[data-job='{site.fixed}'] a[href*='/issues/']", "href") == site.issue_url

    page.select_option("#status", "failed")
    page.click("text=Filter")
    page.wait_for_url(re.compile(r"status=failed"))
    assert listed(page) == [site.broken]
    assert OTHER in page.inner_text(f"tr[data-job='{site.broken}']")

    page.select_option("#status", "")
    page.select_option("#repo", REPO)
    page.click("text=Filter")
    page.wait_for_url(re.compile(r"repo=acme%2Fwidgets"))
    assert listed(page) == [site.refused, site.fixed]

    page.click(f"a[href='/jobs/{site.fixed}']")
    page.wait_for_url(f"{site.url}/jobs/{site.fixed}")
    page.context.close()


def test_the_job_page_shows_trigger_transcript_verification_diff_and_cost(browser: Any, site: Site) -> None:
    page = signed_in(browser, site)
    page.goto(f"{site.url}/jobs/{site.fixed}")
    job = site.job(site.fixed)
    [pull] = site.github.pulls(REPO)

    assert "succeeded" in page.inner_text("h1")
    assert page.get_attribute("a.trigger", "href") == site.comment_url  # the comment that asked
    assert "@honk please fix this" in page.inner_text("blockquote")

    # The transcript: thinking folded, the model's words, each tool call with its result behind <details>.
    thinking_block = page.locator("details.thinking").first
    assert not thinking_block.locator("pre").is_visible()
    thinking_block.locator("summary").click()
    assert "Read the code first." in thinking_block.inner_text()
    assert "Make widgets spin forwards" in page.inner_text("main")
    tools = page.locator("details.entry.tool")
    assert tools.count() == 2
    first = tools.nth(0)
    assert "$ cat widgets.py" in first.locator("summary").inner_text()
    first.locator("summary").click()
    result = first.locator("pre.result").inner_text()
    assert "def spin():" in result
    assert HOSTILE in result  # the command's output is text on the page, never markup
    assert page.title() != "pwned" and page.locator("main script").count() == 0
    assert "str_replace widgets.py" in tools.nth(1).locator("summary").inner_text()

    assert "passed" in page.inner_text(".verification") and "grep -q forwards widgets.py" in page.inner_text(
        ".verification")
    # The judge's verdict, its reason as text.
    judged = page.locator(".judgement")
    assert judged.count() == 1 and "approve" in judged.first.inner_text()
    assert "The diff <b>only</b> flips the return value" in judged.first.locator("blockquote").inner_text()
    diff = page.inner_text("pre.diff")
    assert "-    return 'backwards'" in diff and "+    return 'forwards'" in diff
    assert page.get_attribute("a.pull", "href") == pull["html_url"]

    # Tokens and cost: one row per model turn, and the total, the same figures as the JSON.
    rows = page.locator("table.costs tbody tr")
    assert rows.count() == len(job["per_turn"]) + 1 == 4
    total = job["totals"]
    assert total["cost_usd"] > 0 and f"${total['cost_usd']:.4f}" in page.inner_text(".cost-total")
    assert f"{total['output_tokens']:,}" in rows.last.inner_text()
    assert f"${job['per_turn'][0]['cost_usd']:.4f}" in rows.first.inner_text()

    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / f"job-{site.fixed}.png"), full_page=True)
    page.context.close()


# Over plain HTTP, against the same real Honk

def test_scripts_use_the_bearer_token_and_wrong_tokens_are_refused(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=10) as client:
        page = client.get("/jobs", headers=bearer(TOKEN))
        assert page.status_code == 200 and f"/jobs/{site.fixed}" in page.text
        assert client.get(f"/jobs/{site.fixed}", headers=bearer(TOKEN)).status_code == 200
        assert client.get(f"/api/jobs/{site.fixed}", headers=bearer(TOKEN)).json()["id"] == site.fixed

        for path in ("/jobs", f"/jobs/{site.fixed}", f"/api/jobs/{site.fixed}"):
            wrong = client.get(path, headers=bearer("correct horse"))
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer", path
        assert "Widgets" not in client.get("/jobs", headers=bearer("nope")).text
        bare = client.get("/jobs?status=failed")
        assert bare.status_code == 303 and bare.headers["location"] == "/login?next=%2Fjobs%3Fstatus%3Dfailed"
        assert client.get(f"/api/jobs/{site.fixed}").status_code == 401  # the JSON API never redirects

        assert client.post("/login", data={"token": "nope", "next": "/jobs"}).status_code == 401
        login = client.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
        assert login.status_code == 303 and login.headers["location"] == "/jobs"  # never off-site
        cookie = login.cookies[SESSION_COOKIE]
        assert TOKEN not in cookie
        set_cookie = login.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    def with_cookie(value: str) -> int:
        with httpx.Client(base_url=site.url, timeout=10, cookies={SESSION_COOKIE: value}) as fresh:
            return fresh.get(f"/api/jobs/{site.fixed}").status_code
    assert with_cookie(cookie) == 200  # the login form's session works for the JSON too
    for forged in (TOKEN, "99999999999.00", session_cookie("another token"), cookie + "0",
                   session_cookie(TOKEN, now=0)):  # the raw token, a guess, another key, tampered, expired
        assert with_cookie(forged) == 401, forged


# Over plain HTTP, in process, on SQLite and PostgreSQL

def _add_job(state: HonkState, *, repo: str = REPO, number: int = 7, title: str = "Widgets spin backwards",
             sender: str = "alice") -> int:
    payload = labeled_payload(repo=repo, number=number, sender=sender)
    payload["issue"]["title"] = title
    request = decide("issues", payload, TriggerRules.for_settings(state.settings, state.app_slug), f"d-{repo}-{number}")
    return state.queue.enqueue(request)  # type: ignore[arg-type]


def _run(state: HonkState, job_id: int, events: list[tuple[str, dict[str, Any]]], *, fail: str | None = None) -> None:
    claimed = state.queue.claim("test-worker")
    assert claimed is not None and claimed.id == job_id
    for kind, data in events:
        state.queue.append_event(job_id, kind, data)
    if fail:
        state.queue.fail(job_id, "test-worker", fail, retry=False)
    else:
        state.queue.complete(job_id, "test-worker", {"outcome": "pull_request"})


def _response(turn: int, text: str, cost: float) -> tuple[str, dict[str, Any]]:
    return "model.response", {"turn": turn, "stop_reason": "end_turn", "content": [{"type": "text", "text": text}],
                              "usage": {"input_tokens": 1000 * turn, "output_tokens": 10 * turn,
                                        "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
                              "cost_usd": cost, "total_cost_usd": cost, "duration_s": 0.5}


def test_a_hostile_transcript_is_shown_as_text(state: HonkState) -> None:
    job_id = _add_job(state, title=f"Fix {HOSTILE}")
    _run(state, job_id, [
        ("agent.start", {"model": "claude-opus-5-5", "system": "<b>system</b>", "tools": [{"name": "bash"}],
                         "budget": {"max_turns": 80}, "sandbox": "bwrap"}),
        _response(1, "<img src=x onerror=alert(1)>", 0.25),
        ("tool.call", {"id": "t1", "name": "bash", "input": {"command": f"echo \"{HOSTILE}\""}}),
        ("tool.result", {"id": "t1", "name": "bash", "is_error": False, "content": HOSTILE + "\n" + "x\n" * 500,
                         "duration_s": 0.1}),
        ("git.pushed", {"branch": "honk/x", "commit": "abc", "files": ["<i>.py"], "diff": f"+{HOSTILE}\n"}),
        ("pull_request", {"number": 3, "url": "javascript:alert(1)", "opened": True, "draft": False}),
    ])
    with live_server(create_app(state)) as url:
        page = httpx.get(f"{url}/jobs/{job_id}")
        listing = httpx.get(f"{url}/jobs")
    assert page.status_code == 200
    for html in (page.text, listing.text):
        assert "<script" not in html and "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert "<img" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "<i>" not in page.text and "<b>system" not in page.text
    assert "javascript:" not in page.text  # an unsafe link is text, not an href
    assert "461 more lines" in page.text  # long output folded behind a <details>
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script at all
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_the_list_paginates_newest_first(state: HonkState) -> None:
    ids = [_add_job(state, number=n) for n in range(1, 8)]
    with live_server(create_app(state)) as url, httpx.Client(base_url=url, timeout=10) as client:
        pages = [client.get("/jobs", params={"per": 3, "page": n}).text for n in (1, 2, 3)]
        beyond = client.get("/jobs", params={"per": 3, "page": 9}).text
        default = client.get("/jobs", params={"page": "junk"}).text
    shown = [[int(i) for i in re.findall(r'<tr data-job="(\d+)"', html)] for html in pages]
    assert shown == [ids[6:3:-1], ids[3:0:-1], ids[:1]]
    assert "older →" in pages[0] and "older →" not in pages[2] and "← newer" in pages[2]
    assert 'href="/jobs?per=3&amp;page=2"' in pages[0] and "page 1 of 3 · 7 jobs" in pages[0]
    assert "<tr data-job" not in beyond and "No jobs" in beyond
    assert len(re.findall(r"<tr data-job", default)) == 7


def test_the_list_filters_by_status_and_repository(state: HonkState) -> None:
    done = _add_job(state, number=1)
    _run(state, done, [_response(1, "one", 0.5), _response(2, "two", 0.25)])
    broken = _add_job(state, repo=OTHER, number=2)
    _run(state, broken, [], fail="it broke")
    waiting = _add_job(state, number=3)
    with live_server(create_app(state)) as url, httpx.Client(base_url=url, timeout=10) as client:
        def shown(**params: Any) -> list[int]:
            return [int(i) for i in re.findall(r'<tr data-job="(\d+)"', client.get("/jobs", params=params).text)]
        assert shown() == [waiting, broken, done]
        assert shown(status="succeeded") == [done]
        assert shown(status="failed") == [broken]
        assert shown(status="queued", repo=REPO) == [waiting]
        assert shown(repo=OTHER) == [broken]
        assert shown(status="failed", repo=REPO) == []
        assert shown(status="bogus") == [waiting, broken, done]  # an unknown status is no filter
        row = client.get("/jobs", params={"status": "succeeded"}).text
        data = client.get(f"/api/jobs/{done}").json()
    assert '<option value="acme/gadgets">' in row and '<option value="succeeded" selected>' in row
    assert ">2</td>" in row and "$0.7500" in row  # turns and cost summed from the transcript
    assert [t["turn"] for t in data["per_turn"]] == [1, 2] and data["totals"]["cost_usd"] == 0.75
    assert data["totals"]["input_tokens"] == 3000 and data["totals"]["output_tokens"] == 30


def test_filters_survive_paging(state: HonkState) -> None:
    ids = [_add_job(state, number=n) for n in range(1, 4)]
    _add_job(state, repo=OTHER, number=9)
    with live_server(create_app(state)) as url:
        first = httpx.get(f"{url}/jobs", params={"repo": REPO, "per": 2}).text
    assert 'href="/jobs?repo=acme%2Fwidgets&amp;per=2&amp;page=2"' in first
    assert [int(i) for i in re.findall(r'<tr data-job="(\d+)"', first)] == [ids[2], ids[1]]


@pytest.fixture
def loopback_state(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[HonkState]:
    state = HonkState.create(make_settings(honk_database_url=f"sqlite:///{tmp_path / 'pages.db'}"))
    state.db.migrate()
    yield state
    state.db.dispose()


def test_without_a_token_the_pages_are_open_on_loopback_and_off_beyond_it(loopback_state: HonkState) -> None:
    job_id = _add_job(loopback_state)
    with live_server(create_app(loopback_state)) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/jobs").status_code == client.get(f"/jobs/{job_id}").status_code == 200
        assert client.get("/login?next=/jobs/1").headers["location"] == "/jobs/1"  # nothing to sign in to
        missing = client.get("/jobs/999999")
        assert missing.status_code == 404 and "There is no job 999999" in missing.text
        loopback_state.listen_host = "0.0.0.0"
        off = client.get("/jobs")
        assert off.status_code == 403 and "HONK_DASHBOARD_TOKEN" in off.text
        assert client.get(f"/jobs/{job_id}").status_code == 403
        assert client.get(f"/api/jobs/{job_id}").status_code == 403
        assert client.post("/login", data={"token": "x"}).status_code == 403
