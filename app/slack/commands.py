"""What a person wrote to Honk in Slack, read into a typed command: pure functions, no Slack calls.

The same words work after a mention (`@Honk acme/widgets fix the spinner`) and after the slash command
(`/honk acme/widgets fix the spinner`):

    owner/name <task>            Ask: open an issue in owner/name for <task> (repository optional in a bound channel)
    <task>                       Ask with no repository: the channel's bound one, else a `Problem` (see `with_repo`)
    channel owner/name           BindChannel: this channel's asks go to owner/name
    status | stop                Status / Stop: about the work of the thread it is written in
    merge [owner/name][#]N       Merge: the thread's pull request, or the one named
    campaign [owner/name] <body> Campaign: a campaign issue's body (its task and ```yaml honk-campaign``` block),
                                 opened in owner/name (or the channel's bound repository)
    help (or nothing)            Help

A keyword only counts as one where the rest of the words fit it: "stop the spinner from flickering" and "merge
the two config loaders" are tasks. The first word is the repository when it has the shape `owner/name` (or is a
github.com link to one); a task that starts with a two-part path (`src/app.py is broken`) therefore needs its
repository in front even in a bound channel.

Slack sends what people type with its own markup: `<@U123>` for a mention, `<#C123|general>` for a channel,
`<https://example.com|label>` for a link, and `&amp;` `&lt;` `&gt;` for `&` `<` `>`. `plain` turns that back
into the text the person saw.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.untyped import as_dict, as_str

TITLE_LIMIT = 80  # characters of an issue title taken from a task's first line
TASK_LIMIT = 20_000  # characters of a task kept: an issue body has room for 65,536, the rest is a paste gone wrong

NEEDS_REPO = ("Name the repository: `/honk owner/name <task>` (or bind this channel with "
              "`/honk channel owner/name`).")
NEEDS_TASK = "Say what to do after the repository: `/honk {repo} <task>`, for example `/honk {repo} fix the typo`."
NEEDS_BIND_REPO = "Name the repository to bind this channel to: `/honk channel owner/name`."
NEEDS_CAMPAIGN = ("Say what the campaign should do, with its block: `/honk campaign owner/name <the task>` followed "
                  "by a ```yaml honk-campaign``` block naming the repositories (`repos: all`, filters, `canary`...). "
                  "The campaign issue is opened in owner/name.")

# GitHub's rules: an account is 1-39 letters, digits and single inner hyphens (older ones may have doubled or
# trailing hyphens, which GitHub still serves); a repository is 1-100 letters, digits, `.`, `-` and `_`, but not
# `.` or `..`.
_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_NAME = r"[A-Za-z0-9._-]{1,100}"
_REPO_RE = re.compile(rf"({_OWNER})/({_NAME})")
_PR_REF_RE = re.compile(rf"(?:(?P<repo>{_OWNER}/{_NAME})(?:#|\s+#?)|#?)(?P<number>[0-9]{{1,9}})")
_GITHUB_HOSTS = ("github.com", "www.github.com")
_MARKUP_RE = re.compile(r"<([^<>|\s][^<>|]*)(?:\|([^<>]*))?>")


# ------------------------------------------------------------------------------------------------ commands


@dataclass(frozen=True)
class Ask:
    """Open an issue in `repo` (None: the channel's bound repository) for `task`, in plain text."""

    repo: str | None
    task: str

    @property
    def title(self) -> str:
        return title_of(self.task)


@dataclass(frozen=True)
class BindChannel:
    repo: str


@dataclass(frozen=True)
class Status:
    pass


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Merge:
    """Merge the thread's pull request (`number` None), or pull request `number` of `repo` (None: the thread's or
    the channel's repository)."""

    repo: str | None = None
    number: int | None = None


@dataclass(frozen=True)
class Campaign:
    """A fleet campaign: `text` is the campaign issue's body, opened in `repo` (None: the channel's bound one)."""

    repo: str | None
    text: str


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Problem:
    """What was written cannot be done; `message` says what to write instead (Slack mrkdwn, backticks)."""

    message: str


Command = Ask | BindChannel | Status | Stop | Merge | Campaign | Help | Problem


# ------------------------------------------------------------------------------------------------ parsing


def parse_mention(text: str, bot_user_id: str | None = None) -> Command:
    """An `app_mention` (or a direct message): the bot's mentions are dropped (`bot_user_id` None: the one the
    text starts with, as Slack puts it there), the rest read as by `parse`."""
    if bot_user_id:
        text = re.sub(rf"[ \t]*<@{re.escape(bot_user_id)}(?:\|[^>]*)?>[ \t]*", " ", text)
    else:
        text = re.sub(r"^\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>", " ", text)
    return parse(text)


def parse_slash(text: str) -> Command:
    """The text of `/honk ...` (Slack sends what follows the command, with the same markup as messages)."""
    return parse(text)


def parse(text: str) -> Command:
    words = plain(text).strip()
    if not words:
        return Help()
    first, rest = (*words.split(maxsplit=1), "")[:2]
    rest = rest.strip()
    keyword = first.lower()
    if keyword in ("help", "?", "-h", "--help") and not rest:
        return Help()
    if keyword == "status" and not rest:
        return Status()
    if keyword in ("stop", "cancel") and not rest:
        return Stop()
    if keyword == "merge":
        merge = _merge(rest)
        if merge is not None:
            return merge
    if keyword == "channel":
        bound = _bind(rest)
        if bound is not None:
            return bound
    if keyword == "campaign":
        if not rest:
            return Problem(NEEDS_CAMPAIGN)
        head, body = (*rest.split(maxsplit=1), "")[:2]
        repo = parse_repo(head)
        if repo is None:
            return Campaign(None, rest)
        return Campaign(repo, body.strip()) if body.strip() else Problem(NEEDS_CAMPAIGN)
    repo = parse_repo(first)
    if repo is not None:
        if not rest:
            return Problem(NEEDS_TASK.format(repo=repo))
        return Ask(repo, _task(rest))
    return Ask(None, _task(words))


def with_repo(ask: Ask, bound: str | None) -> Ask | Problem:
    """The ask with its repository: its own, else the channel's `bound` one, else the `Problem` to answer."""
    if ask.repo is not None:
        return ask
    if bound is None:
        return Problem(NEEDS_REPO)
    return Ask(bound, ask.task)


def parse_repo(word: str) -> str | None:
    """`owner/name` from `owner/name`, `owner/name.git`, or a github.com link to the repository (or to something
    in it: `https://github.com/acme/widgets/pull/3`); None when the word is not one."""
    word = word.strip().rstrip("/")
    if word.lower().startswith(("http://", "https://", "github.com/", "www.github.com/")):
        url = urlsplit(word if "://" in word else "https://" + word)
        if (url.hostname or "").lower() not in _GITHUB_HOSTS:
            return None
        parts = [p for p in url.path.split("/") if p]
        if len(parts) < 2:
            return None
        word = "/".join(parts[:2])
    word = word.removesuffix(".git")
    found = _REPO_RE.fullmatch(word)
    if found is None or found.group(2) in (".", ".."):
        return None
    return word


def _merge(rest: str) -> Merge | Problem | None:
    """`merge`, `merge 12`, `merge #12`, `merge acme/widgets#12`, `merge acme/widgets 12`, or a pull request's
    link. Words that fit none of these are a task (None), unless they are one word that tried to be a reference."""
    if not rest:
        return Merge()
    link = _pull_link(rest)
    if link is not None:
        return Merge(*link)
    found = _PR_REF_RE.fullmatch(rest)
    if found is not None:
        number = int(found.group("number"))
        if number < 1:
            return Problem("Name the pull request to merge: `/honk merge 12` or `/honk merge owner/name#12`.")
        return Merge(found.group("repo"), number)
    if " " not in rest and ("#" in rest or rest.isdigit() or parse_repo(rest) is not None):
        return Problem(f"`{rest}` is not a pull request: write `/honk merge 12` or `/honk merge owner/name#12`.")
    return None


def _pull_link(text: str) -> tuple[str, int] | None:
    url = urlsplit(text if "://" in text else "https://" + text)
    if " " in text or (url.hostname or "").lower() not in _GITHUB_HOSTS:
        return None
    parts = [p for p in url.path.split("/") if p]
    if len(parts) >= 4 and parts[2] in ("pull", "pulls") and parts[3].isdigit():
        repo = parse_repo("/".join(parts[:2]))
        if repo is not None and int(parts[3]) > 0:
            return repo, int(parts[3])
    return None


def _bind(rest: str) -> BindChannel | Problem | None:
    if not rest:
        return Problem(NEEDS_BIND_REPO)
    if " " in rest or "\n" in rest:
        return None  # "channel messages are dropped on reconnect": a task
    repo = parse_repo(rest)
    if repo is not None:
        return BindChannel(repo)
    if "/" in rest:
        return Problem(f"`{rest}` is not a repository: write `/honk channel owner/name`.")
    return None


def _task(text: str) -> str:
    text = text.strip()
    return text[:TASK_LIMIT]


def title_of(task: str) -> str:
    """An issue title from a task: its first non-empty line, spaces collapsed, at most `TITLE_LIMIT` characters
    (cut at a word, with an ellipsis)."""
    line = next((line for line in task.splitlines() if line.strip()), "")
    line = " ".join(line.split()).lstrip("#").strip()
    if len(line) <= TITLE_LIMIT:
        return line
    cut = line[:TITLE_LIMIT - 1]
    if line[len(cut)] != " " and " " in cut[TITLE_LIMIT // 2:]:  # mid-word: drop the partial word
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:-") + "…"


# ------------------------------------------------------------------------------------------------ Slack markup


def plain(text: str, users: Mapping[str, str] | None = None) -> str:
    """Slack's message markup as the text a person saw: `<@U123>` -> `@name` (from `users`, id -> name, else
    `@U123`), `<#C123|general>` -> `#general`, `<!here>` -> `@here`, `<https://x|label>` -> `label` when the
    label is part of the address (Slack's own auto-links) else `label (https://x)`, `<https://x>` -> the
    address, `<mailto:a@b.c|a@b.c>` -> `a@b.c`; then `&lt;` `&gt;` `&amp;` -> `<` `>` `&`."""
    users = users or {}

    def one(found: re.Match[str]) -> str:
        target, label = found.group(1), found.group(2)
        if target.startswith("@"):
            uid = target[1:]
            return "@" + (users.get(uid) or label or uid).lstrip("@")
        if target.startswith("#"):
            return "#" + (label or target[1:]).lstrip("#")
        if target.startswith("!"):
            special = target[1:]
            if label:
                return label
            head = special.split("^", 1)[0]
            return "@" + head if head in ("here", "channel", "everyone") else ""
        if target.lower().startswith("mailto:"):
            return label or target[len("mailto:"):]
        if not label or label.strip() == target:
            return target
        if label.strip().lower() in target.lower():
            return label
        return f"{label} ({target})"

    return _unescape(_MARKUP_RE.sub(one, text))


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# ------------------------------------------------------------------------------------------------ attachments


def files_markdown(files: Iterable[Any]) -> str:
    """Files attached to the Slack message as a Markdown list for the issue body: `- [name](permalink)
    (type, size)`. They are links, not embedded images: Slack's files need a Slack session to open, so GitHub
    could not show them, and Honk does not copy them anywhere. Anything not shaped like a Slack file is skipped."""
    lines = []
    for item in files:
        file = as_dict(item)
        link = as_str(file.get("permalink")) or as_str(file.get("url_private"))
        if not link.startswith(("https://", "http://")):
            continue
        name = as_str(file.get("title")) or as_str(file.get("name")) or as_str(file.get("id")) or "file"
        kind = as_str(file.get("pretty_type")) or as_str(file.get("mimetype")) or as_str(file.get("filetype"))
        size = file.get("size")
        facts = [f for f in (kind, _size(size) if isinstance(size, int) and not isinstance(size, bool) else "") if f]
        note = f" ({', '.join(_md_text(f) for f in facts)})" if facts else ""
        lines.append(f"- [{_md_text(name)}]({link.replace(')', '%29').replace(' ', '%20')}){note}")
    return "\n".join(lines)


def _md_text(text: str) -> str:
    """Text safe inside a Markdown link label: no brackets, no line breaks, no HTML."""
    text = " ".join(text.split())
    for char in "\\[]<>`*_":
        text = text.replace(char, "\\" + char)
    return text[:200]


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover - the loop returns at MB
