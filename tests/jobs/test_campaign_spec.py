"""Campaign issues: the ```yaml honk-campaign``` block, its error messages, globs and the first cut of repositories."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from app.jobs.campaign_spec import (
    MAX_BLOCK_BYTES,
    MAX_REPOS,
    NO_BLOCK,
    NOT_INSTALLED,
    ONLY_BLOCK,
    CampaignRequest,
    CampaignSpec,
    CampaignSpecError,
    Candidate,
    glob_match,
    has_campaign_block,
    matching_path,
    parse_campaign,
    preselect,
)

TASK = "Replace the deprecated `request` package with `fetch`."


def body_with(block: str, *, before: str = TASK + "\n\n", fence: str = "```yaml honk-campaign", close: str = "```",
              after: str = "") -> str:
    return f"{before}{fence}\n{block}{close}\n{after}"


def error_for(body: str | None) -> CampaignSpecError:
    with pytest.raises(CampaignSpecError) as caught:
        parse_campaign(body)
    return caught.value


def spec_of(block: str) -> CampaignSpec:
    return parse_campaign(body_with(block)).spec


# Finding the block and the task


def test_a_full_block_is_read() -> None:
    body = body_with(
        "repos: all\n"
        "topics: [python, Web]\n"
        "language: [JavaScript, TypeScript]\n"
        "has_file: '**/package.json'\n"
        "exclude: [acme/legacy-*, acme/old]\n"
        "archived: true\n"
        "canary: 0\n"
        "concurrency: 50\n"
        "auto_rollout: true\n"
        "budget_usd: 12.5\n",
        after="\nMore detail below the block.\n",
    )
    request = parse_campaign(body)
    assert request == CampaignRequest(
        task=TASK + "\n\n\nMore detail below the block.",
        spec=CampaignSpec(
            repos=None,
            topics=("python", "web"),
            language=("JavaScript", "TypeScript"),
            has_file="**/package.json",
            exclude=("acme/legacy-*", "acme/old"),
            archived=True,
            canary=0,
            concurrency=50,
            auto_rollout=True,
            budget_usd=12.5,
        ),
        block_line=3,
    )
    assert request.spec.selects_all


def test_defaults() -> None:
    spec = spec_of("repos: [acme/api]\n")
    assert spec == CampaignSpec(repos=("acme/api",))
    assert (spec.canary, spec.concurrency, spec.auto_rollout, spec.archived, spec.budget_usd) == (3, 5, False, False,
                                                                                                  None)
    assert spec.topics == spec.language == spec.exclude == () and spec.has_file is None


def test_task_is_the_body_without_the_block() -> None:
    body = "Intro line\n\n```yaml honk-campaign\nrepos: all\n```\n\nOutro line\n"
    request = parse_campaign(body)
    assert request.task == "Intro line\n\n\nOutro line"
    assert request.block_line == 3


@pytest.mark.parametrize(
    "fence",
    ["```yaml honk-campaign", "```   yaml    honk-campaign   ", "``` YAML Honk-Campaign", "~~~yaml honk-campaign",
     "~~~~ yaml honk-campaign", "  ```yaml honk-campaign", "````yaml\thonk-campaign"],
)
def test_fence_spellings(fence: str) -> None:
    char = fence.strip()[0]
    close = char * (len(fence.strip()) - len(fence.strip().lstrip(char)))
    body = body_with("repos: all\n", fence=fence, close=close)
    assert has_campaign_block(body)
    assert parse_campaign(body).spec.repos is None


def test_tilde_fence_is_not_closed_by_backticks() -> None:
    body = "Task\n~~~yaml honk-campaign\nrepos: all\n```\nconcurrency: 2\n~~~\n"
    error = error_for(body)  # the ``` line is inside the block, where YAML refuses it
    assert str(error).startswith("the campaign block is not valid YAML: ") and error.line == 4
    assert parse_campaign(body.replace("```", "# ```")).spec.concurrency == 2


def test_crlf_body() -> None:
    body = "Line one\r\nLine two\r\n\r\n```yaml honk-campaign\r\nrepos: all\r\ncanary: x\r\n```\r\n"
    error = error_for(body)
    assert str(error) == "`canary` must be a whole number from 0 to 100 (got 'x'), on line 6."
    good = "Line one\r\nLine two\r\n```yaml honk-campaign\r\nrepos: [acme/a]\r\n```\r\nEnd\r\n"
    request = parse_campaign(good)
    assert request.task == "Line one\nLine two\nEnd"
    assert request.spec.repos == ("acme/a",)


def test_indented_fence_content_is_dedented() -> None:
    body = "Task\n  ```yaml honk-campaign\n  repos: all\n  canary: 1\n  ```\n"
    assert parse_campaign(body).spec.canary == 1


def test_a_block_shown_inside_another_block_does_not_count() -> None:
    body = (
        "Task\n\n````markdown\n```yaml honk-campaign\nrepos: [acme/wrong]\n```\n````\n\n"
        "```yaml honk-campaign\nrepos: [acme/right]\n```\n"
    )
    request = parse_campaign(body)
    assert request.spec.repos == ("acme/right",)
    assert "acme/wrong" in request.task


def test_a_plain_yaml_block_is_not_the_campaign_block() -> None:
    body = "Task\n```yaml\nrepos: all\n```\n"
    assert not has_campaign_block(body)
    error = error_for(body)
    assert str(error) == NO_BLOCK and error.key is None and error.line is None


@pytest.mark.parametrize("body", [None, "", "Just a task, no block."])
def test_no_block(body: str | None) -> None:
    error = error_for(body)
    assert str(error) == "the issue has no ```yaml honk-campaign``` block; add one with at least `repos:`"
    assert error.key is None and error.line is None
    assert not has_campaign_block(body)


def test_a_near_miss_is_pointed_at() -> None:
    body = "Task\n\n```honk-campaign\nrepos: all\n```\n"
    error = error_for(body)
    assert str(error).startswith(NO_BLOCK)
    assert "the block on line 3 is marked `honk-campaign`" in str(error)
    assert error.line == 3


def test_two_blocks_name_both_lines() -> None:
    body = "Task\n```yaml honk-campaign\nrepos: all\n```\ntext\n~~~yaml honk-campaign\nrepos: all\n~~~\n"
    error = error_for(body)
    assert str(error) == "the issue has 2 ```yaml honk-campaign``` blocks (on lines 2 and 6); keep one."
    assert error.line == 2 and error.key is None
    assert has_campaign_block(body)


def test_block_only_body() -> None:
    error = error_for("```yaml honk-campaign\nrepos: all\n```\n")
    assert str(error) == ONLY_BLOCK + "."
    assert error.key is None and error.line is None


def test_unclosed_block_runs_to_the_end() -> None:
    request = parse_campaign("Task above\n```yaml honk-campaign\nrepos: all\ncanary: 1\n")
    assert request.task == "Task above" and request.spec.canary == 1
    error = error_for("```yaml honk-campaign\nrepos: all\n\nPlease update the README.\n")
    assert "never closed" in str(error)  # the task was swallowed by the block


def test_empty_task_is_reported_with_the_block_problems() -> None:
    error = error_for("```yaml honk-campaign\nrepos: all\ncanary: -1\n```")
    assert str(error).splitlines() == [
        "`canary` must be a whole number from 0 to 100 (got -1), on line 3.",
        ONLY_BLOCK + ".",
    ]


# Line numbers count in the issue body


def test_lines_count_in_the_issue_body() -> None:
    body = (
        "Title-ish line\n\nSome task text.\n\n"
        "```yaml honk-campaign\nrepos: all\ntopics: [python]\n\nconcurrency: 0\n```\n"
    )
    request_error = error_for(body)
    assert str(request_error) == "`concurrency` must be a whole number from 1 to 50 (got 0), on line 9."
    assert (request_error.key, request_error.line) == ("concurrency", 9)


def test_the_contract_example() -> None:
    body = "\n" * 10 + "Task\n```yaml honk-campaign\nrepos: all\nconcurrency: five\n```\n"
    assert str(error_for(body)) == "`concurrency` must be a whole number from 1 to 50 (got 'five'), on line 14."


def test_list_items_have_their_own_lines() -> None:
    error = error_for(body_with("repos:\n  - acme/api\n  - acme\n  - acme/web\n"))
    assert str(error) == "item 2 of `repos` must be a repository as `owner/name`, such as `acme/api` (got 'acme'), " \
                         "on line 6."
    assert error.line == 6


def test_yaml_error_lines_are_in_the_body() -> None:
    error = error_for(body_with("repos: all\ncanary: [1, 2\n"))
    assert str(error).startswith("the campaign block is not valid YAML: ")
    assert error.line is not None and 4 <= error.line <= 6
    error = error_for(body_with("repos: all\n\tcanary: 1\n"))
    assert error.line == 5 and str(error).endswith("on line 5.")


def test_unicode_line_separators_do_not_shift_lines() -> None:
    # PyYAML breaks lines at U+2028; GitHub does not.
    error = error_for(body_with("topics: ['a\u2028b']\nrepos: all\ncanary: x\n"))
    assert [p.line for p in error.problems] == [4, 6]  # the topic with U+2028 in it, then `canary`


def test_a_character_yaml_refuses() -> None:
    error = error_for(body_with("repos: all\ncanary: 1\x00\n"))
    assert str(error) == "the campaign block contains a character YAML does not allow (U+0000), on line 5."


# Every class of mistake


def test_all_problems_at_once_in_line_order() -> None:
    error = error_for(body_with(
        "budget_usd: 0\n"
        "conurrency: 3\n"
        "repos: [acme/api, nope]\n"
        "archived: 'yes'\n"
        "canary: true\n"
    ))
    assert str(error).splitlines() == [
        "`budget_usd` must be a positive number of US dollars, such as `25` (got 0), on line 4.",
        "unknown key `conurrency` on line 5; did you mean `concurrency`?",
        "item 2 of `repos` must be a repository as `owner/name`, such as `acme/api` (got 'nope'), on line 6.",
        "`archived` must be `true` or `false` (got 'yes'), on line 7.",
        "`canary` must be a whole number from 0 to 100 (got true), on line 8.",
    ]
    assert (error.key, error.line) == ("budget_usd", 4)
    assert [p.line for p in error.problems] == [4, 5, 6, 7, 8]


@pytest.mark.parametrize(
    ("key", "guess"),
    [("conurrency", "concurrency"), ("Repos", "repos"), ("repositories", "repos"), ("has-file", "has_file"),
     ("languages", "language"), ("budget", "budget_usd"), ("auto_rolout", "auto_rollout")],
)
def test_unknown_keys_get_a_guess(key: str, guess: str) -> None:
    error = error_for(body_with(f"repos: all\n{key}: 1\n"))
    assert str(error) == f"unknown key `{key}` on line 5; did you mean `{guess}`?"
    assert error.key == key


def test_unknown_key_without_a_guess_lists_the_known_ones() -> None:
    message = str(error_for(body_with("repos: all\nzzz: 1\n")))
    assert message.startswith("unknown key `zzz` on line 5; known keys are `repos`, `topics`")


def test_non_text_keys() -> None:
    message = str(error_for(body_with("repos: all\n1: x\nyes: y\n")))
    assert "unknown key `1` on line 5" in message and "unknown key `yes` on line 6" in message


def test_duplicate_keys_name_both_lines() -> None:
    error = error_for(body_with("repos: all\ncanary: 1\nconcurrency: 2\ncanary: 2\n"))
    assert str(error) == "`canary` is set twice (on lines 5 and 7); keep one."
    assert (error.key, error.line) == ("canary", 5)


def test_missing_repos() -> None:
    error = error_for(body_with("canary: 1\n"))
    assert str(error) == ("`repos` is missing from the campaign block on line 3: set it to `all` or to a list of "
                          "repositories such as `[acme/api, acme/web]`.")
    assert (error.key, error.line) == ("repos", 3)


@pytest.mark.parametrize("block", ["", "\n\n", "# only a comment\n"])
def test_empty_block(block: str) -> None:
    error = error_for(body_with(block))
    assert str(error).startswith("the campaign block on line 3 is empty; add at least `repos:`")
    assert error.key == "repos"


@pytest.mark.parametrize(("block", "kind"), [("- acme/api\n", "a list"), ("all\n", "the value 'all'")])
def test_block_must_be_a_mapping(block: str, kind: str) -> None:
    assert str(error_for(body_with(block))) == (
        f"the campaign block on line 3 must be a mapping of settings such as `repos: all` (it is {kind}), on line 4."
    )


def test_block_size_limit() -> None:
    block = "repos: all\n" + "# padding\n" * (MAX_BLOCK_BYTES // 10)
    error = error_for(body_with(block))
    assert str(error).startswith("the campaign block on line 3 is larger than 64 KB")


def test_repos_limit() -> None:
    names = ", ".join(f"a/{i}" for i in range(MAX_REPOS + 1))
    error = error_for(body_with(f"repos: [{names}]\n"))
    assert str(error) == ("`repos` lists 5,001 repositories; a campaign takes at most 5,000 (split it into several "
                          "campaigns, or use `all` with filters), on line 4.")


def test_repos_at_the_limit_is_fine() -> None:
    names = ", ".join(f"a/{i}" for i in range(MAX_REPOS))
    assert len(spec_of(f"repos: [{names}]\n").repos or ()) == MAX_REPOS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("all", None),
        ("ALL", None),
        ("acme/api", ("acme/api",)),
        ("[acme/api, Acme/API, acme/web]", ("acme/api", "acme/web")),
        ("[my-org/repo.name_1, a/b]", ("my-org/repo.name_1", "a/b")),
    ],
)
def test_repos_shapes(value: str, expected: tuple[str, ...] | None) -> None:
    assert spec_of(f"repos: {value}\n").repos == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[]", "`repos` must list at least one repository, or be `all`, on line 4."),
        ("", "`repos` must be `all` or a list of repositories such as `[acme/api, acme/web]` (got null), on line 4."),
        ("5", "`repos` must be `all` or a list of repositories such as `[acme/api, acme/web]` (got 5), on line 4."),
        ("acme", "`repos` must be `all` or a list of repositories such as `[acme/api, acme/web]` (got 'acme'), on "
                 "line 4."),
        ("{a: b}", "`repos` must be `all` or a list of repositories such as `[acme/api, acme/web]` (got a mapping), "
                   "on line 4."),
        ("[all]", "item 1 of `repos` is `all`: write `repos: all` on its own, not in a list, on line 4."),
        ("[a/b/c]", "item 1 of `repos` must be a repository as `owner/name`, such as `acme/api` (got 'a/b/c'), on "
                    "line 4."),
        ("['acme/my repo']", "item 1 of `repos` must be a repository as `owner/name`, such as `acme/api` "
                             "(got 'acme/my repo'), on line 4."),
        ("[[acme/api]]", "item 1 of `repos` must be a repository as `owner/name`, such as `acme/api` (got a list), on "
                         "line 4."),
        ("acme/*", "`repos` must be `all` or a list of repositories such as `[acme/api, acme/web]` (got 'acme/*'); "
                   "`repos` takes no patterns: use `repos: all` with `exclude` or the filters, on line 4."),
        ("'*'", "`repos` must be `all` or a list of repositories such as `[acme/api, acme/web]` (got '*'); to select "
                "every repository write `repos: all`, on line 4."),
        ("[https://github.com/acme/api]", "item 1 of `repos` must be a repository as `owner/name`, such as `acme/api` "
                                          "(got 'https://github.com/acme/api'); write `acme/api`, on line 4."),
        ("[git@github.com:acme/api.git]", "item 1 of `repos` must be a repository as `owner/name`, such as "
                                          "`acme/api` (got 'git@github.com:acme/api.git'); write `acme/api`, "
                                          "on line 4."),
    ],
)
def test_repos_mistakes(value: str, message: str) -> None:
    error = error_for(body_with(f"repos: {value}\n"))
    assert str(error) == message
    assert error.key == "repos"


def test_many_bad_items_are_summed_up() -> None:
    names = "".join(f"  - bad{i}\n" for i in range(25))
    lines = str(error_for(body_with("repos:\n" + names))).splitlines()
    assert len(lines) == 11
    assert lines[-1] == "15 more items of `repos` are not valid either (the first on line 15)."


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("topics: python\n", ("python",)),
        ("topics: [Python, web-app, 2024]\n", ("python", "web-app", "2024")),
        ("topics: [python, python]\n", ("python",)),
        ("topics:\n", ()),
    ],
)
def test_topics(block: str, expected: tuple[str, ...]) -> None:
    assert spec_of("repos: all\n" + block).topics == expected


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("topics: 'web app'\n", "`topics` must be a GitHub topic: lower-case letters, digits and hyphens, up to 50 "
                                "characters (got 'web app'), on line 5."),
        ("topics: 'python, web'\n", "`topics` must be a GitHub topic: lower-case letters, digits and hyphens, up to "
                                    "50 characters (got 'python, web'); to give several, write a list such as "
                                    "`[a, b]`, on line 5."),
        ("topics: [ok, true]\n", "item 2 of `topics` must be a GitHub topic: lower-case letters, digits and hyphens, "
                                 "up to 50 characters (got true), on line 5."),
        ("topics: {a: 1}\n", "`topics` must be a topic or a list of topics (got a mapping), on line 5."),
    ],
)
def test_topics_mistakes(block: str, message: str) -> None:
    assert str(error_for(body_with("repos: all\n" + block))) == message


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("language: Python\n", ("Python",)),
        ("language: [JavaScript, TypeScript, javascript]\n", ("JavaScript", "TypeScript")),
        ("language: [C#, C++, Jupyter Notebook]\n", ("C#", "C++", "Jupyter Notebook")),
    ],
)
def test_language(block: str, expected: tuple[str, ...]) -> None:
    assert spec_of("repos: all\n" + block).language == expected


@pytest.mark.parametrize("value", ["''", "[Go, '']", "3", "'Go, Rust'"])
def test_language_mistakes(value: str) -> None:
    error = error_for(body_with(f"repos: all\nlanguage: {value}\n"))
    assert "must be a language as GitHub names it, such as `Python` or `TypeScript`" in str(error)
    assert error.key == "language" and error.line == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [("package.json", "package.json"), ("'**/package.json'", "**/package.json"), ("./src/*.py", "src/*.py"),
     ("/Makefile", "Makefile"), ("", None)],
)
def test_has_file(value: str, expected: str | None) -> None:
    assert spec_of(f"repos: all\nhas_file: {value}\n").has_file == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[a, b]", "must be one glob pattern (a string), such as `package.json` or `**/package.json` (got a list)"),
        ("''", "must be a glob pattern, not an empty string (got '')"),
        ("src/", "must match a file, so it cannot end with `/` (got 'src/')"),
        ("../x", "must be a path inside the repository, without `.` or `..` parts (got '../x')"),
        ("'[z-a].py'", "is not a valid glob pattern (check its `[...]` ranges) (got '[z-a].py')"),
    ],
)
def test_has_file_mistakes(value: str, problem: str) -> None:
    assert str(error_for(body_with(f"repos: all\nhas_file: {value}\n"))) == f"`has_file` {problem}, on line 5."


def test_exclude() -> None:
    assert spec_of("repos: all\nexclude: acme/old\n").exclude == ("acme/old",)
    assert spec_of("repos: all\nexclude: [acme/legacy-*, 'sandbox-?', acme/old, ACME/OLD]\n").exclude == (
        "acme/legacy-*", "sandbox-?", "acme/old")


@pytest.mark.parametrize("value", ["'a/b/c'", "'acme/my repo'", "[ok/x, 3]", "''"])
def test_exclude_mistakes(value: str) -> None:
    error = error_for(body_with(f"repos: all\nexclude: {value}\n"))
    assert "must be a repository as `owner/name` or a glob such as `acme/legacy-*`" in str(error)
    assert error.key == "exclude" and error.line == 5


@pytest.mark.parametrize("key", ["archived", "auto_rollout"])
@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), ("True", True), ("no", False)])
def test_booleans(key: str, value: str, expected: bool) -> None:
    assert getattr(spec_of(f"repos: all\n{key}: {value}\n"), key) is expected


@pytest.mark.parametrize(
    ("value", "got"),
    [("'true'", "`true` or `false` without quotes (got 'true')"), ("1", "`true` or `false` (got 1)"),
     ("", "`true` or `false` (got null)"), ("sometimes", "`true` or `false` (got 'sometimes')")],
)
def test_boolean_mistakes(value: str, got: str) -> None:
    assert str(error_for(body_with(f"repos: all\nauto_rollout: {value}\n"))) == f"`auto_rollout` must be {got}, " \
                                                                                 "on line 5."


@pytest.mark.parametrize(("key", "low", "high"), [("canary", 0, 100), ("concurrency", 1, 50)])
def test_whole_numbers(key: str, low: int, high: int) -> None:
    assert getattr(spec_of(f"repos: all\n{key}: {low}\n"), key) == low
    assert getattr(spec_of(f"repos: all\n{key}: {high}\n"), key) == high
    for bad, shown in [(low - 1, str(low - 1)), (high + 1, str(high + 1)), ("2.5", "2.5"), ("3.0", "3.0"),
                       ("true", "true"), ("'3'", "'3'"), ("", "null"), ("[1]", "a list")]:
        message = str(error_for(body_with(f"repos: all\n{key}: {bad}\n")))
        assert message == f"`{key}` must be a whole number from {low} to {high} (got {shown}), on line 5."


def test_a_huge_number_is_shown_briefly() -> None:
    message = str(error_for(body_with("repos: all\ncanary: " + "9" * 5000 + "\n")))
    assert message == ("the campaign block on line 3 has a value YAML cannot read (Exceeds the limit (4300 digits) "
                       "for integer string conversion).")
    message = str(error_for(body_with("repos: all\ncanary: " + "9" * 100 + "\n")))
    assert message == "`canary` must be a whole number from 0 to 100 (got a very large number), on line 5."


@pytest.mark.parametrize(("value", "expected"), [("25", 25.0), ("0.5", 0.5), ("", None), ("1.5e+3", 1500.0)])
def test_budget(value: str, expected: float | None) -> None:
    assert spec_of(f"repos: all\nbudget_usd: {value}\n").budget_usd == expected


@pytest.mark.parametrize(("value", "shown"), [("0", "0"), ("-5", "-5"), ("true", "true"), ("'$25'", "'$25'"),
                                              (".inf", "inf"), (".nan", "nan"), ("[5]", "a list")])
def test_budget_mistakes(value: str, shown: str) -> None:
    assert str(error_for(body_with(f"repos: all\nbudget_usd: {value}\n"))) == (
        f"`budget_usd` must be a positive number of US dollars, such as `25` (got {shown}), on line 5."
    )


def test_yaml_that_python_cannot_build() -> None:
    error = error_for(body_with("repos: all\ncanary: 2024-13-45\n"))
    assert str(error).startswith("the campaign block on line 3 has a value YAML cannot read")


def test_deep_nesting_and_aliases_are_refused_cleanly() -> None:
    error = error_for(body_with("repos: all\ntopics: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert isinstance(error, CampaignSpecError)
    error = error_for(body_with("repos: all\ntopics: &a [*a]\n"))
    assert isinstance(error, CampaignSpecError)


def test_merge_keys_work() -> None:
    body = body_with("defaults: &d {canary: 1}\n")  # `defaults` is unknown, but a merge of it would be fine
    assert "unknown key `defaults`" in str(error_for(body))
    spec = spec_of("<<: {canary: 1, concurrency: 2}\nrepos: all\nconcurrency: 4\n")
    assert (spec.canary, spec.concurrency) == (1, 4)


def test_backticks_in_values_do_not_break_the_markdown() -> None:
    message = str(error_for(body_with("repos: ['a`b']\n")))
    assert "(got 'a'b')" in message


def test_error_is_a_value_error_with_problems() -> None:
    error = error_for(body_with("repos: all\ncanary: x\nconcurrency: y\n"))
    assert isinstance(error, ValueError)
    assert [(p.key, p.line) for p in error.problems] == [("canary", 5), ("concurrency", 6)]


# Round trip


@pytest.mark.parametrize(
    "spec",
    [
        CampaignSpec(repos=None),
        CampaignSpec(repos=("acme/api", "acme/web"), topics=("python",), language=("Go", "Rust"), has_file="**/go.mod",
                     exclude=("acme/legacy-*",), archived=True, canary=0, concurrency=50, auto_rollout=True,
                     budget_usd=12.5),
    ],
)
def test_to_dict_round_trips(spec: CampaignSpec) -> None:
    data = spec.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert CampaignSpec.from_dict(json.loads(json.dumps(data))) == spec


def test_to_dict_shape() -> None:
    data = spec_of("repos: all\nbudget_usd: 25\n").to_dict()
    assert data["repos"] == "all" and data["budget_usd"] == 25.0 and data["topics"] == []
    assert CampaignSpec.from_dict({"repos": ["a/b"]}) == CampaignSpec(repos=("a/b",))


# Globs


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("package.json", "package.json", True),
        ("package.json", "a/package.json", False),
        ("**/package.json", "package.json", True),
        ("**/package.json", "a/package.json", True),
        ("**/package.json", "a/b/c/package.json", True),
        ("**/package.json", "a/package.json.bak", False),
        ("**/package.json", "a/xpackage.json", False),
        ("src/*.py", "src/app.py", True),
        ("src/*.py", "src/pkg/app.py", False),
        ("src/*.py", "app.py", False),
        ("src/**/*.py", "src/app.py", True),
        ("src/**/*.py", "src/a/b/app.py", True),
        ("src/**/*.py", "lib/src/app.py", False),
        ("src/**", "src/a/b", True),
        ("src/**", "srcx/a", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/**/b", "a/x/b", True),
        ("**", "anything/at/all", True),
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("*/x", "a/x", True),
        ("*", "a/x", False),
        ("[abc].md", "b.md", True),
        ("[abc].md", "d.md", False),
        ("[a-c].md", "c.md", True),
        ("[!a-c].md", "d.md", True),
        ("[!a-c].md", "a.md", False),
        ("[^a].md", "b.md", True),
        ("x[!a]y", "x/y", False),
        ("[]]", "]", True),
        ("[oops", "[oops", True),
        ("a.b", "axb", False),
        ("Makefile", "makefile", False),
        ("*.yml", ".travis.yml", True),
        ("./package.json", "package.json", True),
        ("/package.json", "package.json", True),
        ("(x)+", "(x)+", True),
    ],
)
def test_glob_match(pattern: str, path: str, expected: bool) -> None:
    assert glob_match(pattern, path) is expected


def test_glob_match_invalid_pattern_matches_nothing() -> None:
    assert glob_match("[z-a]", "b") is False
    assert matching_path("[z-a]", ["b"]) is None


def test_matching_path_returns_the_first() -> None:
    paths = ["README.md", "web/package.json", "package.json"]
    assert matching_path("**/package.json", paths) == "web/package.json"
    assert matching_path("package.json", paths) == "package.json"
    assert matching_path("*.lock", paths) is None
    assert matching_path("**/*.md", iter(paths)) == "README.md"


def test_a_long_path_does_not_make_the_glob_slow() -> None:
    path = "a/" * 200 + "b"
    assert not glob_match("**/**/**/*a*a*a*a*a*c", path)


# Candidates and preselect


def repo(name: str, *, topics: tuple[str, ...] = (), language: str | None = "Python", archived: bool = False
         ) -> Candidate:
    return Candidate(full_name=name, topics=topics, language=language, archived=archived, default_branch="main")


INSTALLED = [
    repo("acme/web", topics=("frontend", "javascript"), language="TypeScript"),
    repo("acme/api", topics=("python", "backend")),
    repo("acme/legacy-billing", topics=("python",)),
    repo("acme/legacy-auth", topics=("python",), archived=True),
    repo("acme/tools", topics=(), language=None),
    repo("acme/gateway", topics=("backend",), language="Go"),
    repo("acme/Docs", language="JavaScript"),
]


def names(candidates: list[Candidate]) -> list[str]:
    return [c.full_name for c in candidates]


def test_candidate_from_github() -> None:
    full = Candidate.from_github({"full_name": "acme/api", "topics": ["python"], "language": "Python",
                                  "archived": True, "default_branch": "trunk", "private": True})
    assert full == Candidate("acme/api", ("python",), "Python", True, "trunk")
    bare = Candidate.from_github({"name": "api", "owner": {"login": "acme"}})
    assert bare == Candidate("acme/api", (), None, False, "main")
    assert Candidate.from_github({"full_name": "a/b", "topics": None, "language": None}).topics == ()
    with pytest.raises(ValueError):
        Candidate.from_github({})


def test_preselect_explicit_keeps_order_and_collapses_duplicates() -> None:
    spec = CampaignSpec(repos=("acme/web", "ACME/API", "acme/web", "acme/docs", "acme/missing"))
    kept, skipped, filtered = preselect(spec, INSTALLED)
    assert names(kept) == ["acme/web", "acme/api", "acme/Docs"]
    assert skipped == [("acme/missing", NOT_INSTALLED)]
    assert filtered == 0


def test_preselect_explicit_lists_every_reason() -> None:
    spec = CampaignSpec(
        repos=("acme/legacy-auth", "acme/legacy-billing", "acme/tools", "acme/gateway", "acme/web", "acme/api"),
        topics=("python",), language=("Python",), exclude=("acme/legacy-b*",),
    )
    kept, skipped, _ = preselect(spec, INSTALLED)
    assert names(kept) == ["acme/api"]
    assert skipped == [
        ("acme/legacy-auth", "archived"),
        ("acme/legacy-billing", "excluded by `exclude` (acme/legacy-b*)"),
        ("acme/tools", "lacks topic `python`"),
        ("acme/gateway", "lacks topic `python`"),
        ("acme/web", "lacks topic `python`"),
    ]


def test_preselect_reasons_for_language_and_topics() -> None:
    spec = CampaignSpec(repos=("acme/gateway", "acme/tools", "acme/web"), language=("JavaScript", "TypeScript"))
    _, skipped, _ = preselect(spec, INSTALLED)
    assert skipped == [("acme/gateway", "language is Go, not one of JavaScript, TypeScript"),
                       ("acme/tools", "has no primary language, not one of JavaScript, TypeScript")]
    spec = CampaignSpec(repos=("acme/gateway",), language=("python",))
    assert preselect(spec, INSTALLED)[1] == [("acme/gateway", "language is Go, not python")]
    spec = CampaignSpec(repos=("acme/tools",), topics=("python", "backend"))
    assert preselect(spec, INSTALLED)[1] == [("acme/tools", "lacks topics `python`, `backend`")]


def test_preselect_all_is_sorted_and_skips_archived() -> None:
    kept, skipped, filtered = preselect(CampaignSpec(repos=None), INSTALLED)
    assert names(kept) == ["acme/api", "acme/Docs", "acme/gateway", "acme/legacy-billing", "acme/tools", "acme/web"]
    assert skipped == [] and filtered == 1


def test_preselect_all_with_archived() -> None:
    kept, _, filtered = preselect(CampaignSpec(repos=None, archived=True), INSTALLED)
    assert "acme/legacy-auth" in names(kept) and filtered == 0


@pytest.mark.parametrize(
    ("spec", "expected", "filtered"),
    [
        (CampaignSpec(repos=None, topics=("python",)), ["acme/api", "acme/legacy-billing"], 5),
        (CampaignSpec(repos=None, topics=("PYTHON", "backend")), ["acme/api"], 6),
        (CampaignSpec(repos=None, language=("typescript", "JavaScript")), ["acme/Docs", "acme/web"], 5),
        (CampaignSpec(repos=None, language=("Go",)), ["acme/gateway"], 6),
        (CampaignSpec(repos=None, exclude=("acme/legacy-*",)),
         ["acme/api", "acme/Docs", "acme/gateway", "acme/tools", "acme/web"], 2),
        (CampaignSpec(repos=None, exclude=("ACME/DOCS", "t?ols")), ["acme/api", "acme/gateway", "acme/legacy-billing",
                                                                   "acme/web"], 3),
        (CampaignSpec(repos=None, exclude=("*/[ag]*",)), ["acme/Docs", "acme/legacy-billing", "acme/tools",
                                                          "acme/web"], 3),
    ],
)
def test_preselect_all_with_filters(spec: CampaignSpec, expected: list[str], filtered: int) -> None:
    kept, skipped, count = preselect(spec, INSTALLED)
    assert names(kept) == expected
    assert skipped == [] and count == filtered


def test_preselect_from_a_parsed_spec() -> None:
    spec = spec_of("repos: all\nexclude: acme/legacy-*\ntopics: python\n")
    assert names(preselect(spec, INSTALLED)[0]) == ["acme/api"]


def test_preselect_nothing_installed() -> None:
    assert preselect(CampaignSpec(repos=None), []) == ([], [], 0)
    assert preselect(CampaignSpec(repos=("a/b",)), []) == ([], [("a/b", NOT_INSTALLED)], 0)


# Property: any text is a request or a CampaignSpecError, never anything else

_yamlish = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["repos", "topics", "language", "has_file", "exclude", "archived", "canary", "concurrency",
                         "auto_rollout", "budget_usd", "other"]) | st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)


def _dumped(value: object) -> str:
    return yaml.safe_dump(value, allow_unicode=True)


_bodies = st.one_of(
    st.text(),
    st.builds(lambda before, block, after: f"{before}\n```yaml honk-campaign\n{block}\n```\n{after}",
              st.text(max_size=40), st.text(), st.text(max_size=40)),
    st.builds(lambda before, block: f"{before}\n~~~ yaml honk-campaign\r\n{block}", st.text(max_size=40),
              _yamlish.map(_dumped)),
    st.builds(lambda block: f"Task\n```yaml honk-campaign\n{block}```\n", _yamlish.map(_dumped)),
)


@settings(max_examples=300, deadline=None)
@given(_bodies)
def test_parse_campaign_raises_only_campaign_spec_error(body: str) -> None:
    try:
        request = parse_campaign(body)
    except CampaignSpecError as error:
        assert str(error).strip()
        assert error.problems
    else:
        assert request.task
        assert CampaignSpec.from_dict(request.spec.to_dict()) == request.spec
