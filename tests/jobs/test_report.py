"""The words Honk leaves on GitHub: status comment states, pull request body, commit message."""

from __future__ import annotations

from app.checkout.verify import Verification
from app.jobs import report
from app.jobs.report import JobLink, Outcome, RunFigures

LINK = JobLink(12, "https://honk.example.com")
FIGURES = RunFigures(turns=9, input_tokens=120_000, output_tokens=3_400, cache_read_tokens=100_000, cost_usd=0.4321,
                     seconds=83)


def test_every_status_carries_the_job_marker_and_link() -> None:
    for body in (report.queued(LINK), report.working(LINK, "running `pytest`"),
                 report.finished(LINK, Outcome("✅ Opened #3"), FIGURES)):
        assert report.job_of(body) == 12
        assert "[job #12](https://honk.example.com/jobs/12)" in body
    assert report.job_of("no marker here") is None


def test_final_status_states_the_figures() -> None:
    body = report.finished(LINK, Outcome("✅ Opened #3: Fix spin", ["✅ Tests passed."]), FIGURES)
    assert body.startswith("✅ Opened #3: Fix spin\n\n✅ Tests passed.")
    assert "9 turns · 123,400 tokens (100,000 read from cache) · $0.43 · 1m 23s" in body


def test_without_a_public_url_the_job_is_named_not_linked() -> None:
    assert JobLink(4, None).markdown() == "job #4"


def test_pull_body_closes_the_issue_and_states_verification() -> None:
    failed = Verification("failed", "python -m pytest -q", "from `.github/honk.yml`", "E   assert 1 == 2\n```x",
                          exit_code=1)
    body = report.pull_body(summary="Spin forwards now.", issue=7, verification=failed, figures=FIGURES, link=LINK,
                            requester="alice", stopped="the run stopped at its cost budget")
    assert "Closes #7" in body
    assert "❌ Tests failed: `python -m pytest -q` exited 1" in body
    assert "E   assert 1 == 2" in body and "```x" not in body  # output cannot break out of its fence
    assert "⚠️ the run stopped at its cost budget" in body
    assert "Requested by @alice" in body and report.job_of(body) == 12


def test_verification_lines() -> None:
    assert report.verification_line(Verification("passed", "npm test", "found `scripts.test` in package.json")) == (
        "✅ Tests passed: `npm test` (found `scripts.test` in package.json).")
    assert report.verification_line(Verification("not_run", None, "no test command found")) == (
        "⚪ Tests not run: no test command found.")


def test_commit_message_has_the_trailers() -> None:
    message = report.commit_message(title="Spin widgets forwards", summary="They spun backwards.", job_id=12,
                                    co_author="alice <3+alice@users.noreply.github.com>")
    assert message == ("Spin widgets forwards\n\nThey spun backwards.\n\nHonk-Job: 12\n"
                       "Co-authored-by: alice <3+alice@users.noreply.github.com>\n")


def test_change_title_prefers_a_plain_summary_line() -> None:
    assert report.change_title("Make widgets spin forwards.\n\nDetails…", "Widgets spin", 7) == (
        "Make widgets spin forwards")
    assert report.change_title("Here is what I did:\n- x", "Widgets spin backwards", 7) == "Widgets spin backwards"
    assert report.change_title("", "", 7) == "Resolve issue #7"
    assert len(report.change_title("", "x" * 200, 7)) == 70


def test_follow_ups_are_listed_in_the_pull_request_body() -> None:
    body = "Spin forwards.\n\nCloses #7\n\n" + report.marker(12)
    once = report.with_follow_up(body, "Follow-up job #13 · 2 turns")
    assert once.index("### Follow-ups\n\n- Follow-up job #13") < once.index(report.marker(12))
    twice = report.with_follow_up(once, "Follow-up job #14 · 1 turn")
    assert twice.count("### Follow-ups") == 1 and "- Follow-up job #14 · 1 turn\n- Follow-up job #13" in twice
    assert report.with_follow_up("no marker", "x").endswith("### Follow-ups\n\n- x")
