"""A Slack thread as a phone shows it: Honk's real messages (built by `app/slack/blocks.py` from the real report
lines) rendered by `tests/slack/preview.py` and opened in a real headless Chromium at a phone's width.

What a phone user must see: every message, the pull request link, the verification and judge lines, the Merge
button on the status message, the preview link, and nothing wider than the screen. With HONK_SCREENSHOTS=<dir> the
test keeps a picture of the thread there (`slack-thread.png`; the README's is made with HONK_SCREENSHOTS=docs).

Like the job-page tests, it skips without Chromium or playwright, and fails instead under HONK_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from app.agent.judge import JudgeVerdict
from app.checkout.extract import VerifierResult
from app.checkout.verify import Verification
from app.jobs.report import judge_line, verification_line
from app.slack import blocks as b
from app.slack.blocks import Pull, Result, Subject
from tests.slack.preview import PHONE_WIDTH, Post, block_html, mrkdwn, thread_html

SCREENSHOTS = os.environ.get("HONK_SCREENSHOTS")

REPO = "acme/widgets"
ALICE, BOB = "U0ALICE01", "U0BOB0002"
PULL = Pull(REPO, 34, "https://github.com/acme/widgets/pull/34", "Make the spinner turn forwards")
SUBJECT = Subject(REPO, "The spinner spins backwards on the checkout page", 33,
                  "https://github.com/acme/widgets/issues/33", 118, "https://honk.example.com/jobs/118")
PREVIEW = "https://pr-34.widgets-preview.example.com/"


def thread() -> tuple[Post, list[Post]]:
    """Alice's request, Honk's status message in its outcome state, then the replies GitHub's news brings."""
    verification = Verification(results=(VerifierResult("tests", "pytest -q", 0),
                                         VerifierResult("lint", "ruff check .", 0)))
    verdict = JudgeVerdict("approve", "The change does what the issue asks: `spin()` now turns forwards, and the "
                           "new test pins it. Nothing else changed.", "claude-opus-5-5", 0.21, {}, False)
    result = Result(PULL, verification=verification_line(verification), judge=judge_line(verdict), cost_usd=1.84,
                    seconds=312)
    users = {ALICE: "alice", BOB: "bob"}
    request = Post("alice", "10:02", text=f"<@U0HONK001> {REPO} the spinner on the checkout page spins backwards; "
                   "make it turn forwards", users={**users, "U0HONK001": "Honk"})
    replies = [
        Post("Honk", "10:02", b.outcome(SUBJECT, result).blocks, app=True, edited=True),
        Post("Honk", "10:09", b.checks_finished(PULL, ["build", "test (3.12)", "Honk"], []).blocks, app=True),
        Post("Honk", "10:11", b.preview_ready(PREVIEW, "preview", PULL).blocks, app=True),
        Post("Honk", "10:26", b.changes_requested("bob", "Please keep the old direction behind a flag for the "
                                                  "kiosk build, it depends on it.", PULL,
                                                  "https://github.com/acme/widgets/pull/34#pullrequestreview-901")
             .blocks, app=True),
        Post("Honk", "10:41", b.merged(PULL, "alice").blocks, app=True),
    ]
    return request, replies


# Without a browser: the renderer itself


def test_mrkdwn_renders_slack_markup_and_escapes_everything_else() -> None:
    out = mrkdwn("*bold* _it_ `a*b*c` <https://x.example/?a=1&amp;b=2|the link> &lt;script&gt; <javascript:x|no>")
    assert "<b>bold</b>" in out and "<i>it</i>" in out and "<code>a*b*c</code>" in out
    assert '<a href="https://x.example/?a=1&amp;b=2">the link</a>' in out
    assert "&lt;script&gt;" in out and "<script" not in out
    assert "javascript:" not in out and out.endswith(" no")
    assert block_html({"type": "divider"}) == '<hr class="block divider">'
    assert "Title" in block_html({"type": "header", "text": {"type": "plain_text", "text": "Title"}})


def test_the_page_is_self_contained() -> None:
    root, replies = thread()
    page = thread_html(root, replies)
    assert "<script" not in page and "src=" not in page and "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page


# In Chromium, at a phone's width


def test_a_thread_reads_on_a_phone(browser: Any) -> None:
    root, replies = thread()
    context = browser.new_context(viewport={"width": PHONE_WIDTH, "height": 844}, device_scale_factor=2,
                                  is_mobile=True, has_touch=True, java_script_enabled=True)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.set_content(thread_html(root, replies, channel="widgets"), wait_until="load")
        messages = page.locator("article.message")
        assert messages.count() == 1 + len(replies)
        for index in range(messages.count()):
            assert messages.nth(index).is_visible()

        status = messages.nth(1)
        status_text = status.inner_text()
        assert "Pull request ready" in status_text and "acme/widgets" in status_text
        assert status.get_by_role("link", name="#34 Make the spinner turn forwards").get_attribute("href") == PULL.url
        assert "Verifiers passed: tests (pytest -q), lint (ruff check .)." in status_text
        assert "The judge approved the change." in status_text
        assert "$1.84" in status_text and "5 min" in status_text and "job #118" in status_text
        merge = status.get_by_role("button", name="Merge")
        assert merge.is_visible() and "primary" in (merge.get_attribute("class") or "")
        assert status.get_by_role("button", name="Open pull request").get_attribute("href") == PULL.url

        assert "Checks passed on #34: build, test (3.12), Honk" in messages.nth(2).inner_text()
        preview = messages.nth(3)
        assert "Preview ready for #34 (preview)" in preview.inner_text()
        assert preview.get_by_role("button", name="Open preview").get_attribute("href") == PREVIEW
        assert preview.get_by_role("link", name=PREVIEW).is_visible()
        review = messages.nth(4)
        assert "bob requested changes on #34" in review.inner_text()
        assert review.locator("blockquote").inner_text().startswith("Please keep the old direction")
        assert review.get_by_role("link", name="Read the review").is_visible()
        assert "Merged by alice: #34 Make the spinner turn forwards" in messages.nth(5).inner_text()

        widths = page.evaluate("""() => ({scroll: document.documentElement.scrollWidth,
            body: document.body.scrollWidth,
            widest: Math.max(...[...document.querySelectorAll('.phone *')]
                .map(e => e.getBoundingClientRect().right))})""")
        assert widths["scroll"] <= PHONE_WIDTH and widths["body"] <= PHONE_WIDTH, widths
        assert widths["widest"] <= PHONE_WIDTH, widths
        assert requests == [], requests  # nothing fetched: fonts, images and styles are all in the page

        if SCREENSHOTS:
            target = Path(SCREENSHOTS)
            target.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(target / "slack-thread.png"), full_page=True)
    finally:
        context.close()
