"""What Honk says in Slack, as Block Kit: pure functions returning a `Message` (`blocks`, fallback `text`).

Written for a phone: at most a handful of blocks, no tables, the important line first, long texts cut. Every
text from a person, the model or GitHub goes through `escape` (Slack reads `&`, `<` and `>` as markup, so a
task saying `<@U123>` or `<!channel>` would otherwise ping people), and every link is built here by `link`.
The fallback `text` is what notifications and screen readers show, so each message has one.

Buttons carry no authority: the Merge button's value only names the pull request (`merge_value`), and whoever
clicks is checked again, as a linked GitHub writer, before anything is merged. Slack sends an interaction for a
link button too (`honk_open`, `honk_preview`, `honk_link`), which the route acknowledges and ignores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from app.slack.commands import parse_repo

SECTION_LIMIT = 3000  # Slack: characters of a section's text
BUTTON_LIMIT = 75  # characters of a button's label
ANSWER_LIMIT = 1500  # characters of the model's answer shown: about two phone screens
REASON_LIMIT = 600
SUMMARY_LIMIT = 300  # a review's summary in the "changes requested" reply
JUDGE_LIMIT = 400
NAMES_SHOWN = 6  # check names listed before "and N more"
URL_LIMIT = 2000  # characters of an address made a link or a button; longer ones are shown, not linked

MERGE_ACTION = "honk_merge"
OPEN_ACTION = "honk_open"
PREVIEW_ACTION = "honk_preview"
LINK_ACTION = "honk_link"


class Message(NamedTuple):
    """A message to post or edit: `blocks, text = message` unpacks it."""

    blocks: list[dict[str, Any]]
    text: str


@dataclass(frozen=True)
class Subject:
    """What a thread is about: the repository, the task's title, the issue Honk opened, the job working on it."""

    repo: str
    title: str
    issue_number: int | None = None
    issue_url: str | None = None
    job_id: int | None = None
    job_url: str | None = None


@dataclass(frozen=True)
class Pull:
    repo: str
    number: int
    url: str
    title: str = ""


@dataclass(frozen=True)
class Result:
    """The end of a run with something to show. `verification` is one line (the status comment's
    `verification_line`; GitHub Markdown is fine), `judge` the judge's, if it judged."""

    pull: Pull | None
    draft: bool = False
    verification: str = ""
    judge: str | None = None
    cost_usd: float | None = None
    seconds: float | None = None
    stopped: str | None = None  # why the run stopped early, if it did


# ------------------------------------------------------------------------------------------------ text


def escape(text: str) -> str:
    """Text Slack shows as written: its three control characters as entities (Slack's own rule)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a line or word near the end when there is one, with an ellipsis."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    for sep in ("\n", " "):
        at = cut.rfind(sep)
        if at > limit * 0.7:
            cut = cut[:at]
            break
    return cut.rstrip() + "…"


def link(url: str | None, label: str) -> str:
    """`<url|label>` with the label escaped; only http(s) addresses (of at most `URL_LIMIT` characters) become
    links, else the label stands alone."""
    shown = escape(label)
    if url is None or not _plain_url(url):
        return shown
    return f"<{escape(url).replace('|', '%7C')}|{shown.replace('|', '¦')}>"


_MD_LINK = re.compile(r"\[([^\]\n]{1,300})\]\((https?://[^\s)]+)\)")
_MD_BOLD = re.compile(r"\*\*([^*\n]+)\*\*")
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.M)
_HTML_COMMENT = re.compile(r"&lt;!--.*?--&gt;", re.S)


_QUOTE = re.compile(r"(?m)^&gt; ")


def mrkdwn(text: str) -> str:
    """GitHub Markdown from the job or the model, escaped, then its links, bold and headings in Slack's mrkdwn
    (code spans, quotes and lists read the same in both)."""
    out = _HTML_COMMENT.sub("", escape(text))
    out = _MD_LINK.sub(lambda m: f"<{m.group(2).replace('|', '%7C')}|{m.group(1).replace('|', '¦')}>", out)
    out = _MD_BOLD.sub(r"*\1*", out)
    out = _QUOTE.sub("> ", out)  # a quote (the judge's reason) stays a quote: only its marker was escaped
    return _MD_HEADING.sub(r"*\1*", out)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT) or " "}}


def _context(*parts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(" · ".join(p for p in parts if p),
                                                                             SECTION_LIMIT)}]}


def _button(label: str, action_id: str, *, url: str | None = None, value: str | None = None,
            style: str | None = None, confirm: dict[str, Any] | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "action_id": action_id,
                              "text": {"type": "plain_text", "text": clip(label, BUTTON_LIMIT), "emoji": True}}
    if url:
        button["url"] = url
    if value is not None:
        button["value"] = value
    if style:
        button["style"] = style
    if confirm:
        button["confirm"] = confirm
    return button


def _fallback(text: str) -> str:
    """Notification text: one line, escaped (Slack parses it as mrkdwn too), short."""
    return clip(escape(" ".join(text.split())), 300) or "Honk"


def _plain_url(url: str | None) -> bool:
    """An address worth a link or a button: http(s), no spaces, and short enough for a button's `url` (Slack:
    3000) with room to spare in a section."""
    return (url is not None and url.startswith(("https://", "http://")) and len(url) <= URL_LIMIT
            and not any(c.isspace() for c in url))


# ------------------------------------------------------------------------------------------------ the status message


def _head(icon: str, state: str, subject: Subject) -> str:
    """The first lines of every state: what is happening, where, and about what."""
    return f"{icon} *{state}* · `{escape(subject.repo)}`\n{_issue_line(subject)}"


def _issue_line(subject: Subject) -> str:
    issue = clip(f"#{subject.issue_number} {subject.title}" if subject.issue_number else subject.title, 200)
    return link(subject.issue_url, issue) if subject.issue_url else escape(issue)


def _job(subject: Subject) -> str:
    if subject.job_id is None:
        return ""
    return link(subject.job_url, f"job #{subject.job_id}")


def queued(subject: Subject, asked_by: str | None = None) -> Message:
    """The first state: the issue is open and the job waits for a worker. `asked_by` is a Slack user id."""
    who = f"Asked by <@{asked_by}>" if asked_by and re.fullmatch(r"[UW][A-Z0-9]+", asked_by) else ""
    blocks = [_section(_head("👀", "Queued", subject))]
    if who or subject.job_id is not None:
        blocks.append(_context(who, _job(subject)))
    return Message(blocks, _fallback(f"Queued in {subject.repo}: {subject.title}"))


def working(subject: Subject, step: str) -> Message:
    """A job at work, naming its current step ("running the tests")."""
    now = clip(" ".join(step.split()), 200) or "working"
    blocks = [_section(f"{_head('⏳', 'Working', subject)}\n_{escape(now)}…_")]
    if subject.job_id is not None:
        blocks.append(_context(_job(subject)))
    return Message(blocks, _fallback(f"Working in {subject.repo}: {now}"))


def outcome(subject: Subject, result: Result) -> Message:
    """The end: the pull request (draft or ready), the verification and the judge, cost and time, the job; and
    the Merge button with a link to the pull request when there is one to merge. No Merge button on a draft:
    GitHub refuses to merge one, so the button could only lead to a refusal."""
    pull = result.pull
    if pull is None:
        state, icon = "Finished", "✅"
    elif result.draft:
        state, icon = "Draft pull request", "📝"
    else:
        state, icon = "Pull request ready", "✅"
    lines = [f"{icon} *{state}* · `{escape(subject.repo)}`"]
    if pull is not None:
        lines.append(link(pull.url, clip(f"#{pull.number} {pull.title or subject.title}", 200)))
    else:
        lines.append(_issue_line(subject))
    blocks = [_section("\n".join(lines))]
    facts = [mrkdwn(clip(result.verification, REASON_LIMIT))] if result.verification.strip() else []
    if result.judge and result.judge.strip():
        facts.append(mrkdwn(clip(result.judge, JUDGE_LIMIT)))
    if result.stopped and result.stopped.strip():
        facts.append("⚠️ " + mrkdwn(clip(result.stopped, REASON_LIMIT)))
    if facts:
        blocks.append(_section("\n".join(facts)))
    figures = []
    if result.cost_usd is not None:
        figures.append(f"${result.cost_usd:.2f}")
    if result.seconds is not None:
        figures.append(duration(result.seconds))
    if figures or subject.job_id is not None:
        blocks.append(_context(*figures, _job(subject)))
    if pull is not None:
        buttons = []
        if not result.draft:
            buttons.append(merge_button(pull.repo, pull.number))
        if _plain_url(pull.url):
            buttons.append(_button("Open pull request", OPEN_ACTION, url=pull.url))
        if buttons:
            blocks.append({"type": "actions", "elements": buttons})
    text = (f"{state} in {subject.repo}: #{pull.number} {pull.title or subject.title}" if pull is not None
            else f"{state} in {subject.repo}: {subject.title}")
    return Message(blocks, _fallback(text))


def failed(subject: Subject, reason: str) -> Message:
    """A run that could not finish, with the reason in words (already free of secrets)."""
    blocks = [_section(f"{_head('❌', 'Could not finish', subject)}\n{mrkdwn(clip(reason, REASON_LIMIT))}")]
    if subject.job_id is not None:
        blocks.append(_context(_job(subject)))
    return Message(blocks, _fallback(f"Could not finish in {subject.repo}: {clip(reason, 150)}"))


def no_change(subject: Subject, answer: str) -> Message:
    """A run that changed nothing: the model's answer (a question answered, or why no change is needed)."""
    shown = mrkdwn(clip(answer, ANSWER_LIMIT)) or "_No answer was given._"
    blocks = [_section(_head("💬", "No change made", subject)), _section(shown)]
    if subject.job_id is not None:
        blocks.append(_context(_job(subject)))
    return Message(blocks, _fallback(f"No change made in {subject.repo}: {clip(answer, 150)}"))


def merge_value(repo: str, number: int) -> str:
    """The Merge button's value: which pull request, nothing more (`owner/name#12`)."""
    return f"{repo}#{number}"


def read_merge_value(value: str) -> tuple[str, int] | None:
    """The pull request a Merge button's value names, or None for anything else (a click's payload is input)."""
    repo, _, number = value.rpartition("#")
    if parse_repo(repo) != repo or not number.isdigit() or not 0 < int(number) < 10**9:
        return None
    return repo, int(number)


def merge_button(repo: str, number: int) -> dict[str, Any]:
    """The Merge button, asking for a confirmation first: a tap on a phone is easily a mistake."""
    confirm = {"title": {"type": "plain_text", "text": "Merge this pull request?"},
               "text": {"type": "plain_text", "text": clip(f"Merge #{number} of {repo}? Branch protection "
                                                           "still decides.", 300)},
               "confirm": {"type": "plain_text", "text": "Merge"},
               "deny": {"type": "plain_text", "text": "Cancel"}}
    return _button("Merge", MERGE_ACTION, value=merge_value(repo, number), style="primary", confirm=confirm)


# ------------------------------------------------------------------------------------------------ thread replies


def checks_finished(pull: Pull, passed: Sequence[str], failed: Sequence[str]) -> Message:
    """The pull request's checks are done: passed, or which failed (and which passed, counted)."""
    ref = link(pull.url, f"#{pull.number}")
    if failed:
        text = f"❌ Checks failed on {ref}: {_names(failed)}"
        if passed:
            text += f"\n{len(passed)} passed."
        fallback = f"Checks failed on #{pull.number}: {', '.join(failed[:NAMES_SHOWN])}"
    else:
        text = f"✅ Checks passed on {ref}" + (f": {_names(passed)}" if passed else ".")
        fallback = f"Checks passed on #{pull.number}"
    return Message([_section(text)], _fallback(fallback))


def preview_ready(url: str, environment: str | None = None, pull: Pull | None = None) -> Message:
    """A deployment of the pull request's head reported an `environment_url`: a button to open it."""
    where = f" ({escape(clip(environment, 80))})" if environment else ""
    about = f" for {link(pull.url, f'#{pull.number}')}" if pull else ""
    block = _section(f"🔗 *Preview ready*{about}{where}\n{link(url, clip(url, 300))}")
    if _plain_url(url):
        block["accessory"] = _button("Open preview", PREVIEW_ACTION, url=url)
    return Message([block], _fallback(f"Preview ready: {url}"))


def changes_requested(reviewer: str, summary: str, pull: Pull | None = None, review_url: str | None = None
                      ) -> Message:
    """A review asked for changes: who, and the start of what they said (at most `SUMMARY_LIMIT` characters)."""
    about = f" on {link(pull.url, f'#{pull.number}')}" if pull else ""
    said = clip(" ".join(summary.split()), SUMMARY_LIMIT)
    text = f"✏️ *{escape(reviewer)}* requested changes{about}"
    if said:
        text += "\n>" + escape(said)
    if review_url and _plain_url(review_url):
        text += f"\n{link(review_url, 'Read the review')}"
    return Message([_section(text)], _fallback(f"{reviewer} requested changes: {said}"))


def merged(pull: Pull, by: str | None = None) -> Message:
    who = f" by {escape(by)}" if by else ""
    text = f"🎉 *Merged*{who}: {link(pull.url, clip(f'#{pull.number} {pull.title}'.strip(), 200))}"
    return Message([_section(text)], _fallback(f"Merged{' by ' + by if by else ''}: #{pull.number} {pull.title}"))


def closed(pull: Pull, by: str | None = None) -> Message:
    who = f" by {escape(by)}" if by else ""
    text = f"🚫 *Closed without merging*{who}: {link(pull.url, clip(f'#{pull.number} {pull.title}'.strip(), 200))}"
    return Message([_section(text)], _fallback(f"Closed without merging: #{pull.number} {pull.title}"))


# ------------------------------------------------------------------------------------------------ short answers


def link_account(url: str) -> Message:
    """The ephemeral prompt for an unlinked user: one button to GitHub's authorization, through Honk."""
    text = ("🔗 *Link your GitHub account first.* Honk acts for you only as your GitHub permissions allow. "
            "The link works once, for 10 minutes, and only for you.")
    blocks = [_section(text)]
    if _plain_url(url):
        blocks.append({"type": "actions", "elements": [_button("Link GitHub account", LINK_ACTION, url=url,
                                                               style="primary")]})
    else:
        blocks.append(_section(escape(url)))
    return Message(blocks, "Link your GitHub account to use Honk")


def linked(login: str) -> Message:
    text = f"✅ Your Slack account is now linked to GitHub *{escape(login)}*."
    return Message([_section(text)], _fallback(f"Linked to GitHub {login}"))


def channel_bound(repo: str) -> Message:
    text = f"📌 This channel now asks Honk about `{escape(repo)}`: `@Honk &lt;task&gt;` is enough here."
    return Message([_section(text)], _fallback(f"This channel now asks about {repo}"))


def unknown_repository(repo: str) -> Message:
    return _short(f"I can't find `{escape(repo)}` on GitHub. Check the name: `/honk owner/name &lt;task&gt;`.")


def not_installed(repo: str, install_url: str | None = None) -> Message:
    where = f" {link(install_url, 'Install it')} (an admin of the repository can)." if _plain_url(install_url) \
        else " An admin of the repository can install it."
    return _short(f"Honk's GitHub App is not installed on `{escape(repo)}`.{where}")


def no_task(repo: str | None = None) -> Message:
    target = repo or "owner/name"
    return _short(f"Say what to do after the repository: `/honk {escape(target)} &lt;task&gt;`.")


def not_writer(login: str, repo: str) -> Message:
    return _short(f"GitHub *{escape(login)}* can't ask Honk in `{escape(repo)}`: that needs write access to the "
                  f"repository.")


def merge_refused(pull: Pull, reason: str) -> Message:
    """GitHub's merge API said no (branch protection, a failing check, a conflict): its reason, as it said it."""
    said = clip(" ".join(reason.split()), REASON_LIMIT) or "no reason given"
    return _short(f"Couldn't merge {link(pull.url, f'#{pull.number}')}: GitHub says “{escape(said)}”")


def problem(message: str) -> Message:
    """A `commands.Problem`'s sentence: Honk's words, with backticks, and placeholders such as `<task>` that
    Slack would take for markup unless escaped."""
    return _short(escape(message))


def help_message() -> Message:
    text = ("*Ask Honk from Slack*\n"
            "`/honk owner/name &lt;task&gt;` or `@Honk owner/name &lt;task&gt;`: Honk opens an issue and works on "
            "it here.\n"
            "`/honk channel owner/name`: asks in this channel go to that repository.\n"
            "In a Honk thread: `/honk status`, `/honk stop`, `/honk merge`; a reply is a follow-up on the pull "
            "request.")
    return Message([_section(text)], "How to ask Honk")


def _short(text: str) -> Message:
    """One section: the answers to commands that could not be done. Callers escape what they put in, so the
    fallback is the same mrkdwn with its links reduced to their labels."""
    body = clip(text, SECTION_LIMIT)
    return Message([_section(body)], clip(" ".join(re.sub(r"<[^|>]*\|([^>]*)>", r"\1", body).split()), 300))


# ------------------------------------------------------------------------------------------------ small words


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(f"`{escape(clip(n, 80))}`" for n in names[:NAMES_SHOWN])
    more = len(names) - NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def duration(seconds: float) -> str:
    """`42 s`, `3 min`, `1 h 05 min`: a run's time at a glance."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
