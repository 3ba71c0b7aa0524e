"""What Honk writes on GitHub: the status comment's states, the pull request body, the commit message.

Pure functions of a run's facts, so every wording is testable and lives in one place. A hidden marker
(`<!-- honk:job=ID -->`) lets a retried job find the comment and pull request it already wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.agent.judge import JudgeVerdict
from app.checkout.extract import VerifierResult
from app.checkout.verify import Verification

MARKER = "<!-- honk:job={job} -->"
_MARKER_RE = re.compile(r"<!-- honk:job=(\d+) -->")


def marker(job_id: int) -> str:
    return MARKER.format(job=job_id)


def job_of(body: str | None) -> int | None:
    found = _MARKER_RE.search(body or "")
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class RunFigures:
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0  # the judge's included
    seconds: float = 0.0
    judge_cost_usd: float = 0.0
    fallback: str | None = None  # the provider switch, when the run's provider kept failing (AgentResult.fallback)

    def line(self) -> str:
        tokens = self.input_tokens + self.output_tokens
        judge = f" (judge ${self.judge_cost_usd:.2f})" if self.judge_cost_usd else ""
        switched = f" · 🔀 {self.fallback}" if self.fallback else ""
        return (f"{self.turns} turns · {tokens:,} tokens ({self.cache_read_tokens:,} read from cache) · "
                f"${self.cost_usd:.2f}{judge} · {_duration(self.seconds)}{switched}")


@dataclass(frozen=True)
class JobLink:
    job_id: int
    public_url: str | None

    @property
    def url(self) -> str | None:
        return f"{self.public_url}/jobs/{self.job_id}" if self.public_url else None

    def markdown(self) -> str:
        if self.url:
            return f"[job #{self.job_id}]({self.url})"
        return f"job #{self.job_id}"


def queued(link: JobLink) -> str:
    return f"👀 On it: queued as {link.markdown()}.\n\n{marker(link.job_id)}"


def working(link: JobLink, step: str) -> str:
    return f"⏳ Working on it ({link.markdown()}): {step}…\n\n{marker(link.job_id)}"


@dataclass(frozen=True)
class Outcome:
    """The end of a run, as the status comment states it."""

    headline: str  # one sentence: what happened
    details: list[str] = field(default_factory=list)  # further paragraphs: what was verified, what to do next


def finished(link: JobLink, outcome: Outcome, figures: RunFigures | None) -> str:
    parts = [outcome.headline, *outcome.details]
    footer = link.markdown() + (f" · {figures.line()}" if figures else "")
    return "\n\n".join([*parts, f"<sub>{footer}</sub>", marker(link.job_id)])


def verification_line(verification: Verification) -> str:
    """One line for the status comment: which verifiers passed or failed, or why none ran."""
    skipped = (f" Skipped (not installed): {_names(verification.skipped)}." if verification.skipped else "")
    if verification.status == "passed":
        passed = ", ".join(f"`{r.name}` (`{_short(r.command)}`)" for r in verification.results)
        return f"✅ Verifiers passed: {passed}.{skipped}"
    if verification.status == "failed":
        failing = ", ".join(f"`{r.name}` ({_how(r)})" for r in verification.failing)
        passed = [r.name for r in verification.results if r.passed]
        return (f"❌ Verifiers failed: {failing}." + (f" Passed: {_names(passed)}." if passed else "") + skipped)
    return f"⚪ Not verified: {verification.reason}."


def judge_line(judgement: JudgeVerdict | None) -> str | None:
    """The judge's verdict in one paragraph (its reason quoted), or None when the judge is off."""
    if judgement is None:
        return None
    cut = " It saw a cut diff: the change is too large to read whole." if judgement.diff_cut else ""
    reason = _quoted(judgement.reason)
    if judgement.decision == "approve":
        return f"⚖️ The judge approved the change.{cut}\n\n{reason}"
    if judgement.decision == "veto":
        return f"⚖️ The judge vetoed the change.{cut}\n\n{reason}"
    return f"⚖️ The judge could not decide ({judgement.reason}); the change was not judged.{cut}"


def verification_section(verification: Verification) -> str:
    lines = ["### Verification", "", verification_line(verification)]
    if verification.results:
        lines.append("")
        lines += [f"- {'✓' if r.passed else '✗'} `{r.name}`: `{_fence_safe(r.command)}` "
                  f"({_how(r)}, {r.duration_s:.1f} s)" for r in verification.results]
    if verification.failed:
        lines += ["", "<details><summary>What failed</summary>", "", "```",
                  _fence_safe(verification.verdict()), "```", "</details>"]
    return "\n".join(lines)


def pull_body(*, summary: str, issue: int | None, verification: Verification, figures: RunFigures, link: JobLink,
              requester: str, stopped: str | None = None, judgement: JudgeVerdict | None = None,
              part_of: str | None = None) -> str:
    """`issue` is the issue it closes; a campaign's pull request closes none and says what it is `part_of`."""
    parts = [clip(summary.strip() or "Changes made by Honk.", 6000),
             *([f"Closes #{issue}"] if issue is not None else []), *([part_of] if part_of else [])]
    if stopped:
        parts.append(f"⚠️ {stopped}")
    parts.append(verification_section(verification))
    if (said := judge_line(judgement)) is not None:
        parts.append("### The judge\n\n" + said)
    parts += [f"### Run\n\nRequested by @{requester} · {figures.line()} · {link.markdown()}", marker(link.job_id)]
    return "\n\n".join(parts)


# The `Honk` check run on every commit Honk pushes

CHECK_NAME = "Honk"
CHECK_TEXT_CHARS = 60_000  # GitHub takes 65,535 characters of output text


def check_conclusion(verification: Verification | None, judgement: JudgeVerdict | None) -> str:
    """`failure` when a verifier failed or the judge vetoed; `success` when verifiers ran and passed and the
    judge (if on) approved; `neutral` when nothing was verified or the judge could not decide."""
    if (verification and verification.failed) or (judgement and judgement.decision == "veto"):
        return "failure"
    if verification is None or verification.status == "not_run" or (judgement and judgement.decision == "undecided"):
        return "neutral"
    return "success"


def check_output(*, verification: Verification | None, judgement: JudgeVerdict | None, figures: RunFigures | None,
                 link: JobLink, note: str | None = None) -> dict[str, str]:
    """The check run's output: a title, a summary listing each verifier and the judge's verdict with the figures
    and the job page, and the failures as text."""
    conclusion = check_conclusion(verification, judgement)
    if verification is None:
        title = "Not verified"
    elif verification.failed:
        title = f"{len(verification.failing)} of {len(verification.results)} verifiers failed"
    elif verification.status == "passed":
        title = f"{len(verification.results)} of {len(verification.results)} verifiers passed"
    else:
        title = "Not verified"
    if judgement and judgement.decision == "veto":
        title += "; the judge vetoed"
    summary = [verification_section(verification).removeprefix("### Verification\n\n") if verification
               else "Nothing was verified."]
    if (said := judge_line(judgement)) is not None:
        summary.append(said)
    if note:
        summary.append(note)
    summary.append(f"{link.markdown()}" + (f" · {figures.line()}" if figures else "") + f" · {conclusion}")
    text = verification.verdict() if verification and verification.failed else ""
    return {"title": title, "summary": clip("\n\n".join(summary), CHECK_TEXT_CHARS),
            "text": clip(text, CHECK_TEXT_CHARS)}


def _how(result: VerifierResult) -> str:
    if result.passed:
        return "passed"
    if result.timed_out:
        return "timed out"
    return "did not finish" if result.exit_code is None else f"exited {result.exit_code}"


def _short(command: str, limit: int = 60) -> str:
    command = _fence_safe(" ".join(command.split())).replace("`", "'")
    return command if len(command) <= limit else command[:limit - 1] + "…"


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" for line in clip(text.strip() or "(no reason given)", 2000).splitlines())


def with_follow_up(body: str, line: str) -> str:
    """The pull request body with one more line under "### Follow-ups" (the section is made on first use)."""
    bullet = f"- {line}"
    if "### Follow-ups\n\n" in body:
        return body.replace("### Follow-ups\n\n", f"### Follow-ups\n\n{bullet}\n", 1)
    section = f"### Follow-ups\n\n{bullet}"
    found = _MARKER_RE.search(body)
    if found:
        return body[:found.start()] + section + "\n\n" + body[found.start():]
    return f"{body}\n\n{section}"


CI_FIX_TRAILER = "Honk-Fix: ci"  # marks the commits of CI fixes, which count towards HONK_CI_FIX_ROUNDS


def commit_message(*, title: str, summary: str, job_id: int, co_author: str | None, ci_fix: bool = False) -> str:
    body = clip(summary.strip(), 3000)
    trailers = ([f"Honk-Job: {job_id}"] + ([CI_FIX_TRAILER] if ci_fix else [])
                + ([f"Co-authored-by: {co_author}"] if co_author else []))
    return f"{title}\n\n" + (f"{body}\n\n" if body else "") + "\n".join(trailers) + "\n"


def change_title(summary: str, issue_title: str, issue: int) -> str:
    """A short title for the commit and pull request: the summary's first line if it is a plain sentence,
    else the issue's title."""
    first = next((line.strip(" #*-") for line in summary.splitlines() if line.strip()), "")
    if 10 <= len(first) <= 72 and not first.endswith(":"):
        return first.rstrip(".")
    title = issue_title.strip() or f"Resolve issue #{issue}"
    return title if len(title) <= 72 else title[:69].rstrip() + "…"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    return text if len(text) <= limit else text[:limit].rstrip() + f"\n\n[… {len(text) - limit} more characters]"


def _fence_safe(text: str) -> str:
    return text.replace("```", "`\u200b``")
