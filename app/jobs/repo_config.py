"""A repository's own settings for Honk: the optional `.github/honk.yml` on its default branch.

`parse_repo_config` turns the file's text into a `RepoConfig`, or raises `RepoConfigError` whose message is
meant for the repository's people: it is posted in a status comment, so it names the file, the setting and
the line, in markdown, and never carries a traceback. What runs when nothing is declared (verifiers detected
from build files) is app/jobs/verifiers.py's business, not this module's.

Example:

    setup: pip install -e .[dev]
    verify:
      format: ruff format --check .
      lint: ruff check .
      types: mypy src
      test: python -m pytest -q
    budget:
      max_turns: 40
      max_cost_usd: 5
    draft: on_failure
    protected_paths: ["migrations/**", "*.lock", "LICENSE"]

`verify:` maps verifier names to shell commands; when it is present Honk runs exactly those. The older
`test: <command>` still works and means the verifier `test` (setting both `test:` and `verify.test` is an error).
"""

from __future__ import annotations

import difflib
import json
import re
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

import pathspec
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from app.agent.budget import Budget
    from app.settings import Settings

DEFAULT_SOURCE = ".github/honk.yml"
MAX_CONFIG_BYTES = 64 * 1024  # a settings file larger than this is a mistake, not a configuration

MAX_VERIFIERS = 20  # each one runs after every agent round; more than this is a CI pipeline, not a check
VERIFIER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
_NAME_RULE = "must be 1 to 40 letters, digits, `_`, `.` or `-`, starting with a letter or digit"

DraftPolicy = Literal["never", "on_failure", "always"]


class RepoConfigError(ValueError):
    """`.github/honk.yml` is unusable; the message is markdown for the repository's people."""


def _command(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a shell command, not an empty string")
    return value.strip()


def _glob(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a glob pattern, not an empty string")
    if not _compiles(value):
        raise ValueError("is not a valid gitignore-style glob pattern")
    return value


def _verifier_name(value: str) -> str:
    if not VERIFIER_NAME.fullmatch(value):
        raise ValueError(_NAME_RULE)
    return value


Command = Annotated[str, AfterValidator(_command)]
Glob = Annotated[str, AfterValidator(_glob)]
VerifierName = Annotated[str, AfterValidator(_verifier_name)]


class BudgetConfig(BaseModel):
    """Limits for one run; each one left out falls back to the operator's setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_turns: int | None = Field(None, gt=0, strict=True)
    max_tokens: int | None = Field(None, gt=0, strict=True)
    max_cost_usd: float | None = Field(None, gt=0, strict=True, allow_inf_nan=False)
    max_wall_seconds: float | None = Field(None, gt=0, strict=True, allow_inf_nan=False)


class RepoConfig(BaseModel):
    """The settings in `.github/honk.yml`; every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    setup: list[Command] = Field(default_factory=list)
    test: str | None = None
    verify: dict[VerifierName, Command] | None = None  # None: not set (detect); {}: run no verifiers
    model: str | None = None
    budget: BudgetConfig | None = None
    branch_prefix: str = "honk/"
    draft: DraftPolicy = "on_failure"
    protected_paths: list[Glob] = Field(default_factory=list)
    allow_workflows: StrictBool = False

    @field_validator("setup", "protected_paths", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        # `setup: make deps` reads naturally; treat it as a one-command list.
        if value is None:
            return []
        return [value] if isinstance(value, str) else value

    @field_validator("test")
    @classmethod
    def _test_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be a shell command; leave it out (or set it to null) to let Honk detect one")
        return value.strip() if value is not None else None

    @field_validator("verify", mode="before")
    @classmethod
    def _names_as_text(cls, value: object) -> object:
        # YAML reads `verify: {1: make check}` with an integer key; as a name it is the text the file shows.
        if isinstance(value, dict):
            return {str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v for k, v in value.items()}
        return value

    @field_validator("verify")
    @classmethod
    def _not_too_many(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) > MAX_VERIFIERS:
            raise ValueError(f"has {len(value)} verifiers; Honk runs at most {MAX_VERIFIERS}")
        return value

    @model_validator(mode="after")
    def _one_test_verifier(self) -> Self:
        if self.test is not None and self.verify is not None and "test" in self.verify:
            # The error names both settings so the message can cite both lines (see `_one_problem`).
            raise PydanticCustomError("conflict", "`test` and `verify.test` both set the verifier `test`",
                                      {"settings": [["test"], ["verify", "test"]]})
        return self

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c.isspace() for c in value.strip())):
            raise ValueError("must be a model name without spaces, such as `claude-sonnet-4-5`")
        return value.strip() if value is not None else None

    @field_validator("branch_prefix")
    @classmethod
    def _valid_ref_prefix(cls, value: str) -> str:
        problem = _ref_prefix_problem(value)
        if problem:
            raise ValueError(f"must be usable at the start of a git branch name, but it {problem}")
        return value

    @field_validator("draft", mode="before")
    @classmethod
    def _draft_from_bool(cls, value: object) -> object:
        # YAML reads `draft: yes` / `draft: no` as booleans; they mean the obvious thing.
        if isinstance(value, bool):
            return "always" if value else "never"
        return value

    # What callers use

    def budget_over(self, settings: Settings) -> Budget:
        """The run's effective limits: this repository's values over the operator's defaults."""
        from app.agent.budget import Budget  # lazily: the agent package imports much more than this module needs

        overrides = self.budget.model_dump(exclude_none=True) if self.budget else {}
        return Budget.from_settings(settings, **overrides)

    def model_over(self, settings: Settings) -> str:
        return self.model or settings.honk_model

    def branch_prefix_over(self, settings: Settings) -> str:
        """The repository's prefix if it set one, else the operator's (both default to `honk/`)."""
        return self.branch_prefix if "branch_prefix" in self.model_fields_set else settings.honk_branch_prefix

    def opens_as_draft(self, tests_passed: bool) -> bool:
        return self.draft == "always" or (self.draft == "on_failure" and not tests_passed)

    @cached_property
    def protected_spec(self) -> pathspec.PathSpec:
        return pathspec.GitIgnoreSpec.from_lines(self.protected_paths)

    def protecting_pattern(self, path: str) -> str | None:
        """The `protected_paths` pattern that decides `path` is protected, if one does (`!` patterns unprotect)."""
        if not self.protected_paths:
            return None
        result = self.protected_spec.check_file(path)
        return self.protected_paths[result.index] if result.include and result.index is not None else None

    def is_protected(self, path: str) -> bool:
        return self.protecting_pattern(path) is not None


def _ref_prefix_problem(value: str) -> str | None:
    """Why `value` cannot start a branch name (git check-ref-format's rules that a prefix can break)."""
    if any(c.isspace() for c in value):
        return "contains a space"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains a control character"
    if ".." in value:
        return "contains `..`"
    if "@{" in value:
        return "contains `@{`"
    if "//" in value:
        return "contains `//`"
    bad = sorted({c for c in value if c in "~^:?*[\\"})
    if bad:
        return "contains " + ", ".join(f"`{c}`" for c in bad)
    if value.startswith(("-", "/")):
        return f"starts with `{value[0]}`"
    if any(part.startswith(".") or part.endswith(".lock") for part in value.split("/")[:-1]):
        return "has a path component that starts with `.` or ends with `.lock`"
    if value.split("/")[-1].startswith("."):
        return "has a path component that starts with `.`"
    return None


def _compiles(pattern: str) -> bool:
    try:
        compiled = pathspec.GitIgnoreSpec.from_lines([pattern])
    except Exception:  # pathspec raises its own error types for bad patterns; any failure means "invalid"
        return False
    # A pattern gitignore would skip (a `#` comment, a lone `[`) protects nothing: better to say so.
    return any(p.include is not None for p in compiled.patterns)


# Parsing and its error messages

# What each setting must be, as the end of a sentence that starts with its name.
_RULES = {
    "setup": "must be a shell command or a list of shell commands",
    "setup[]": "must be a shell command (a string)",
    "test": "must be a shell command (a string), or null to let Honk detect one",
    "verify": "must be a mapping of verifier names to shell commands, such as `lint: ruff check .`",
    "verify.<name>": "must be a shell command (a string)",
    "verify.<name>[key]": _NAME_RULE,
    "model": "must be a model name (a string)",
    "budget": "must be a mapping with any of `max_turns`, `max_tokens`, `max_cost_usd`, `max_wall_seconds`",
    "budget.max_turns": "must be a positive integer",
    "budget.max_tokens": "must be a positive integer",
    "budget.max_cost_usd": "must be a positive number",
    "budget.max_wall_seconds": "must be a positive number",
    "branch_prefix": "must be a string such as `honk/`",
    "draft": "must be one of `never`, `on_failure`, `always`",
    "protected_paths": "must be a glob pattern or a list of glob patterns",
    "protected_paths[]": "must be a glob pattern (a string)",
    "allow_workflows": "must be `true` or `false`",
}


def parse_repo_config(text: str | None, source: str = DEFAULT_SOURCE) -> RepoConfig:
    """Read `.github/honk.yml`; no file, an empty file or only comments mean the defaults."""
    if text is None or not text.strip():
        return RepoConfig()
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise RepoConfigError(f"`{source}` is larger than {MAX_CONFIG_BYTES // 1024} KiB; Honk does not read it.")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RepoConfigError(_yaml_error(exc, source)) from None
    except RecursionError:
        raise RepoConfigError(f"`{source}` is nested too deeply to be Honk's settings.") from None
    if data is None:
        return RepoConfig()
    if not isinstance(data, dict):
        raise RepoConfigError(f"`{source}` must be a mapping of settings such as `test: make test` "
                              f"(it is {_kind(data)}).")
    duplicate = _duplicate_key(root)
    if duplicate:
        key, line = duplicate
        raise RepoConfigError(f"`{source}`: `{key}` is set twice (again on line {line}); keep one.")
    try:
        return RepoConfig.model_validate(data)
    except ValidationError as exc:
        raise RepoConfigError(_describe(exc, root, source)) from None


def _yaml_error(exc: yaml.YAMLError, source: str) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or "it cannot be parsed"
    context = getattr(exc, "context", None)
    reason = f"{context}, {problem}" if context else problem
    return f"`{source}` is not valid YAML{where}: {reason}."


def _describe(exc: ValidationError, root: yaml.Node | None, source: str) -> str:
    problems = [_one_problem(error, root) for error in exc.errors()]
    problems = list(dict.fromkeys(problems))  # one bad value can fail several checks with the same sentence
    if len(problems) == 1:
        return f"`{source}`: {problems[0]}"
    return f"`{source}` has {len(problems)} problems:\n" + "\n".join(f"- {p}" for p in problems)


def _one_problem(error: Any, root: yaml.Node | None) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "conflict":
        return _conflict(error, root)
    # Pydantic spells a bad mapping key in `loc` as text or a number (`true` becomes 1); the key itself is the input.
    line = _line_of(root, (*loc[:-2], error.get("input")) if loc[-1] == "[key]" else loc)
    at = f", on line {line}" if line else ""
    if error["type"] == "extra_forbidden":
        return _unknown_setting(loc, at)
    field = _field_name(loc)
    if error["type"] == "value_error":
        sentence = str(error["msg"]).removeprefix("Value error, ")
    else:
        sentence = _RULES.get(_rule_key(loc), "has an invalid value")
    value = error.get("input")
    # A sentence about a whole mapping ("has 21 verifiers") says more than "(got a mapping)" would.
    got = "" if error["type"] == "value_error" and isinstance(value, dict) else f" (got {_shown(value)})"
    return f"{field} {sentence}{got}{at}."


def _rule_key(loc: tuple[Any, ...]) -> str:
    if loc[0] == "verify" and len(loc) > 1:  # the names under `verify` are the repository's own
        return "verify.<name>" + ("[key]" if loc[-1] == "[key]" else "")
    return ".".join(str(p) for p in loc if not isinstance(p, int)) + ("[]" if isinstance(loc[-1], int) else "")


def _conflict(error: Any, root: yaml.Node | None) -> str:
    """Two settings that exclude each other: the sentence names both, and their lines."""
    lines = [line for loc in error.get("ctx", {}).get("settings", []) if (line := _line_of(root, tuple(loc)))]
    at = f" (on lines {' and '.join(str(n) for n in lines)})" if len(lines) > 1 else ""
    return f"{error['msg']}{at}; keep one."


def _unknown_setting(loc: tuple[Any, ...], at: str) -> str:
    name = str(loc[-1])
    known = list(BudgetConfig.model_fields) if loc[:1] == ("budget",) else list(RepoConfig.model_fields)
    where = "`budget` setting" if loc[:1] == ("budget",) else "setting"
    guess = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean `{guess[0]}`?" if guess else "known ones are " + ", ".join(f"`{k}`" for k in known)
    return f"unknown {where} `{name}`{at}; {hint}"


def _field_name(loc: tuple[Any, ...]) -> str:
    if loc[0] == "verify" and len(loc) == 3 and loc[-1] == "[key]":
        return "a verifier name in `verify`"
    if loc[0] == "verify" and len(loc) == 2:
        return f"`verify.{loc[1]}`"  # a name such as `1` is a key here, not a list index
    path = ".".join(str(p) for p in loc if not isinstance(p, int))
    if isinstance(loc[-1], int):
        return f"item {loc[-1] + 1} of `{path}`"
    return f"`{path}`"


def _shown(value: object) -> str:
    if isinstance(value, dict | list):
        return _kind(value)
    if isinstance(value, str):
        text = repr(value)
    elif value is None or isinstance(value, bool):
        text = json.dumps(value)  # as YAML spells them: null, true, false
    else:
        text = str(value)
    text = text.replace("`", "'")  # keeps the markdown of the status comment intact
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"the value {_shown(value)}"


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at `loc` (keys of mappings, indices of lists)."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if _is_key(k, part)), None)
            if found is None:
                return line
            key, node = found
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _is_key(node: yaml.Node, part: object) -> bool:
    if not isinstance(node, yaml.ScalarNode):
        return False
    if isinstance(part, str) or node.style is not None:
        return node.value == str(part)
    # A key YAML read as another type (`true:`, `null:`): compare what it reads as, not its spelling.
    try:
        value = yaml.safe_load(node.value)
    except yaml.YAMLError:
        return False
    return type(value) is type(part) and value == part


def _duplicate_key(node: yaml.Node | None) -> tuple[str, int] | None:
    """PyYAML keeps the last of two equal keys silently; a settings file with both is a mistake."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    return key.value, key.start_mark.line + 1
                seen.add(key.value)
            found = _duplicate_key(value)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _duplicate_key(item)
            if found:
                return found
    return None
