"""What Honk writes on GitHub: the status comment's states, the pull request body, the commit message.

Pure functions of a run's facts, so every wording is testable and lives in one place. A hidden marker
(`<!-- honk:job=ID -->`) lets a retried job find the comment and pull request it already wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
    cost_usd: float = 0.0
    seconds: float = 0.0

    def line(self) -> str:
        tokens = self.input_tokens + self.output_tokens
        return (f"{self.turns} turns · {tokens:,} tokens ({self.cache_read_tokens:,} read from cache) · "
                f"${self.cost_usd:.2f} · {_duration(self.seconds)}")


@dataclass(frozen=True)
class JobLink:
    job_id: int
    public_url: str | None

    def markdown(self) -> str:
        if self.public_url:
            return f"[job #{self.job_id}]({self.public_url}/jobs/{self.job_id})"
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
    if verification.status == "passed":
        return f"✅ Tests passed: `{verification.command}` ({verification.reason})."
    if verification.status == "failed":
        return f"❌ Tests failed: `{verification.command}` exited {verification.exit_code} ({verification.reason})."
    return f"⚪ Tests not run: {verification.reason}."


def verification_section(verification: Verification) -> str:
    text = "### Verification\n\n" + verification_line(verification)
    if verification.output:
        text += ("\n\n<details><summary>Output (last lines)</summary>\n\n```\n"
                 + _fence_safe(verification.output) + "\n```\n</details>")
    return text


def pull_body(*, summary: str, issue: int, verification: Verification, figures: RunFigures, link: JobLink,
              requester: str, stopped: str | None = None) -> str:
    parts = [clip(summary.strip() or "Changes made by Honk.", 6000), f"Closes #{issue}"]
    if stopped:
        parts.append(f"⚠️ {stopped}")
    parts += [verification_section(verification),
              f"### Run\n\nRequested by @{requester} · {figures.line()} · {link.markdown()}", marker(link.job_id)]
    return "\n\n".join(parts)


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


def commit_message(*, title: str, summary: str, job_id: int, co_author: str | None) -> str:
    body = clip(summary.strip(), 3000)
    trailers = [f"Honk-Job: {job_id}"] + ([f"Co-authored-by: {co_author}"] if co_author else [])
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
