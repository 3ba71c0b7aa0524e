"""`.github/honk.yml`: parsing, user-facing error messages, budget merging and test-command detection."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from app.jobs.repo_config import (
    DetectedCommand,
    RepoConfig,
    RepoConfigError,
    detect_test_command,
    parse_repo_config,
)
from app.settings import Settings

FULL = """\
# Honk settings for this repository
setup:
  - pip install -e .[dev]
  - make assets
test: python -m pytest -q tests/unit
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
    assert config.branch_prefix == "honk/"
    assert config.draft == "on_failure"
    assert config.protected_paths == [] and config.allow_workflows is False


def test_every_field_is_read() -> None:
    config = parse_repo_config(FULL)
    assert config.setup == ["pip install -e .[dev]", "make assets"]
    assert config.test == "python -m pytest -q tests/unit"
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


def test_the_source_name_is_used_in_messages() -> None:
    with pytest.raises(RepoConfigError, match=r"^`\.github/honk\.yaml`: `draft`"):
        parse_repo_config("draft: 1", source=".github/honk.yaml")


def test_huge_files_are_refused() -> None:
    assert "larger than 64 KiB" in error_for("# " + "x" * 70_000)


def test_long_values_are_shortened_and_backticks_removed() -> None:
    message = error_for(f"draft: '`{'y' * 200}'\n")
    assert "`y" not in message and "y" * 100 not in message and "..." in message


# Test command detection


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


PYTEST = "python -m pytest -q"


@pytest.mark.parametrize(("files", "reason"), [
    ({"pyproject.toml": "[project]\nname='x'\n[tool.pytest.ini_options]\naddopts='-q'\n"},
     "found `pytest` settings in pyproject.toml"),
    ({"pytest.ini": "[pytest]\n"}, "found pytest.ini"),
    ({"tox.ini": "[tox]\nenvlist=py3\n[pytest]\ntestpaths=tests\n"}, "found a `[pytest]` section in tox.ini"),
    ({"setup.cfg": "[metadata]\nname=x\n[tool:pytest]\naddopts=-q\n"},
     "found a `[tool:pytest]` section in setup.cfg"),
    ({"conftest.py": ""}, "found conftest.py"),
    ({"tests/unit/test_things.py": "def test_x(): pass\n"},
     "found Python test files such as `tests/unit/test_things.py`"),
])
def test_pytest_is_detected(tmp_path: Path, files: dict[str, str], reason: str) -> None:
    assert detect_test_command(write(tmp_path, files)) == DetectedCommand(PYTEST, reason)


@pytest.mark.parametrize("files", [
    {"pyproject.toml": "[project]\nname='x'\n[tool.ruff]\nline-length=100\n"},
    {"tox.ini": "[tox]\nenvlist=py3\n"},
    {"setup.cfg": "[metadata]\nname=x\n"},
    {"tests/helpers.py": "", "tests/data/sample.json": "{}"},
])
def test_python_files_without_pytest_signs_are_not_pytest(tmp_path: Path, files: dict[str, str]) -> None:
    assert detect_test_command(write(tmp_path, files)) is None


def test_npm_needs_a_real_test_script(tmp_path: Path) -> None:
    package = {"name": "x", "scripts": {"test": 'echo "Error: no test specified" && exit 1'}}
    write(tmp_path, {"package.json": json.dumps(package)})
    assert detect_test_command(tmp_path) is None
    package["scripts"]["test"] = "vitest run"
    write(tmp_path, {"package.json": json.dumps(package)})
    assert detect_test_command(tmp_path) == DetectedCommand("npm test", "found a `test` script in package.json")


@pytest.mark.parametrize("text", ["{not json", '{"scripts": {"build": "tsc"}}', '{"scripts": {"test": ""}}',
                                  '{"scripts": {"test": "echo \\"Error: no test specified\\"; exit 1"}}',
                                  '{"scripts": ["test"]}', "[]"])
def test_npm_without_a_usable_test_script(tmp_path: Path, text: str) -> None:
    assert detect_test_command(write(tmp_path, {"package.json": text})) is None


def test_go_and_cargo(tmp_path: Path) -> None:
    assert detect_test_command(write(tmp_path / "go", {"go.mod": "module x\n"})) == DetectedCommand(
        "go test ./...", "found go.mod")
    assert detect_test_command(write(tmp_path / "rs", {"Cargo.toml": "[package]\nname='x'\n"})) == DetectedCommand(
        "cargo test", "found Cargo.toml")


@pytest.mark.parametrize("name", ["Makefile", "makefile", "GNUmakefile"])
def test_make_test_target(tmp_path: Path, name: str) -> None:
    write(tmp_path, {name: ".PHONY: test\nbuild:\n\tcc x.c\n\ntest: build\n\t./run-tests\n"})
    assert detect_test_command(tmp_path) == DetectedCommand("make test", f"found a `test` target in {name}")


@pytest.mark.parametrize("makefile", ["lint test: deps\n\ttrue\n", "test::\n\ttrue\n", "test :\n\ttrue\n"])
def test_make_target_forms(tmp_path: Path, makefile: str) -> None:
    assert detect_test_command(write(tmp_path, {"Makefile": makefile})).command == "make test"


@pytest.mark.parametrize("makefile", ["test := unit\nall:\n\ttrue\n", "test ?= x\n", ".PHONY: test\n",
                                      "tests:\n\ttrue\n", "# test: not really\n", "integration-test:\n\ttrue\n"])
def test_makefile_without_a_test_target(tmp_path: Path, makefile: str) -> None:
    assert detect_test_command(write(tmp_path, {"Makefile": makefile})) is None


def test_nothing_to_detect(tmp_path: Path) -> None:
    assert detect_test_command(write(tmp_path, {"README.md": "hello\n", "main.py": "print(1)\n"})) is None


@pytest.mark.parametrize(("files", "command"), [
    ({"pytest.ini": "", "package.json": '{"scripts": {"test": "jest"}}', "go.mod": "", "Cargo.toml": ""}, PYTEST),
    ({"package.json": '{"scripts": {"test": "jest"}}', "go.mod": "", "Cargo.toml": ""}, "npm test"),
    ({"go.mod": "", "Cargo.toml": ""}, "go test ./..."),
    ({"Cargo.toml": "", "Makefile": "build:\n\ttrue\n"}, "cargo test"),
    ({"pytest.ini": "", "package.json": '{"scripts": {"test": "jest"}}', "Makefile": "test:\n\ttox\n"}, "make test"),
])
def test_precedence(tmp_path: Path, files: dict[str, str], command: str) -> None:
    found = detect_test_command(write(tmp_path, files))
    assert found is not None and found.command == command


def test_detection_executes_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write(tmp_path, {"Makefile": f"test:\n\ttouch {marker}\n",
                     "package.json": json.dumps({"scripts": {"test": f"touch {marker}"}}),
                     "conftest.py": f"open({str(marker)!r}, 'w')\n"})
    assert detect_test_command(tmp_path) is not None
    assert not marker.exists()
