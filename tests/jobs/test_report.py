"""The words Honk leaves on GitHub: status comment states, pull request body, commit message."""

from __future__ import annotations

from app.agent.judge import JudgeVerdict
from app.checkout.extract import VerifierResult
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
    judged = RunFigures(turns=2, cost_usd=0.4321, judge_cost_usd=0.0312, seconds=5)
    assert judged.line() == "2 turns · 0 tokens (0 read from cache) · $0.43 (judge $0.03) · 5s"
    switched = RunFigures(turns=1, fallback="from turn 2 the run went on with claude-opus-5-5 on Amazon Bedrock")
    assert switched.line().endswith("· 0s · 🔀 from turn 2 the run went on with claude-opus-5-5 on Amazon Bedrock")


def test_without_a_public_url_the_job_is_named_not_linked() -> None:
    assert JobLink(4, None).markdown() == "job #4"


def _result(name: str, command: str, exit_code: int | None, output: str = "") -> VerifierResult:
    return VerifierResult(name, command, exit_code, output, 1.5)


PASSED_LINT = _result("lint", "ruff check .", 0)
FAILED_TEST = _result("test", "python -m pytest -q", 1,
                      "____ test_spin ____\n\n    def test_spin():\n>       assert spin() == 'forwards'\n"
                      "E       assert 'backwards' == 'forwards'\n\ntests/test_spin.py:4: AssertionError\n"
                      "=== short test summary info ===\nFAILED tests/test_spin.py::test_spin - AssertionError\n"
                      "E   ```x\n=== 1 failed in 0.01s ===\n")


def test_pull_body_closes_the_issue_and_lists_each_verifier() -> None:
    failed = Verification((PASSED_LINT, FAILED_TEST))
    body = report.pull_body(summary="Spin forwards now.", issue=7, verification=failed, figures=FIGURES, link=LINK,
                            requester="alice", stopped="the run stopped at its cost budget")
    assert "Closes #7" in body
    assert "❌ Verifiers failed: `test` (exited 1). Passed: `lint`." in body
    assert "- ✓ `lint`: `ruff check .` (passed, 1.5 s)" in body
    assert "- ✗ `test`: `python -m pytest -q` (exited 1, 1.5 s)" in body
    # The failure located, from the extractors, inside a fence that the output cannot close.
    assert "tests/test_spin.py::test_spin" in body and "```x" not in body
    assert "⚠️ the run stopped at its cost budget" in body
    assert "Requested by @alice" in body and report.job_of(body) == 12
    assert "The judge" not in body  # off


def test_verification_lines() -> None:
    assert report.verification_line(Verification((PASSED_LINT, _result("test", "npm test", 0)))) == (
        "✅ Verifiers passed: `lint` (`ruff check .`), `test` (`npm test`).")
    assert report.verification_line(Verification((PASSED_LINT,), ("types",))) == (
        "✅ Verifiers passed: `lint` (`ruff check .`). Skipped (not installed): `types`.")
    assert report.verification_line(Verification(reason="no verifiers found")) == "⚪ Not verified: no verifiers found."


def _verdict(decision: str, reason: str = "Only widgets.py changed, as asked.", cut: bool = False) -> JudgeVerdict:
    return JudgeVerdict(decision, reason, "claude-opus-5-5", 0.02, {"input_tokens": 900, "output_tokens": 40},
                        cut)  # type: ignore[arg-type]


def test_the_judge_in_the_pull_request_quotes_its_reason() -> None:
    veto = _verdict("veto", "The diff also rewrites README.md,\nwhich the issue did not ask for.", cut=True)
    body = report.pull_body(summary="Spin.", issue=7, verification=Verification((PASSED_LINT,)), figures=FIGURES,
                            link=LINK, requester="alice", judgement=veto)
    assert "### The judge" in body and "⚖️ The judge vetoed the change." in body
    assert "> The diff also rewrites README.md,\n> which the issue did not ask for." in body
    assert "It saw a cut diff" in body
    undecided = report.judge_line(_verdict("undecided", "the model answered without calling `verdict`"))
    assert undecided == ("⚖️ The judge could not decide (the model answered without calling `verdict`); the change "
                         "was not judged.")
    assert report.judge_line(None) is None


def test_the_check_runs_conclusion_and_output() -> None:
    passed, failed = Verification((PASSED_LINT,)), Verification((PASSED_LINT, FAILED_TEST))
    assert report.check_conclusion(passed, _verdict("approve")) == "success"
    assert report.check_conclusion(passed, None) == "success"  # the judge is off
    assert report.check_conclusion(failed, _verdict("approve")) == "failure"
    assert report.check_conclusion(passed, _verdict("veto")) == "failure"
    assert report.check_conclusion(passed, _verdict("undecided")) == "neutral"
    assert report.check_conclusion(Verification(reason="none"), None) == "neutral"
    assert report.check_conclusion(None, None) == "neutral"

    output = report.check_output(verification=failed, judgement=_verdict("approve"), figures=FIGURES, link=LINK)
    assert output["title"] == "1 of 2 verifiers failed"
    summary = output["summary"]
    assert "- ✓ `lint`" in summary and "- ✗ `test`" in summary and "⚖️ The judge approved the change." in summary
    assert "[job #12](https://honk.example.com/jobs/12)" in summary and "9 turns" in summary
    assert "tests/test_spin.py::test_spin" in output["text"]
    vetoed = report.check_output(verification=passed, judgement=_verdict("veto"), figures=None, link=LINK)
    assert vetoed["title"] == "1 of 1 verifiers passed; the judge vetoed"


def test_commit_message_has_the_trailers() -> None:
    message = report.commit_message(title="Spin widgets forwards", summary="They spun backwards.", job_id=12,
                                    co_author="alice <3+alice@users.noreply.github.com>")
    assert message == ("Spin widgets forwards\n\nThey spun backwards.\n\nHonk-Job: 12\n"
                       "Co-authored-by: alice <3+alice@users.noreply.github.com>\n")
    fix = report.commit_message(title="Fix the lint", summary="", job_id=13, co_author=None, ci_fix=True)
    assert fix == "Fix the lint\n\nHonk-Job: 13\nHonk-Fix: ci\n"


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
