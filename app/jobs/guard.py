"""The last check before a push: no secrets, no workflow changes, nothing the repository protects.

`scan_diff` is the pure check over a unified diff and the list of changed paths; `check_change` gets both
from git for a checkout whose changes are staged. A `Refusal` explains one problem to the repository's
people; it names the file and line but never repeats a secret, only what kind it looks like.

Secret patterns come from `app.redact` (one list of what a credential looks like). Redaction can afford to
over-match; refusing a push cannot, so each match must also look random enough to be a real credential
and not a placeholder or an identifier that merely contains a prefix such as `sk-`.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.checkout.workspace import SAFE_OPTIONS, git_env
from app.jobs.repo_config import DEFAULT_SOURCE, RepoConfig
from app.redact import SECRET_PATTERNS as REDACT_PATTERNS

RefusalKind = Literal["secret", "workflow", "protected_path", "nested_repository", "symlink"]
WORKFLOWS_DIR = ".github/workflows/"
GIT_TIMEOUT_SECONDS = 120


class GuardError(RuntimeError):
    """git could not describe the change, so it cannot be checked (and must not be pushed)."""


@dataclass(frozen=True)
class Refusal:
    kind: RefusalKind
    path: str
    line: int | None  # the line in the new file, for secrets
    message: str  # markdown for a status comment; never contains the secret


@dataclass(frozen=True)
class AddedLine:
    path: str
    number: int
    text: str


# Which of redact's patterns are worth refusing a push for, and how to name them. The rest (bearer and
# authorization headers, JWTs, passwords in URLs) appear as harmless examples in code and docs far too often;
# the assignment rule below still catches such values when they are random and stored under a secret's name.
_KINDS = {
    "private-key": "a private key",
    "github-token": "a GitHub token",
    "anthropic-key": "an Anthropic API key",
    "api-key": "an API key",
    "aws-key": "an AWS access key",
    "aws-secret": "an AWS secret access key",
    "slack-token": "a Slack token",
    "slack-webhook": "a Slack webhook URL",
    "google-key": "a Google API key",
}
_TOKEN_PATTERNS = [(label, pattern, keep) for label, pattern, keep, _hints in REDACT_PATTERNS
                   if label in _KINDS and label != "private-key"]
_PEM_BEGIN = next(pattern for label, pattern, _keep, _hints in REDACT_PATTERNS if label == "private-key")

# The fixed start of each token kind: shown in messages (it is not secret) and left out of the entropy.
_PREFIX = re.compile(r"^(?:gh[pousr]_|github_pat_|sk-ant-(?:[a-z]+\d+-)?|sk-(?:proj-|live_|test_)?|"
                     r"[rs]k_(?:live|test)_|AKIA|ASIA|AIza|xox[a-z]-|https://hooks\.slack\.com/services/)")
# Made-up values give themselves away: they say what they are (`sk-ant-test-key-…`), count (`0123456789`) or
# stand in for something (`<your-token>`). Random credentials contain none of these but by rare chance.
_PLACEHOLDER_WORDS = ("example", "xxxx", "your", "placeholder", "dummy", "redacted", "sample", "changeme",
                      "replace", "test", "fake", "mock", "secret", "token", "passw", "0123456", "123456789",
                      "abcdef", "****", "...", "<", ">", "${", "{{", "%(")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{40,}")

# `name = "value"`, `name: value`, `NAME=value`, `"name": "value"`, `name: str = "value"`, `name := value`.
_SECRET_NAME = (r"[\w.\-]*(?:password|passwd|passphrase|secret|token|api[_.\-]?key|access[_.\-]?key|"
                r"private[_.\-]?key|auth[_.\-]?key|credential)s?(?-i:(?![a-z]))[\w.\-]*")  # not `tokenizer`
_ASSIGNMENT = re.compile(
    rf"""(?ix)(?<![\w.\-])(?P<name>{_SECRET_NAME})["']?
    (?:\s*:\s*[a-z_][\w\[\]., |]*?\s*=|\s*(?::=|=>|==|=|:))[ \t]*
    (?P<value>"[^"]*"|'[^']*'|`[^`]*`|[^\s,;#"'`)\]}}]+)""")
# Names that hold something about a secret rather than the secret itself.
_ABOUT_WORDS = ("url|uri|path|file|dir|name|env|var|header|type|id|field|label|prompt|count|len|length|size|limit|"
                "commit|rev|revision|ref")
_NOT_A_SECRET_NAME = re.compile(rf"(?i)hash|digest|checksum|fingerprint|integrity|(?:^|[_.\-])sha\d*(?:$|[_.\-])|"
                                rf"[_.\-](?:{_ABOUT_WORDS})$|"
                                rf"(?-i:[a-z0-9](?:{_ABOUT_WORDS.title()})$)")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
# snake_case, CONSTANT_CASE and dotted names; a lower-case hex secret has no underscore, so it is not one.
_IDENTIFIER = re.compile(r"^[a-z]+(?:_[a-z0-9]+)+$|^[A-Z]+(?:_[A-Z0-9]+)+$|^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")
_SOURCE_SUFFIXES = {".py", ".pyi", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".go", ".rs", ".java", ".kt", ".kts",
                    ".scala", ".swift", ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".rb", ".php", ".dart", ".lua"}
MIN_GENERIC_LENGTH = 20
MIN_GENERIC_ENTROPY = 3.5  # bits per character; random base64/base62 has ~4.5+, words and identifiers less
MIN_TOKEN_ENTROPY = 3.0  # the body of a prefixed token: fails only on runs like `ghp_aaaa...` or `AKIAXXXX...`


def check_change(root: Path, base: str, config: RepoConfig, git_env: Mapping[str, str] | None = None
                 ) -> list[Refusal]:
    """Check everything staged in `root` against commit `base`.

    The caller stages the agent's work first (`git add -A`), so new files are included; this function only
    reads. git runs with Honk's own configuration (`git_env`: a workspace's git directory named explicitly)
    and options that keep the output's shape fixed and run no program (external diff, textconv).
    """
    diff = _git(root, git_env, "diff", "--cached", "--no-color", "--no-ext-diff", "--no-textconv", "--no-relative",
                "--src-prefix=a/", "--dst-prefix=b/", "-M", base, "--")
    names = _git(root, git_env, "diff", "--cached", "--no-ext-diff", "--no-relative", "--name-status", "-z", "-M",
                 base, "--")
    raw = _git(root, git_env, "diff", "--cached", "--no-ext-diff", "--no-relative", "--raw", "-z", "--no-renames",
               "--abbrev=40", base, "--")
    links = {path: _git(root, git_env, "cat-file", "blob", sha) for path, sha in symlinks_added(raw)}
    return scan_diff(diff, parse_name_status(names), config) + tree_refusals(raw, links)


def scan_diff(diff_text: str, changed_paths: list[str], config: RepoConfig) -> list[Refusal]:
    """Every reason not to push this change; empty when it may go.

    `changed_paths` holds each added, modified or deleted path, and both sides of a rename.
    """
    refusals = _path_refusals(changed_paths, config)
    refusals += _secret_refusals(added_lines(diff_text))
    return refusals


def format_refusals(refusals: list[Refusal]) -> str:
    """The refusals as a markdown list for the status comment."""
    return "\n".join(f"- {r.message}" for r in refusals)


# Paths


def _path_refusals(paths: list[str], config: RepoConfig) -> list[Refusal]:
    refusals: list[Refusal] = []
    for path in dict.fromkeys(paths):  # a path may come twice (a rename's side and a modification)
        refusal = _path_refusal(path, config)
        if refusal:
            refusals.append(refusal)
    return refusals


def _path_refusal(path: str, config: RepoConfig) -> Refusal | None:
    if ".git" in path.split("/"):
        return Refusal("protected_path", path, None, f"`{path}` is inside a `.git` directory, which Honk never "
                                                      "changes.")
    if path.startswith(WORKFLOWS_DIR) and not config.allow_workflows:
        return Refusal("workflow", path, None, f"`{path}` is a GitHub Actions workflow; Honk changes workflows only "
                                               f"when `{DEFAULT_SOURCE}` sets `allow_workflows: true`.")
    pattern = config.protecting_pattern(path)
    if pattern is not None:
        return Refusal("protected_path", path, None, f"`{path}` matches `{pattern}` in `protected_paths` of "
                                                     f"`{DEFAULT_SOURCE}`, so Honk may not change it.")
    return None


# What the tree itself may not hold


def symlinks_added(raw: str) -> list[tuple[str, str]]:
    """(path, blob) of every symlink the change adds or retargets, from `git diff --raw -z --abbrev=40`."""
    return [(path, new_sha) for new_mode, new_sha, path in _raw_entries(raw) if new_mode == "120000"]


def tree_refusals(raw: str, link_targets: Mapping[str, str]) -> list[Refusal]:
    """Nested repositories (gitlinks) and symlinks that lead outside the repository are never pushed: the
    first would make a checkout read another repository, the second points a reader's tools at their own
    files."""
    refusals = []
    for new_mode, _sha, path in _raw_entries(raw):
        if new_mode == "160000":
            refusals.append(Refusal("nested_repository", path, None,
                                    f"`{path}` is a nested git repository (a gitlink); Honk does not push those. "
                                    "Remove its `.git` or make it a real submodule by hand."))
        elif new_mode == "120000" and path in link_targets and _escapes(path, link_targets[path]):
            refusals.append(Refusal("symlink", path, None,
                                    f"`{path}` is a symlink to `{link_targets[path][:200]}`, outside the "
                                    "repository; Honk does not push those."))
    return refusals


def _raw_entries(raw: str) -> list[tuple[str, str, str]]:
    """(new mode, new blob, path) per entry of `git diff --raw -z --no-renames`."""
    fields = raw.split("\0")
    entries = []
    for i in range(0, len(fields) - 1, 2):
        meta, path = fields[i].lstrip(":").split(), fields[i + 1]
        if len(meta) >= 5:
            entries.append((meta[1], meta[3], path))
    return entries


def _escapes(path: str, target: str) -> bool:
    if not target or target.startswith("/") or "\0" in target:
        return True
    depth = len(path.split("/")) - 1  # directories between the root and the link
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


# Secrets


def _secret_refusals(lines: list[AddedLine]) -> list[Refusal]:
    refusals: list[Refusal] = []
    for index, line in enumerate(lines):
        found: list[tuple[int, int, str, str]] = []  # start, end, kind, masked value
        if _private_key_at(lines, index):
            found.append((0, len(line.text), "private-key", "-----BEGIN … PRIVATE KEY-----"))
        found += _tokens(line.text, found)
        found += _assignments(line.text, found, bare_values=not _is_source_code(line.path))
        for start, end, kind, masked in found:
            refusals.append(_secret_refusal(line, line.text[start:end], kind, masked))
    return refusals


def _secret_refusal(line: AddedLine, value: str, kind: str, masked: str) -> Refusal:
    what = _KINDS.get(kind, "a secret")
    message = (f"`{line.path}` line {line.number} adds what looks like {what} (`{masked}`). Remove it and read "
               "it from the environment or a secret store instead.")
    if value and value in message:  # the name of a generic secret is shown; never let the value slip in with it
        message = message.replace(value, "****")
    return Refusal("secret", line.path, line.number, message)


def _private_key_at(lines: list[AddedLine], index: int) -> bool:
    """A PEM header with key material after it, on the same line (an escaped one-line key) or the next ones.

    Code that merely looks for the header (`if "-----BEGIN RSA PRIVATE KEY-----" in text`) is not a key.
    """
    line = lines[index]
    match = _PEM_BEGIN.search(line.text)
    if not match:
        return False
    rest = line.text[match.start():]
    if any(_random_enough(run, MIN_TOKEN_ENTROPY) and not _looks_placeholder(run) for run in _BASE64_RUN.findall(rest)):
        return True
    for following in lines[index + 1:index + 6]:
        if following.path != line.path or following.number != line.number + 1:
            return False
        line = following
        core = re.sub(r"\\n|[\s\"',;+]", "", following.text)  # quotes and concatenation around a body line
        if not core or re.match(r"(?:Proc-Type|DEK-Info):", core):
            continue  # an encrypted key's headers, or the blank line after them
        return (re.fullmatch(r"[A-Za-z0-9/=]{40,}", core) is not None and not _looks_placeholder(core)
                and _random_enough(core, MIN_TOKEN_ENTROPY))
    return False


def _tokens(text: str, taken: list[tuple[int, int, str, str]]) -> list[tuple[int, int, str, str]]:
    found: list[tuple[int, int, str, str]] = []
    for kind, pattern, keep in _TOKEN_PATTERNS:
        for match in pattern.finditer(text):
            start = match.end(keep) if keep else match.start()
            end = match.end()
            if _overlaps(start, end, taken + found):
                continue
            # `task-…` contains `sk-`: a token starts at a word boundary, or after its assignment (`keep`).
            if not keep and start > 0 and text[start - 1].isalnum():
                continue
            value = text[start:end]
            prefix = _PREFIX.match(value)
            body = value[prefix.end():] if prefix else value
            if _looks_placeholder(body) or not _random_enough(body, MIN_TOKEN_ENTROPY):
                continue
            found.append((start, end, kind, (prefix.group(0) if prefix else "") + "****"))
    return found


def _assignments(text: str, taken: list[tuple[int, int, str, str]], *,
                 bare_values: bool) -> list[tuple[int, int, str, str]]:
    found: list[tuple[int, int, str, str]] = []
    for match in _ASSIGNMENT.finditer(text):
        name, raw = match.group("name"), match.group("value")
        quoted = raw[:1] in "\"'`" and len(raw) >= 2
        if not quoted and not bare_values:
            continue
        value = raw[1:-1] if quoted else raw
        start = match.start("value") + (1 if quoted else 0)
        end = start + len(value)
        if _overlaps(start, end, taken + found) or not _secret_value(name, value, quoted):
            continue
        found.append((start, end, "generic", f"{name} = ****"))
    return found


def _secret_value(name: str, value: str, quoted: bool) -> bool:
    """Whether `value`, stored under a secret's `name`, is a real credential rather than code or a stand-in."""
    if _NOT_A_SECRET_NAME.search(name):
        return False
    if any(c.isspace() for c in value) or "://" in value or value.startswith(("/", "./", "../", "~/")):
        return False  # prose, URLs and paths
    if _UUID.match(value) or re.match(r"^sha(?:1|256|384|512)-", value):
        return False  # identifiers and checksums, e.g. lockfiles' integrity strings
    # A bare hex string under a secret's name is kept: OAuth client secrets and `openssl rand -hex` look so;
    # git SHAs and checksums come under names such as `commit` or `sha`, which never get this far.
    if not quoted and (any(c in value for c in "([{$%") or _IDENTIFIER.match(value)):
        return False  # code: `os.environ["TOKEN"]`, `settings.api_token`, `DEFAULT_TOKEN`
    if not (re.search(r"\d", value) and re.search(r"[A-Za-z]", value)):
        return False  # random credentials mix letters and digits; words and numbers alone do not
    return not _looks_placeholder(value) and _random_enough(value, MIN_GENERIC_ENTROPY, MIN_GENERIC_LENGTH)


def _is_source_code(path: str) -> bool:
    """In program source a literal secret is quoted; an unquoted value there is code (`key: KeyType`)."""
    return Path(path).suffix.lower() in _SOURCE_SUFFIXES


def _looks_placeholder(value: str) -> bool:
    lowered = value.lower()
    return any(word in lowered for word in _PLACEHOLDER_WORDS)


def _random_enough(value: str, min_entropy: float, min_length: int = 1) -> bool:
    return len(value) >= min_length and shannon_entropy(value) >= min_entropy


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`'s own character distribution."""
    if not value:
        return 0.0
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _overlaps(start: int, end: int, spans: list[tuple[int, int, str, str]]) -> bool:
    return any(start < other_end and other_start < end for other_start, other_end, _kind, _masked in spans)


# Reading git's output


def added_lines(diff_text: str) -> list[AddedLine]:
    """The `+` lines of a unified diff with their paths and new-file line numbers.

    Hunk headers give the number of old and new lines, which tells a `+++` header from an added line that
    starts with `++`.
    """
    lines: list[AddedLine] = []
    path: str | None = None
    old_left = new_left = 0
    number = 0
    for raw in diff_text.split("\n"):  # not splitlines(): a form feed inside a line is not a line break
        if old_left > 0 or new_left > 0:
            tag, text = raw[:1], raw[1:]
            if tag == "+":
                if path is not None:
                    lines.append(AddedLine(path, number, text))
                number += 1
                new_left -= 1
            elif tag == "-":
                old_left -= 1
            elif tag == " " or raw == "":
                number += 1
                old_left -= 1
                new_left -= 1
            continue  # "\ No newline at end of file" and anything else count for neither side
        if raw.startswith("+++ "):
            path = _header_path(raw[4:])
        elif raw.startswith("@@ "):
            header = re.match(r"@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", raw)
            if header:
                old_left = int(header.group(1) or 1)
                number = int(header.group(2))
                new_left = int(header.group(3) or 1)
        elif raw.startswith("diff --git "):
            path = None
    return lines


def _header_path(text: str) -> str | None:
    text = text.rstrip("\n").removesuffix("\t")  # git ends a name that contains spaces with a tab
    if text == "/dev/null":
        return None
    if text.startswith('"'):
        text = _unquote(text)
    return text[2:] if text.startswith("b/") else text


def _unquote(text: str) -> str:
    """Undo git's C-style quoting of unusual file names ("a\\303\\251.txt" -> "aé.txt")."""
    body = text[1:-1] if text.endswith('"') else text[1:]
    out = bytearray()
    escapes = {"n": b"\n", "t": b"\t", '"': b'"', "\\": b"\\", "a": b"\a", "b": b"\b", "f": b"\f", "r": b"\r",
               "v": b"\v"}
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            if re.match(r"[0-7]{3}", body[i + 1:i + 4]):
                out.append(int(body[i + 1:i + 4], 8))
                i += 4
                continue
            out += escapes.get(body[i + 1], body[i + 1].encode())
            i += 2
            continue
        out += char.encode()
        i += 1
    return out.decode("utf-8", errors="replace")


def parse_name_status(output: str) -> list[str]:
    """Paths from `git diff --name-status -z`: both sides of a rename or copy, each path once."""
    fields = output.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i]
        count = 2 if status[:1] in ("R", "C") else 1
        paths += fields[i + 1:i + 1 + count]
        i += 1 + count
    return list(dict.fromkeys(p for p in paths if p))


def _git(root: Path, extra_env: Mapping[str, str] | None, *args: str) -> str:
    # Honk's own git environment: GIT_DIR and friends from the caller's environment are dropped with the rest.
    env = git_env() | dict(extra_env or {})
    command = ["git", "-C", str(root), *SAFE_OPTIONS, "-c", "core.quotePath=false",
               "-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false", *args]
    try:
        result = subprocess.run(command, capture_output=True, env=env, timeout=GIT_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GuardError(f"could not run git diff to check the change: {exc}") from None
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GuardError(f"git diff failed while checking the change: {detail[-1] if detail else result.returncode}")
    return result.stdout.decode("utf-8", "replace")
