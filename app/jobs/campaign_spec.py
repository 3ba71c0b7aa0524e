"""A fleet campaign's request: the issue body's task and its ```yaml honk-campaign``` block (CONTRACT.md section 7).

`parse_campaign` splits a campaign issue's body into the task (everything but the block) and a `CampaignSpec`
(which repositories, and how fast), or raises `CampaignSpecError` whose message is for the campaign issue: one
sentence per problem, every problem at once, each naming the key and its line in the issue body. `preselect`
then applies what can be decided from the installation's repository list alone; `has_file` needs each
repository's tree and is checked by the caller with `matching_path`. Pure code: no I/O.

Example issue body:

    Replace the deprecated `request` package with `fetch`.

    ```yaml honk-campaign
    repos: all
    language: [JavaScript, TypeScript]
    has_file: "**/package.json"
    exclude: acme/legacy-*
    canary: 2
    budget_usd: 40
    ```

Like app/jobs/repo_config.py, lines come from the YAML nodes, so a message can point at the key or the list
item. The validation is by hand rather than through pydantic: keys such as `repos` (`all`, one name, or a list)
and `topics` (one or several) would produce one error per union branch, and each message here is worded for
its key anyway.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import yaml

MAX_BLOCK_BYTES = 64 * 1024
MAX_REPOS = 5000
MAX_ITEM_PROBLEMS = 10  # per list key; beyond this one sentence sums up the rest
CANARY_RANGE = (0, 100)
CONCURRENCY_RANGE = (1, 50)

BLOCK_INFO = ("yaml", "honk-campaign")
NO_BLOCK = "the issue has no ```yaml honk-campaign``` block; add one with at least `repos:`"
ONLY_BLOCK = "the issue body says nothing but the campaign block: write what to change above it"
NOT_INSTALLED = "not in this installation (Honk is not installed there, or there is no such repository)"
ARCHIVED = "archived"

# GitHub's shapes: an account is letters, digits and hyphens (underscores for managed users), up to 39;
# a repository name is letters, digits, `.`, `_` and `-`, up to 100.
_OWNER = r"[A-Za-z0-9][A-Za-z0-9_-]{0,38}"
_NAME = r"[A-Za-z0-9._-]{1,100}"
_FULL_NAME = re.compile(rf"({_OWNER})/({_NAME})")
_TOPIC = re.compile(r"[a-z0-9][a-z0-9-]{0,49}")
_NAME_GLOB_PART = r"[A-Za-z0-9._\-*?\[\]!^]{1,100}"
_NAME_GLOB = re.compile(rf"{_NAME_GLOB_PART}(?:/{_NAME_GLOB_PART})?")
_GLOB_CHARS = frozenset("*?[")
_MAX_LANGUAGE = 100


# The request and its errors


class Problem(NamedTuple):
    line: int | None
    key: str | None
    message: str  # a whole sentence, ending with its line when it has one


class CampaignSpecError(ValueError):
    """A mistake in the campaign's block: str(error) is one sentence per problem, in line order, for the issue.

    `key` and `line` are those of the first problem (`line` counts in the issue body, from 1); `problems` has
    all of them.
    """

    def __init__(
        self, message: str, *, key: str | None = None, line: int | None = None, problems: tuple[Problem, ...] = ()
    ) -> None:
        super().__init__(message)
        self.key = key
        self.line = line
        self.problems = problems or (Problem(line, key, message),)

    @classmethod
    def of(cls, problems: Iterable[Problem]) -> CampaignSpecError:
        ordered = tuple(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))  # stable within a line
        first = ordered[0]
        return cls("\n".join(p.message for p in ordered), key=first.key, line=first.line, problems=ordered)


@dataclass(frozen=True)
class CampaignSpec:
    repos: tuple[str, ...] | None  # "owner/name" as written, duplicates (any case) removed; None: `all`
    topics: tuple[str, ...] = ()  # lower case; a repository must have every one
    language: tuple[str, ...] = ()  # as written; a repository's primary language must be one (any case)
    has_file: str | None = None  # a glob on the default branch's paths, see `glob_match`
    exclude: tuple[str, ...] = ()  # "owner/name", a glob on full names, or (without `/`) a glob on names
    archived: bool = False  # include archived repositories
    canary: int = 3  # 0: no canary phase
    concurrency: int = 5
    auto_rollout: bool = False
    budget_usd: float | None = None  # None: the operator's default

    def to_dict(self) -> dict[str, Any]:
        return {
            "repos": "all" if self.repos is None else list(self.repos),
            "topics": list(self.topics),
            "language": list(self.language),
            "has_file": self.has_file,
            "exclude": list(self.exclude),
            "archived": self.archived,
            "canary": self.canary,
            "concurrency": self.concurrency,
            "auto_rollout": self.auto_rollout,
            "budget_usd": self.budget_usd,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CampaignSpec:
        """The inverse of `to_dict` (for stored campaigns; keys it does not know are ignored)."""
        repos = data.get("repos")
        budget = data.get("budget_usd")
        return cls(
            repos=None if repos is None or repos == "all" else tuple(repos),
            topics=tuple(data.get("topics") or ()),
            language=tuple(data.get("language") or ()),
            has_file=data.get("has_file"),
            exclude=tuple(data.get("exclude") or ()),
            archived=bool(data.get("archived", False)),
            canary=int(data.get("canary", 3)),
            concurrency=int(data.get("concurrency", 5)),
            auto_rollout=bool(data.get("auto_rollout", False)),
            budget_usd=None if budget is None else float(budget),
        )

    @property
    def selects_all(self) -> bool:
        return self.repos is None


@dataclass(frozen=True)
class CampaignRequest:
    task: str  # the issue body without the block, stripped (line endings as `\n`)
    spec: CampaignSpec
    block_line: int  # 1-based line of the block's opening fence in the issue body


def has_campaign_block(body: str | None) -> bool:
    return any(_is_campaign(f.info) for f in _fences(_lines(body)))


def parse_campaign(body: str | None) -> CampaignRequest:
    lines = _lines(body)
    fences = _fences(lines)
    blocks = [f for f in fences if _is_campaign(f.info)]
    if not blocks:
        near = next((f for f in fences if _near_miss(f.info)), None)
        if near is None:
            raise CampaignSpecError(NO_BLOCK)
        info = near.info.replace("`", "'")
        raise CampaignSpecError(
            f"{NO_BLOCK} (the block on line {near.start + 1} is marked `{info}`: its opening line must be "
            "```` ```yaml honk-campaign ````).",
            line=near.start + 1,
        )
    if len(blocks) > 1:
        where = _and([str(b.start + 1) for b in blocks])
        raise CampaignSpecError(
            f"the issue has {len(blocks)} ```yaml honk-campaign``` blocks (on lines {where}); keep one.",
            line=blocks[0].start + 1,
        )
    block = blocks[0]
    block_line = block.start + 1
    stop = block.end if block.end is not None else len(lines)
    text = "\n".join(_dedent(line, block.indent) for line in lines[block.start + 1 : stop])
    problems: list[Problem] = []
    spec = _read_spec(text, block_line, problems)
    task = "\n".join(lines[: block.start] + lines[stop + 1 :]).strip()
    if not task:
        unclosed = (
            f" (the block opened on line {block_line} is never closed, so it runs to the end of the issue)"
            if block.end is None
            else ""
        )
        problems.append(Problem(None, None, f"{ONLY_BLOCK}{unclosed}."))
    if problems or spec is None:
        raise CampaignSpecError.of(problems)
    return CampaignRequest(task=task, spec=spec, block_line=block_line)


# Finding the block (CommonMark fenced code blocks)

_OPEN = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)")
_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")


@dataclass(frozen=True)
class _Fence:
    start: int  # 0-based index of the opening line
    end: int | None  # of the closing line; None: the block runs to the end of the body
    info: str
    indent: int


def _lines(body: str | None) -> list[str]:
    text = (body or "").removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def _fences(lines: list[str]) -> list[_Fence]:
    """Every fenced code block, outermost only: an example block inside another block is not a block."""
    found: list[_Fence] = []
    i = 0
    while i < len(lines):
        opening = _OPEN.fullmatch(lines[i])
        if opening is None or (opening[2][0] == "`" and "`" in opening[3]):
            i += 1
            continue
        fence = opening[2]
        end = None
        for j in range(i + 1, len(lines)):
            closing = _CLOSE.fullmatch(lines[j])
            if closing and closing[1][0] == fence[0] and len(closing[1]) >= len(fence):
                end = j
                break
        found.append(_Fence(start=i, end=end, info=opening[3].strip(), indent=len(opening[1])))
        i = (end if end is not None else len(lines)) + 1
    return found


def _is_campaign(info: str) -> bool:
    return tuple(info.lower().split()) == BLOCK_INFO


def _near_miss(info: str) -> bool:
    squeezed = re.sub(r"[^a-z]", "", info.lower())
    return "honk" in squeezed and "campaign" in squeezed


def _dedent(line: str, indent: int) -> str:
    """Content lines lose up to the opening fence's indentation, as CommonMark renders them."""
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, indent) :]


# Reading the block


@dataclass
class _Reader:
    text: str  # the block's content
    first_line: int  # the body line of the content's first line
    problems: list[Problem]

    def line(self, node: yaml.Node) -> int:
        return self.line_at(node.start_mark.index)

    def line_at(self, index: int) -> int:
        # Counted on `\n` only: PyYAML also breaks lines at U+0085, U+2028 and U+2029, which GitHub does not.
        return self.first_line + self.text.count("\n", 0, max(index, 0))

    def bad(self, key: str | None, line: int, sentence: str) -> None:
        self.problems.append(Problem(line, key, f"{sentence}, on line {line}."))


def _read_spec(text: str, block_line: int, problems: list[Problem]) -> CampaignSpec | None:
    where = f"the campaign block on line {block_line}"
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BLOCK_BYTES:
        problems.append(Problem(block_line, None, f"{where} is larger than {MAX_BLOCK_BYTES // 1024} KB; "
                                                  f"Honk does not read it (a campaign lists at most "
                                                  f"{MAX_REPOS:,} repositories)."))
        return None
    reader = _Reader(text=text, first_line=block_line + 1, problems=problems)
    pairs = _read_yaml(reader, block_line)
    if pairs is None:
        return None
    if not pairs:
        problems.append(Problem(block_line, "repos", f"{where} is empty; add at least `repos:` (`all` or a list "
                                                     "of repositories such as `[acme/api, acme/web]`)."))
        return None
    settings: dict[str, tuple[Any, yaml.Node, int]] = {}
    for key, key_node, value, value_node in pairs:
        line = reader.line(key_node)
        if key in _CHECKS:
            settings[key] = (value, value_node, line)  # the last one wins, as in YAML (twice is reported)
        else:
            _unknown_key(reader, key, key_node, line)
    if "repos" not in settings:
        problems.append(Problem(block_line, "repos", f"`repos` is missing from {where}: set it to `all` or to a "
                                                     "list of repositories such as `[acme/api, acme/web]`."))
    fields = {}
    for key, check in _CHECKS.items():
        if key in settings:
            value, value_node, line = settings[key]
            result = check(reader, key, value, value_node, line)
            if result is not _BAD:
                fields[key] = result
    if problems:
        return None
    return CampaignSpec(**fields)


def _read_yaml(reader: _Reader, block_line: int) -> list[tuple[Any, yaml.Node, Any, yaml.Node]] | None:
    """The top-level (key, key node, value, value node) pairs; None when a problem was recorded instead."""
    where = f"the campaign block on line {block_line}"
    try:
        loader = yaml.SafeLoader(reader.text)
    except yaml.YAMLError as exc:  # a character YAML refuses, found before any parsing
        _yaml_problem(reader, exc, block_line)
        return None
    try:
        root = loader.get_single_node()
        if root is None:
            return []
        if not isinstance(root, yaml.MappingNode):
            kind = "a list" if isinstance(root, yaml.SequenceNode) else f"the value {_shown(root.value)}"
            reader.bad(None, reader.line(root), f"{where} must be a mapping of settings such as `repos: all` "
                                                f"(it is {kind})")
            return None
        _duplicates(reader, root)
        data = loader.construct_object(root, deep=True)  # merges (`<<`) are flattened into root.value here
        if not isinstance(data, dict):
            reader.bad(None, reader.line(root), f"{where} must be a mapping of settings such as `repos: all`")
            return None
        return [
            (_key_name(loader, k), k, loader.construct_object(v, deep=True), v)
            for k, v in root.value
        ]
    except yaml.YAMLError as exc:
        _yaml_problem(reader, exc, block_line)
    except RecursionError:
        problems = reader.problems
        problems.append(Problem(block_line, None, f"{where} is nested too deeply to be a campaign's settings."))
    except (ValueError, OverflowError) as exc:  # PyYAML builds dates and numbers with Python's own checks
        reason = str(exc).split(";")[0].split(":")[0].replace("`", "'")[:100] or type(exc).__name__
        reader.problems.append(Problem(block_line, None, f"{where} has a value YAML cannot read ({reason})."))
    finally:
        loader.dispose()
    return None


def _key_name(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_object(node, deep=True)
        return value if isinstance(value, str) else node.value  # `yes:` or `1:` by their spelling
    return None  # a list or mapping as a key


def _yaml_problem(reader: _Reader, exc: yaml.YAMLError, block_line: int) -> None:
    if isinstance(exc, yaml.reader.ReaderError):
        line = reader.line_at(exc.position)
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        reader.bad(None, line, f"the campaign block contains a character YAML does not allow ({char})")
        return
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or "it cannot be parsed"
    context = getattr(exc, "context", None)
    reason = (f"{context}, {problem}" if context else problem).replace("`", "'")
    if mark is None:
        reader.problems.append(Problem(block_line, None, f"the campaign block on line {block_line} is not "
                                                         f"valid YAML: {reason}."))
        return
    reader.bad(None, reader.line_at(mark.index), f"the campaign block is not valid YAML: {reason}")


def _duplicates(reader: _Reader, root: yaml.MappingNode) -> None:
    """PyYAML keeps the last of two equal keys silently; in a campaign's settings that is a mistake."""
    lines: dict[str, list[int]] = {}
    for key, _ in root.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
            lines.setdefault(key.value, []).append(reader.line(key))
    for key, found in lines.items():
        if len(found) > 1:
            times = "twice" if len(found) == 2 else f"{len(found)} times"
            shown = key.replace("`", "'")[:60]
            reader.problems.append(Problem(found[0], key, f"`{shown}` is set {times} (on lines "
                                                          f"{_and([str(n) for n in found])}); keep one."))


_ALIASES = {  # names people reach for, which difflib would not guess
    "repositories": "repos",
    "repo": "repos",
    "repository": "repos",
    "topic": "topics",
    "languages": "language",
    "lang": "language",
    "budget": "budget_usd",
    "max_cost_usd": "budget_usd",
    "cost": "budget_usd",
    "file": "has_file",
    "has_files": "has_file",
    "excludes": "exclude",
    "include_archived": "archived",
    "parallel": "concurrency",
    "parallelism": "concurrency",
    "auto-rollout": "auto_rollout",
    "autorollout": "auto_rollout",
}


def _unknown_key(reader: _Reader, key: Any, node: yaml.Node, line: int) -> None:
    if key is None:
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
        reader.problems.append(Problem(line, None, f"a key on line {line} is {kind}; keys are names such as "
                                                   "`repos`."))
        return
    name = str(key)
    folded = name.strip().lower().replace("-", "_")
    guess = _ALIASES.get(name.strip().lower()) or (folded if folded in _CHECKS else None)
    if guess is None:
        close = difflib.get_close_matches(folded, list(_CHECKS), n=1)
        guess = close[0] if close else None
    hint = f"did you mean `{guess}`?" if guess else "known keys are " + ", ".join(f"`{k}`" for k in _CHECKS)
    shown = name.replace("`", "'")
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    reader.problems.append(Problem(line, name, f"unknown key `{shown}` on line {line}; {hint}"))


# Checking each key; a check returns the value for CampaignSpec, or _BAD after recording its problems

_BAD: Any = object()
_Check = Callable[[_Reader, str, Any, yaml.Node, int], Any]


def _items(reader: _Reader, key: str, value: Any, node: yaml.Node, line: int, rule: str) -> list[tuple[Any, int]] | Any:
    """One or many: a scalar is a one-item list. Items come with their own lines."""
    if value is None:
        return []
    if isinstance(value, list):
        lines = [reader.line(n) for n in node.value] if isinstance(node, yaml.SequenceNode) else []
        return [(item, lines[i] if i < len(lines) else line) for i, item in enumerate(value)]
    if isinstance(value, dict):
        reader.bad(key, line, f"`{key}` {rule} (got a mapping)")
        return _BAD
    return [(value, line)]


class _ItemProblems:
    """Up to MAX_ITEM_PROBLEMS sentences for one list, then one that counts the rest."""

    def __init__(self, reader: _Reader, key: str) -> None:
        self.reader, self.key, self.count, self.first_extra = reader, key, 0, 0

    def add(self, line: int, sentence: str) -> None:
        self.count += 1
        if self.count <= MAX_ITEM_PROBLEMS:
            self.reader.bad(self.key, line, sentence)
        elif self.count == MAX_ITEM_PROBLEMS + 1:
            self.first_extra = line

    def close(self) -> bool:
        extra = self.count - MAX_ITEM_PROBLEMS
        if extra > 0:
            items, verb = ("item", "is") if extra == 1 else ("items", "are")
            sentence = f"{extra} more {items} of `{self.key}` {verb} not valid either"
            self.reader.problems.append(
                Problem(self.first_extra, self.key, f"{sentence} (the first on line {self.first_extra}).")
            )
        return self.count == 0


def _label(key: str, index: int, one: bool) -> str:
    return f"`{key}`" if one else f"item {index + 1} of `{key}`"


def _check_repos(reader: _Reader, key: str, value: Any, node: yaml.Node, line: int) -> Any:
    rule = "must be `all` or a list of repositories such as `[acme/api, acme/web]`"
    if isinstance(value, str) and value.strip().lower() == "all":
        return None
    if isinstance(value, str):
        if not _FULL_NAME.fullmatch(value.strip()):
            reader.bad(key, line, f"`{key}` {rule} (got {_shown(value)}){_repo_hint(value)}")
            return _BAD
        return (value.strip(),)
    if not isinstance(value, list):
        reader.bad(key, line, f"`{key}` {rule} (got {_shown(value)})")
        return _BAD
    if not value:
        reader.bad(key, line, f"`{key}` must list at least one repository, or be `all`")
        return _BAD
    if len(value) > MAX_REPOS:
        reader.bad(key, line, f"`{key}` lists {len(value):,} repositories; a campaign takes at most {MAX_REPOS:,} "
                              "(split it into several campaigns, or use `all` with filters)")
        return _BAD
    items = _items(reader, key, value, node, line, rule)
    problems = _ItemProblems(reader, key)
    names: dict[str, str] = {}
    for index, (item, item_line) in enumerate(items):
        label = _label(key, index, one=False)
        if isinstance(item, str) and item.strip().lower() == "all":
            problems.add(item_line, f"{label} is `all`: write `repos: all` on its own, not in a list")
        elif not isinstance(item, str) or not _FULL_NAME.fullmatch(item.strip()):
            problems.add(item_line, f"{label} must be a repository as `owner/name`, such as `acme/api` "
                                    f"(got {_shown(item)}){_repo_hint(item)}")
        else:
            names.setdefault(item.strip().lower(), item.strip())
    return tuple(names.values()) if problems.close() else _BAD


def _repo_hint(value: object) -> str:
    if not isinstance(value, str):
        return ""
    text = value.strip()
    if text == "*" or text.lower() in {"*/*", "any", "every"}:
        return "; to select every repository write `repos: all`"
    if _GLOB_CHARS & set(text):
        return "; `repos` takes no patterns: use `repos: all` with `exclude` or the filters"
    if "," in text:
        return "; to list several, write a list such as `[acme/api, acme/web]`"
    url = re.fullmatch(rf"(?:https?://)?(?:www\.)?github\.com/({_OWNER})/({_NAME}?)(?:\.git)?/*", text) or \
        re.fullmatch(rf"git@github\.com:({_OWNER})/({_NAME}?)(?:\.git)?", text)
    if url:
        return f"; write `{url[1]}/{url[2]}`"
    return ""


def _check_topics(reader: _Reader, key: str, value: Any, node: yaml.Node, line: int) -> Any:
    items = _items(reader, key, value, node, line, "must be a topic or a list of topics")
    if items is _BAD:
        return _BAD
    one = not isinstance(value, list)
    problems = _ItemProblems(reader, key)
    topics: dict[str, None] = {}
    for index, (item, item_line) in enumerate(items):
        text = str(item).strip().lower() if isinstance(item, str | int) and not isinstance(item, bool) else None
        if text is None or not _TOPIC.fullmatch(text):
            hint = _comma_hint(item)
            problems.add(item_line, f"{_label(key, index, one)} must be a GitHub topic: lower-case letters, digits "
                                    f"and hyphens, up to 50 characters (got {_shown(item)}){hint}")
        else:
            topics[text] = None
    return tuple(topics) if problems.close() else _BAD


def _check_language(reader: _Reader, key: str, value: Any, node: yaml.Node, line: int) -> Any:
    items = _items(reader, key, value, node, line, "must be a language or a list of languages")
    if items is _BAD:
        return _BAD
    one = not isinstance(value, list)
    problems = _ItemProblems(reader, key)
    languages: dict[str, str] = {}
    for index, (item, item_line) in enumerate(items):
        text = item.strip() if isinstance(item, str) else ""
        if not text or len(text) > _MAX_LANGUAGE or "," in text:
            problems.add(item_line, f"{_label(key, index, one)} must be a language as GitHub names it, such as "
                                    f"`Python` or `TypeScript` (got {_shown(item)}){_comma_hint(item)}")
        else:
            languages.setdefault(text.lower(), text)
    return tuple(languages.values()) if problems.close() else _BAD


def _check_exclude(reader: _Reader, key: str, value: Any, node: yaml.Node, line: int) -> Any:
    items = _items(reader, key, value, node, line, "must be a repository or glob, or a list of them")
    if items is _BAD:
        return _BAD
    one = not isinstance(value, list)
    problems = _ItemProblems(reader, key)
    patterns: dict[str, str] = {}
    for index, (item, item_line) in enumerate(items):
        text = item.strip() if isinstance(item, str) else ""
        if not _NAME_GLOB.fullmatch(text) or _glob_regex(text.lower()) is None:
            problems.add(item_line, f"{_label(key, index, one)} must be a repository as `owner/name` or a glob "
                                    f"such as `acme/legacy-*` (got {_shown(item)}){_comma_hint(item)}")
        else:
            patterns.setdefault(text.lower(), text)
    return tuple(patterns.values()) if problems.close() else _BAD


def _comma_hint(value: object) -> str:
    if isinstance(value, str) and "," in value:
        return "; to give several, write a list such as `[a, b]`"
    return ""


def _check_has_file(reader: _Reader, key: str, value: Any, node: yaml.Node, line: int) -> Any:
    if value is None:
        return None
    rule = "must be one glob pattern (a string), such as `package.json` or `**/package.json`"
    if not isinstance(value, str):
        reader.bad(key, line, f"`{key}` {rule} (got {_shown(value)})")
        return _BAD
    pattern = _normal_pattern(value.strip())
    problem = None
    if not pattern:
        problem = "must be a glob pattern, not an empty string"
    elif pattern.endswith("/"):
        problem = "must match a file, so it cannot end with `/`"
    elif any(part in {".", ".."} for part in pattern.split("/")):
        problem = "must be a path inside the repository, without `.` or `..` parts"
    elif "\\" in pattern:
        problem = "must use `/` between directories, not `\\`"
    elif _glob_regex(pattern) is None:
        problem = "is not a valid glob pattern (check its `[...]` ranges)"
    if problem:
        reader.bad(key, line, f"`{key}` {problem} (got {_shown(value)})")
        return _BAD
    return pattern


def _check_bool(reader: _Reader, key: str, value: Any, node: yaml.Node, line: int) -> Any:
    if isinstance(value, bool):
        return value
    quoted = " without quotes" if isinstance(value, str) and value.strip().lower() in {"true", "false"} else ""
    reader.bad(key, line, f"`{key}` must be `true` or `false`{quoted} (got {_shown(value)})")
    return _BAD


def _whole(low: int, high: int) -> _Check:
    def check(reader: _Reader, key: str, value: Any, node: yaml.Node, line: int) -> Any:
        if type(value) is int and low <= value <= high:
            return value
        reader.bad(key, line, f"`{key}` must be a whole number from {low} to {high} (got {_shown(value)})")
        return _BAD

    return check


def _check_budget(reader: _Reader, key: str, value: Any, node: yaml.Node, line: int) -> Any:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            amount = float(value)
        except OverflowError:
            amount = math.inf
        if math.isfinite(amount) and amount > 0:
            return amount
    reader.bad(key, line, f"`{key}` must be a positive number of US dollars, such as `25` (got {_shown(value)})")
    return _BAD


_CHECKS: dict[str, _Check] = {
    "repos": _check_repos,
    "topics": _check_topics,
    "language": _check_language,
    "has_file": _check_has_file,
    "exclude": _check_exclude,
    "archived": _check_bool,
    "canary": _whole(*CANARY_RANGE),
    "concurrency": _whole(*CONCURRENCY_RANGE),
    "auto_rollout": _check_bool,
    "budget_usd": _check_budget,
}


def _shown(value: object) -> str:
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        text = repr(value)
    elif value is None or isinstance(value, bool):
        text = json.dumps(value)  # as YAML spells them: null, true, false
    elif isinstance(value, int) and value.bit_length() > 64:
        text = "a very large number"  # str() of a huge int is slow, or refused past 4,300 digits
    else:
        text = str(value)
    text = text.replace("`", "'")  # keeps the issue comment's markdown intact
    return text if len(text) <= 60 else text[:57] + "..."


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# Globs


def glob_match(pattern: str, path: str) -> bool:
    """Whether a '/'-separated path matches a `has_file` glob, anchored at the repository's top.

    `*` and `?` stay within one directory, `[abc]`, `[a-z]` and `[!abc]` are character classes, `**` as a whole
    part matches any number of directories (`**/x` matches `x` too; `src/**` everything under `src`). Case
    counts, as in git. A leading `/` or `./` is ignored.
    """
    regex = _glob_regex(_normal_pattern(pattern))
    return regex is not None and regex.fullmatch(path.lstrip("/")) is not None


def matching_path(pattern: str, paths: Iterable[str]) -> str | None:
    """The first of `paths` that matches, to report why a repository was kept."""
    regex = _glob_regex(_normal_pattern(pattern))
    if regex is None:
        return None
    return next((p for p in paths if regex.fullmatch(p.lstrip("/"))), None)


def _normal_pattern(pattern: str) -> str:
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern.lstrip("/")


@lru_cache(maxsize=512)
def _glob_regex(pattern: str) -> re.Pattern[str] | None:
    parts: list[str] = []
    for part in pattern.split("/"):
        if part == "**" and parts and parts[-1] == "**":
            continue  # `**/**` is `**`; keeping both would only make the regex backtrack
        parts.append(part)
    out = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
        else:
            out.append(_glob_part(part) + ("" if last else "/"))
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return None


def _glob_part(part: str) -> str:
    out: list[str] = []
    i, n = 0, len(part)
    while i < n:
        char = part[i]
        i += 1
        if char == "*":
            if not out or out[-1] != "[^/]*":
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            j = i
            if j < n and part[j] in "!^":
                j += 1
            if j < n and part[j] == "]":
                j += 1
            while j < n and part[j] != "]":
                j += 1
            if j >= n:  # no closing `]`: a plain `[`
                out.append(re.escape(char))
                continue
            inner, i = part[i:j], j + 1
            negate = inner[:1] in ("!", "^")
            if negate:
                inner = inner[1:]
            chars = []
            for k, c in enumerate(inner):
                ranged = c == "-" and 0 < k < len(inner) - 1
                chars.append("-" if ranged else re.escape(c))
            out.append(f"[^/{''.join(chars)}]" if negate else f"(?!/)[{''.join(chars)}]")
        else:
            out.append(re.escape(char))
    return "".join(out)


# Candidates and the first cut


@dataclass(frozen=True)
class Candidate:
    """What Honk knows of a repository from GET /installation/repositories."""

    full_name: str
    topics: tuple[str, ...] = ()
    language: str | None = None
    archived: bool = False
    default_branch: str = "main"

    @classmethod
    def from_github(cls, repo_json: dict[str, Any]) -> Candidate:
        full_name = repo_json.get("full_name")
        if not full_name:
            owner = (repo_json.get("owner") or {}).get("login")
            name = repo_json.get("name")
            if not owner or not name:
                raise ValueError("a repository without `full_name`, or `owner.login` and `name`")
            full_name = f"{owner}/{name}"
        return cls(
            full_name=str(full_name),
            topics=tuple(str(t) for t in repo_json.get("topics") or ()),
            language=repo_json.get("language") or None,
            archived=bool(repo_json.get("archived", False)),
            default_branch=repo_json.get("default_branch") or "main",
        )


def preselect(
    spec: CampaignSpec, installed: list[Candidate]
) -> tuple[list[Candidate], list[tuple[str, str]], int]:
    """Everything but `has_file` (it needs each tree) and the writer check.

    Returns (kept, skipped, filtered_out_count). Kept follows `spec.repos` when it is a list, else the full
    names in order. With a list, every listed repository not kept is in `skipped` as (full name, reason), once
    however often it is listed; with `all`, repositories that fail a filter are only counted (there may be
    thousands), and `skipped` is empty.
    """
    by_name: dict[str, Candidate] = {}
    for candidate in installed:
        by_name.setdefault(candidate.full_name.lower(), candidate)
    if spec.repos is None:
        kept = []
        filtered_out = 0
        for candidate in sorted(by_name.values(), key=lambda c: c.full_name.lower()):
            if _reason(spec, candidate) is None:
                kept.append(candidate)
            else:
                filtered_out += 1
        return kept, [], filtered_out
    kept, skipped = [], []
    seen: set[str] = set()
    for name in spec.repos:
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        found = by_name.get(name.lower())
        if found is None:
            skipped.append((name, NOT_INSTALLED))
            continue
        reason = _reason(spec, found)
        if reason is None:
            kept.append(found)
        else:
            skipped.append((found.full_name, reason))
    return kept, skipped, 0


def _reason(spec: CampaignSpec, candidate: Candidate) -> str | None:
    """Why the spec leaves this repository out, or None."""
    if candidate.archived and not spec.archived:
        return ARCHIVED
    pattern = excluding_pattern(spec, candidate.full_name)
    if pattern is not None:
        return f"excluded by `exclude` ({pattern})"
    have = {t.lower() for t in candidate.topics}
    missing = [t for t in spec.topics if t.lower() not in have]
    if missing:
        return ("lacks topic " if len(missing) == 1 else "lacks topics ") + ", ".join(f"`{t}`" for t in missing)
    if spec.language and (candidate.language or "").lower() not in {lang.lower() for lang in spec.language}:
        wanted = spec.language[0] if len(spec.language) == 1 else "one of " + ", ".join(spec.language)
        if candidate.language is None:
            return f"has no primary language, not {wanted}"
        return f"language is {candidate.language}, not {wanted}"
    return None


def excluding_pattern(spec: CampaignSpec, full_name: str) -> str | None:
    """The `exclude` entry that leaves `full_name` out: one with `/` matches the full name, one without the name."""
    name = full_name.lower()
    for pattern in spec.exclude:
        target = name if "/" in pattern else name.rpartition("/")[2]
        if glob_match(pattern.lower(), target):
            return pattern
    return None
