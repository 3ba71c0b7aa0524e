"""`.github/honk.yml`: parsing, user-facing error messages and budget merging (detection: test_verifiers.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.jobs.repo_config import RepoConfig, RepoConfigError, parse_repo_config
from app.settings import Settings

FULL = """\
# Honk settings for this repository
setup:
  - pip install -e .[dev]
  - make assets
test: python -m pytest -q tests/unit
verify:
  lint: ruff check .
  types: mypy src
model: claude-sonnet-4-5
budget:
  max_turns: 40
  max_cost_usd: 2.5
branch_prefix: bots/honk-
draft: always
protected_paths: ["migrations/**", "*.lock", "LICENSE"]
allow_workflows: true
"""


def error_for(text: str) -> str:
    with pytest.raises(RepoConfigError) as caught:
        parse_repo_config(text)
    return str(caught.value)


# Valid files


@pytest.mark.parametrize("text", [None, "", "   \n", "# nothing set yet\n", "---\n"])
def test_no_file_or_an_empty_one_means_defaults(text: str | None) -> None:
    config = parse_repo_config(text)
    assert config == RepoConfig()
    assert config.setup == [] and config.test is None and config.model is None and config.budget is None
    assert config.verify is None
    assert config.branch_prefix == "honk/"
    assert config.draft == "on_failure"
    assert config.protected_paths == [] and config.allow_workflows is False


def test_every_field_is_read() -> None:
    config = parse_repo_config(FULL)
    assert config.setup == ["pip install -e .[dev]", "make assets"]
    assert config.test == "python -m pytest -q tests/unit"
    assert config.verify == {"lint": "ruff check .", "types": "mypy src"}
    assert config.model == "claude-sonnet-4-5"
    assert config.budget is not None
    assert (config.budget.max_turns, config.budget.max_cost_usd) == (40, 2.5)
    assert config.budget.max_tokens is None and config.budget.max_wall_seconds is None
    assert config.branch_prefix == "bots/honk-"
    assert config.draft == "always"
    assert config.protected_paths == ["migrations/**", "*.lock", "LICENSE"]
    assert config.allow_workflows is True


def test_a_single_setup_command_is_a_one_item_list() -> None:
    assert parse_repo_config("setup: npm ci\n").setup == ["npm ci"]
    assert parse_repo_config("setup:\n").setup == []
    assert parse_repo_config("protected_paths: '*.lock'\n").protected_paths == ["*.lock"]


@pytest.mark.parametrize(("text", "draft"), [("draft: never", "never"), ("draft: on_failure", "on_failure"),
                                             ("draft: always", "always"), ("draft: no", "never"),
                                             ("draft: true", "always")])
def test_draft_policies(text: str, draft: str) -> None:
    assert parse_repo_config(text).draft == draft


def test_null_test_means_detect() -> None:
    assert parse_repo_config("test: null\n").test is None
    assert parse_repo_config("test: '  make check  '\n").test == "make check"


def test_verify_maps_names_to_commands_in_file_order() -> None:
    config = parse_repo_config("verify:\n  test: .venv/bin/pytest -q\n  lint: '  ruff check .  '\n"
                               "  go-vet: go vet ./...\n  Check.2_x: make check\n  1: make one\n")
    assert config.verify == {"test": ".venv/bin/pytest -q", "lint": "ruff check .", "go-vet": "go vet ./...",
                             "Check.2_x": "make check", "1": "make one"}
    assert list(config.verify) == ["test", "lint", "go-vet", "Check.2_x", "1"]


def test_verify_unset_null_or_empty() -> None:
    assert parse_repo_config("verify:\n").verify is None  # null: detect, as if it were left out
    assert parse_repo_config("verify: {}\n").verify == {}  # an empty map: run no verifiers
    assert parse_repo_config("verify: {lint: ruff check .}\n").verify == {"lint": "ruff check ."}


def test_verify_limits() -> None:
    twenty = "verify:\n" + "".join(f"  v{i}: 'true'\n" for i in range(20))
    assert parse_repo_config(twenty).verify is not None
    assert parse_repo_config("verify:\n  " + "a" * 40 + ": x\n").verify == {"a" * 40: "x"}


def test_test_and_verify_test_together_are_refused() -> None:
    assert error_for("test: make test\ndraft: never\nverify:\n  lint: ruff check .\n  test: pytest\n") == (
        "`.github/honk.yml`: `test` and `verify.test` both set the verifier `test` (on lines 1 and 5); keep one.")
    assert parse_repo_config("test: null\nverify:\n  test: pytest\n").verify == {"test": "pytest"}
    assert parse_repo_config("test: make test\nverify:\n  lint: ruff check .\n").test == "make test"


def test_opens_as_draft_follows_the_policy() -> None:
    assert [parse_repo_config(f"draft: {p}").opens_as_draft(ok) for p in ("never", "on_failure", "always")
            for ok in (True, False)] == [False, False, False, True, True, True]


@pytest.mark.parametrize("prefix", ["honk/", "bots/honk-", "x", "", "team.a/honk_"])
def test_valid_branch_prefixes(prefix: str) -> None:
    assert parse_repo_config(f"branch_prefix: '{prefix}'").branch_prefix == prefix


# Budget and other values merged over Honk's settings


def test_budget_merges_over_settings(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(honk_max_turns=50, honk_max_tokens=123_456, honk_max_cost_usd=7.0,
                             honk_max_wall_seconds=900.0)
    budget = parse_repo_config("budget:\n  max_turns: 12\n  max_wall_seconds: 60\n").budget_over(settings)
    assert (budget.max_turns, budget.max_tokens, budget.max_cost_usd, budget.max_wall_seconds) == (12, 123_456, 7.0,
                                                                                                   60.0)


def test_no_budget_means_the_settings_budget(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(honk_max_turns=9)
    budget = parse_repo_config(None).budget_over(settings)
    assert (budget.max_turns, budget.max_tokens, budget.max_cost_usd, budget.max_wall_seconds) == (
        9, settings.honk_max_tokens, settings.honk_max_cost_usd, settings.honk_max_wall_seconds)


def test_model_and_branch_prefix_fall_back_to_settings(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(honk_model="claude-operator-choice", honk_branch_prefix="ops/")
    assert parse_repo_config(None).model_over(settings) == "claude-operator-choice"
    assert parse_repo_config("model: claude-repo-choice").model_over(settings) == "claude-repo-choice"
    assert parse_repo_config(None).branch_prefix_over(settings) == "ops/"
    assert parse_repo_config("branch_prefix: repo/").branch_prefix_over(settings) == "repo/"


def test_protected_patterns_match_like_gitignore() -> None:
    config = parse_repo_config("protected_paths: ['migrations/**', '*.lock', 'LICENSE', '!keep.lock', 'docs/']")
    assert config.protecting_pattern("migrations/0001_init.py") == "migrations/**"
    assert config.protecting_pattern("frontend/yarn.lock") == "*.lock"
    assert config.protecting_pattern("LICENSE") == "LICENSE"
    assert config.protecting_pattern("docs/index.md") == "docs/"
    assert config.protecting_pattern("keep.lock") is None  # a later `!` pattern unprotects
    assert config.protecting_pattern("app/migrations.py") is None
    assert config.protecting_pattern("src/app.py") is None
    assert not RepoConfig().is_protected("anything")


# Errors: one clear sentence naming the file, the field and the line


@pytest.mark.parametrize(("text", "expected"), [
    ("budget:\n  max_turns: -3\n", "`.github/honk.yml`: `budget.max_turns` must be a positive integer (got -3), "
                                   "on line 2."),
    ("budget:\n  max_tokens: 1.5\n", "`budget.max_tokens` must be a positive integer (got 1.5)"),
    ("budget:\n  max_turns: true\n", "`budget.max_turns` must be a positive integer (got true)"),
    ("budget:\n  max_cost_usd: 0\n", "`budget.max_cost_usd` must be a positive number (got 0)"),
    ("budget:\n  max_cost_usd: .inf\n", "`budget.max_cost_usd` must be a positive number (got inf)"),
    ("budget:\n  max_wall_seconds: soon\n", "`budget.max_wall_seconds` must be a positive number (got 'soon')"),
    ("budget: 5\n", "`budget` must be a mapping with any of `max_turns`"),
    ("setup: 3\n", "`setup` must be a shell command or a list of shell commands (got 3)"),
    ("setup:\n  - make\n  - 3\n", "item 2 of `setup` must be a shell command (a string) (got 3), on line 3."),
    ("setup:\n  - make\n  - ''\n", "item 2 of `setup` must be a shell command, not an empty string"),
    ("test: [a, b]\n", "`test` must be a shell command (a string), or null to let Honk detect one (got a list)"),
    ("test: ''\n", "`test` must be a shell command; leave it out"),
    ("verify: ruff check .\n", "`verify` must be a mapping of verifier names to shell commands, such as "
                               "`lint: ruff check .` (got 'ruff check .'), on line 1."),
    ("verify: [lint, test]\n", "`verify` must be a mapping of verifier names to shell commands, such as "
                               "`lint: ruff check .` (got a list), on line 1."),
    ("verify:\n  lint: ruff check .\n  test: ''\n", "`.github/honk.yml`: `verify.test` must be a shell command, "
                                                     "not an empty string (got ''), on line 3."),
    ("verify:\n  test: '   '\n", "`verify.test` must be a shell command, not an empty string (got '   '), on line 2."),
    ("verify:\n  lint:\n", "`verify.lint` must be a shell command (a string) (got null), on line 2."),
    ("verify:\n  lint: 3\n", "`verify.lint` must be a shell command (a string) (got 3), on line 2."),
    ("verify:\n  lint: [ruff check ., mypy]\n", "`verify.lint` must be a shell command (a string) (got a list), "
                                                 "on line 2."),
    ("verify:\n  1: ''\n", "`verify.1` must be a shell command, not an empty string (got ''), on line 2."),
    ("verify:\n  lint: x\n  unit tests: pytest\n",
     "`.github/honk.yml`: a verifier name in `verify` must be 1 to 40 letters, digits, `_`, `.` or `-`, starting "
     "with a letter or digit (got 'unit tests'), on line 3."),
    ("verify:\n  -lint: x\n", "a verifier name in `verify` must be 1 to 40 letters, digits, `_`, `.` or `-`, "
                               "starting with a letter or digit (got '-lint'), on line 2."),
    ("verify:\n  .hidden: x\n", "starting with a letter or digit (got '.hidden'), on line 2."),
    ("verify:\n  'lint/all': x\n", "starting with a letter or digit (got 'lint/all'), on line 2."),
    ("verify:\n  " + "a" * 41 + ": x\n", "starting with a letter or digit (got '" + "a" * 41 + "'), on line 2."),
    ("verify:\n  lint: x\n  true: y\n", "a verifier name in `verify` must be 1 to 40 letters, digits, `_`, `.` or "
                                         "`-`, starting with a letter or digit (got true), on line 3."),
    ("verify:\n  null: y\n", "starting with a letter or digit (got null), on line 2."),
    ("verify:\n  1.5: y\n", "starting with a letter or digit (got 1.5), on line 2."),
    ("verify:\n" + "".join(f"  v{i}: 'true'\n" for i in range(21)),
     "`.github/honk.yml`: `verify` has 21 verifiers; Honk runs at most 20, on line 1."),
    ("model: 4\n", "`model` must be a model name (a string) (got 4)"),
    ("model: claude opus\n", "`model` must be a model name without spaces"),
    ("branch_prefix: honk bot/\n", "`branch_prefix` must be usable at the start of a git branch name, but it "
                                   "contains a space"),
    ("branch_prefix: honk..bot/\n", "but it contains `..`"),
    ("branch_prefix: 'honk~bot/'\n", "but it contains `~`"),
    ("branch_prefix: 'honk:bot/'\n", "but it contains `:`"),
    ("branch_prefix: 'honk?/'\n", "but it contains `?`"),
    ("branch_prefix: 'honk*/'\n", "but it contains `*`"),
    ("branch_prefix: 'honk[1]/'\n", "but it contains `[`"),
    ("branch_prefix: 'honk\\\\bot/'\n", "but it contains `\\`"),
    ("branch_prefix: 'a^b'\n", "but it contains `^`"),
    ("branch_prefix: -honk/\n", "but it starts with `-`"),
    ("branch_prefix: /honk/\n", "but it starts with `/`"),
    ("branch_prefix: .hidden/\n", "starts with `.`"),
    ("branch_prefix: 7\n", "`branch_prefix` must be a string such as `honk/` (got 7)"),
    ("draft: sometimes\n", "`draft` must be one of `never`, `on_failure`, `always` (got 'sometimes'), on line 1."),
    ("protected_paths: 3\n", "`protected_paths` must be a glob pattern or a list of glob patterns (got 3)"),
    ("protected_paths: ['ok/**', '!']\n", "item 2 of `protected_paths` is not a valid gitignore-style glob pattern "
                                          "(got '!')"),
    ("protected_paths: ['#comment']\n", "item 1 of `protected_paths` is not a valid gitignore-style glob pattern"),
    ("allow_workflows: sure\n", "`allow_workflows` must be `true` or `false` (got 'sure'), on line 1."),
])
def test_each_invalid_value_is_explained(text: str, expected: str) -> None:
    message = error_for(text)
    assert expected in message
    assert message.startswith("`.github/honk.yml`: ")
    assert "\n" not in message and "Traceback" not in message and "pydantic" not in message.lower()


def test_unknown_settings_are_reported_with_a_suggestion() -> None:
    assert error_for("# typo below\ntset: make test\n") == (
        "`.github/honk.yml`: unknown setting `tset`, on line 2; did you mean `test`?")
    assert "unknown `budget` setting `max_turn`, on line 3; did you mean `max_turns`?" in error_for(
        "test: x\nbudget:\n  max_turn: 3\n")
    assert "known ones are `setup`, `test`" in error_for("zzz: 1\n")


def test_several_problems_are_listed() -> None:
    message = error_for("budget:\n  max_turns: 0\ndraft: maybe\n")
    assert message.startswith("`.github/honk.yml` has 2 problems:\n- ")
    assert "- `budget.max_turns` must be a positive integer (got 0), on line 2." in message
    assert "- `draft` must be one of" in message


def test_yaml_syntax_errors_name_the_line() -> None:
    message = error_for("test: make test\nsetup:\n  - a\n bad: [\n")
    assert message.startswith("`.github/honk.yml` is not valid YAML at line 4")
    assert "Traceback" not in message
    assert "line 2, column 6" in error_for("test: x\n  bad: y\n")


@pytest.mark.parametrize(("text", "kind"), [("- test\n- setup\n", "a list"), ("just words\n", "'just words'")])
def test_the_file_must_be_a_mapping(text: str, kind: str) -> None:
    assert error_for(text) == (f"`.github/honk.yml` must be a mapping of settings such as `test: make test` "
                               f"(it is {'a list' if kind == 'a list' else 'the value ' + kind}).")


def test_duplicate_keys_are_refused() -> None:
    assert error_for("test: a\ndraft: never\ntest: b\n") == (
        "`.github/honk.yml`: `test` is set twice (again on line 3); keep one.")
    assert error_for("verify:\n  lint: a\n  test: b\n  lint: c\n") == (
        "`.github/honk.yml`: `lint` is set twice (again on line 4); keep one.")


def test_several_verify_problems_are_listed_each_with_its_line() -> None:
    assert error_for("verify:\n  lint: ''\n  bad name: x\n  types: 7\n") == (
        "`.github/honk.yml` has 3 problems:\n"
        "- `verify.lint` must be a shell command, not an empty string (got ''), on line 2.\n"
        "- a verifier name in `verify` must be 1 to 40 letters, digits, `_`, `.` or `-`, starting with a letter or "
        "digit (got 'bad name'), on line 3.\n"
        "- `verify.types` must be a shell command (a string) (got 7), on line 4.")


def test_the_source_name_is_used_in_messages() -> None:
    with pytest.raises(RepoConfigError, match=r"^`\.github/honk\.yaml`: `draft`"):
        parse_repo_config("draft: 1", source=".github/honk.yaml")


def test_huge_files_are_refused() -> None:
    assert "larger than 64 KiB" in error_for("# " + "x" * 70_000)


def test_long_values_are_shortened_and_backticks_removed() -> None:
    message = error_for(f"draft: '`{'y' * 200}'\n")
    assert "`y" not in message and "y" * 100 not in message and "..." in message
