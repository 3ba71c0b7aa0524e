"""A repository's own settings for Honk: the optional `.github/honk.yml` on its default branch.

`parse_repo_config` turns the file's text into a `RepoConfig`, or raises `RepoConfigError` whose message is
meant for the repository's people: it is posted in a status comment, so it names the file, the setting and
the line, in markdown, and never carries a traceback. `detect_test_command` guesses the test command of a
checkout from its files alone, for repositories whose config says nothing about tests.

Example:

    setup: pip install -e .[dev]
    test: python -m pytest -q
    budget:
      max_turns: 40
      max_cost_usd: 5
    draft: on_failure
    protected_paths: ["migrations/**", "*.lock", "LICENSE"]
"""

from __future__ import annotations

import configparser
import difflib
import json
import re
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pathspec
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

if TYPE_CHECKING:
    from app.agent.budget import Budget
    from app.settings import Settings

DEFAULT_SOURCE = ".github/honk.yml"
MAX_CONFIG_BYTES = 64 * 1024  # a settings file larger than this is a mistake, not a configuration

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


Command = Annotated[str, AfterValidator(_command)]
Glob = Annotated[str, AfterValidator(_glob)]


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
    line = _line_of(root, loc)
    at = f", on line {line}" if line else ""
    if error["type"] == "extra_forbidden":
        return _unknown_setting(loc, at)
    field = _field_name(loc)
    rule_key = ".".join(str(p) for p in loc if not isinstance(p, int)) + ("[]" if isinstance(loc[-1], int) else "")
    if error["type"] == "value_error":
        sentence = str(error["msg"]).removeprefix("Value error, ")
    else:
        sentence = _RULES.get(rule_key, "has an invalid value")
    return f"{field} {sentence} (got {_shown(error.get('input'))}){at}."


def _unknown_setting(loc: tuple[Any, ...], at: str) -> str:
    name = str(loc[-1])
    known = list(BudgetConfig.model_fields) if loc[:1] == ("budget",) else list(RepoConfig.model_fields)
    where = "`budget` setting" if loc[:1] == ("budget",) else "setting"
    guess = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean `{guess[0]}`?" if guess else "known ones are " + ", ".join(f"`{k}`" for k in known)
    return f"unknown {where} `{name}`{at}; {hint}"


def _field_name(loc: tuple[Any, ...]) -> str:
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
            found = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)),
                         None)
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


# Test command detection


@dataclass(frozen=True)
class DetectedCommand:
    command: str
    reason: str  # a sentence fragment for the pull request: "found `pytest` settings in pyproject.toml"


PYTEST = "python -m pytest -q"
NPM_DEFAULT_TEST = 'echo "Error: no test specified" && exit 1'
MAX_TEST_FILES_SCANNED = 2000  # enough to find one test file; keeps detection fast on huge trees


def detect_test_command(root: Path) -> DetectedCommand | None:
    """The repository's test command, guessed from its files; nothing is executed.

    A Makefile's own `test` target comes first, since it usually wraps the ecosystem's runner with the
    project's flags; then pytest, npm, go and cargo.
    """
    for detect in (_make, _pytest, _npm, _go, _cargo):
        found = detect(root)
        if found:
            return found
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
    except OSError:
        return None


def _make(root: Path) -> DetectedCommand | None:
    # The file GNU make itself would read first.
    for name in ("GNUmakefile", "makefile", "Makefile"):
        text = _read(root / name)
        if text is not None:
            # `test:` or `lint test: deps`, but not a variable such as `test := x` or `test ?= x`.
            if re.search(r"^(?:[^\s:#=]+[ \t]+)*test(?:[ \t]+[^\s:#=]+)*[ \t]*::?(?!=)", text, re.M):
                return DetectedCommand("make test", f"found a `test` target in {name}")
            return None
    return None


def _pytest(root: Path) -> DetectedCommand | None:
    pyproject = _read(root / "pyproject.toml")
    if pyproject is not None and _has_pytest_table(pyproject):
        return DetectedCommand(PYTEST, "found `pytest` settings in pyproject.toml")
    if (root / "pytest.ini").is_file():
        return DetectedCommand(PYTEST, "found pytest.ini")
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        text = _read(root / name)
        if text is not None and _has_ini_section(text, section):
            return DetectedCommand(PYTEST, f"found a `[{section}]` section in {name}")
    for conftest in ("conftest.py", "tests/conftest.py", "test/conftest.py"):
        if (root / conftest).is_file():
            return DetectedCommand(PYTEST, f"found {conftest}")
    example = _python_test_file(root)
    if example:
        return DetectedCommand(PYTEST, f"found Python test files such as `{example}`")
    return None


def _has_pytest_table(text: str) -> bool:
    try:
        tool = tomllib.loads(text).get("tool", {})
    except tomllib.TOMLDecodeError:
        # A broken pyproject still tells us what the project uses.
        return re.search(r"^\s*\[tool\.pytest[.\]]", text, re.M) is not None
    return isinstance(tool, dict) and "pytest" in tool


def _has_ini_section(text: str, section: str) -> bool:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return re.search(rf"^\s*\[{re.escape(section)}\]", text, re.M) is not None
    return parser.has_section(section)


def _python_test_file(root: Path) -> str | None:
    for folder in ("tests", "test"):
        base = root / folder
        if not base.is_dir():
            continue
        for seen, path in enumerate(base.rglob("*.py")):
            if seen >= MAX_TEST_FILES_SCANNED:
                break
            if path.is_file() and (path.name.startswith("test_") or path.name.endswith("_test.py")):
                return path.relative_to(root).as_posix()
    return None


def _npm(root: Path) -> DetectedCommand | None:
    text = _read(root / "package.json")
    if text is None:
        return None
    try:
        scripts = json.loads(text).get("scripts")
    except (ValueError, AttributeError):
        return None
    test = scripts.get("test") if isinstance(scripts, dict) else None
    if not isinstance(test, str) or not test.strip() or test.strip() == NPM_DEFAULT_TEST or "no test specified" in test:
        return None  # `npm init` writes a test script that only fails
    return DetectedCommand("npm test", "found a `test` script in package.json")


def _go(root: Path) -> DetectedCommand | None:
    if (root / "go.mod").is_file():
        return DetectedCommand("go test ./...", "found go.mod")
    return None


def _cargo(root: Path) -> DetectedCommand | None:
    if (root / "Cargo.toml").is_file():
        return DetectedCommand("cargo test", "found Cargo.toml")
    return None
