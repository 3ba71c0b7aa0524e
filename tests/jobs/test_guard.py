"""The pre-push guard: secrets in added lines, workflow changes, protected paths, and git's own output.

Every credential below is generated at run time from a seeded RNG, so this file holds no string that a
secret scanner (or this guard) would take for a real key.
"""

from __future__ import annotations

import random
import re
import string
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from app.jobs.guard import (
    GuardError,
    Refusal,
    added_lines,
    check_change,
    format_refusals,
    parse_name_status,
    scan_diff,
    shannon_entropy,
)
from app.jobs.repo_config import RepoConfig, parse_repo_config

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
BASE64 = ALNUM + "+/"


def rnd(n: int, alphabet: str = ALNUM, seed: int = 7) -> str:
    rng = random.Random(f"{seed}-{n}-{alphabet}")
    while True:  # keep only draws that look like what a service issues (no accidental "test" or "0123456")
        value = "".join(rng.choice(alphabet) for _ in range(n))
        if not any(w in value.lower() for w in ("test", "fake", "mock", "your", "secret", "token", "passw",
                                                "sample", "dummy", "abcdef", "0123456", "123456789", "xxxx")):
            return value


def diff_of(path: str, added: Sequence[str] = (), removed: Sequence[str] = (), context: Sequence[str] = (),
            start: int = 1) -> str:
    """A one-hunk unified diff of `path`: context lines first, then removed, then added."""
    body = [f" {line}" for line in context] + [f"-{line}" for line in removed] + [f"+{line}" for line in added]
    old, new = len(context) + len(removed), len(context) + len(added)
    return (f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -{start},{old} +{start},{new} @@ def f():\n" + "\n".join(body) + "\n")


def secrets_in(diff: str, paths: list[str] | None = None, config: RepoConfig | None = None) -> list[Refusal]:
    refusals = scan_diff(diff, paths or [], config or RepoConfig())
    return [r for r in refusals if r.kind == "secret"]


GITHUB_CLASSIC = "ghp_" + rnd(36)
SECRETS = {
    "github classic token": (f'TOKEN = "{GITHUB_CLASSIC}"', "a GitHub token", "ghp_"),
    "github app token": (f"token: ghs_{rnd(36, seed=2)}", "a GitHub token", "ghs_"),
    "github oauth token": (f"gho_{rnd(36, seed=3)}", "a GitHub token", "gho_"),
    "github fine-grained": (f'pat = "github_pat_{rnd(22)}_{rnd(59)}"', "a GitHub token", "github_pat_"),
    "aws access key": (f"aws_access_key_id = AKIA{rnd(16, UPPER_ALNUM)}", "an AWS access key", "AKIA"),
    "aws session key": (f"key=ASIA{rnd(16, UPPER_ALNUM, seed=4)}", "an AWS access key", "ASIA"),
    "aws secret key": (f"aws_secret_access_key = {rnd(40, BASE64)}", "an AWS secret access key", ""),
    "slack bot token": (f'SLACK = "xoxb-{rnd(12, string.digits)}-{rnd(12, string.digits)}-{rnd(24)}"',
                        "a Slack token", "xoxb-"),
    "slack webhook": (f"url: https://hooks.slack.com/services/T{rnd(8, UPPER_ALNUM)}/B{rnd(10, UPPER_ALNUM)}/{rnd(24)}",
                      "a Slack webhook URL", "https://hooks.slack.com/services/"),
    "anthropic key": (f'client = Anthropic(api_key="sk-ant-api03-{rnd(93, ALNUM + "-_")}AA")',
                      "an Anthropic API key", "sk-ant-api03-"),
    "openai key": (f"OPENAI_API_KEY=sk-proj-{rnd(48)}", "an API key", "sk-proj-"),
    "openai legacy key": (f'openai.api_key = "sk-{rnd(48)}"', "an API key", "sk-"),
    "generic password": (f'password = "{rnd(24, ALNUM + "!#%&")}"', "a secret", "password = "),
    "generic env token": (f"API_TOKEN={rnd(32)}", "a secret", "API_TOKEN = "),
    "generic json secret": (f'  "client_secret": "{rnd(30)}",', "a secret", "client_secret = "),
    "generic yaml key": (f"  api_key: {rnd(40, string.hexdigits.lower())}", "a secret", "api_key = "),
    "generic annotated": (f"    webhook_secret: str = '{rnd(28)}'", "a secret", "webhook_secret = "),
    "generic camel case": (f"const apiKey = '{rnd(26)}';", "a secret", "apiKey = "),
}


def secret_value(line: str) -> str:
    """The random part of a line above: its longest run of token characters."""
    return max(re.findall(r"[A-Za-z0-9_\-+/!#%&]{16,}", line), key=len)


# Unquoted values count as secrets only outside program source (`.env`, YAML, shell), see the test below.
UNQUOTED = {"generic env token", "generic yaml key"}


@pytest.mark.parametrize("name", SECRETS)
def test_each_kind_of_secret_is_caught_in_an_added_line(name: str) -> None:
    line, what, shown = SECRETS[name]
    path = "deploy/app.yml" if name in UNQUOTED else "src/app/config.py"
    refusals = secrets_in(diff_of(path, added=["import os", line], context=["# settings"], start=10))
    assert len(refusals) == 1, refusals
    refusal = refusals[0]
    assert (refusal.kind, refusal.path, refusal.line) == ("secret", path, 12)
    assert f"`{path}` line 12 adds what looks like {what}" in refusal.message
    assert f"`{shown}****`" in refusal.message
    value = secret_value(line)
    assert value not in refusal.message
    assert value[-12:] not in refusal.message and value[4:16] not in refusal.message


@pytest.mark.parametrize("name", SECRETS)
def test_removed_and_context_lines_are_not_checked(name: str) -> None:
    line = SECRETS[name][0]
    assert secrets_in(diff_of("config.env", removed=[line], added=["TOKEN_FROM_ENV=1"])) == []
    assert secrets_in(diff_of("config.env", context=[line], added=["# read it from the environment"])) == []


def test_test_files_are_not_exempt() -> None:
    refusals = secrets_in(diff_of("tests/test_client.py", added=[f'TOKEN = "{GITHUB_CLASSIC}"']))
    assert [r.path for r in refusals] == ["tests/test_client.py"]


PEM_BODY = [rnd(64, BASE64, seed=s) for s in range(3)]


@pytest.mark.parametrize("lines", [
    ["-----BEGIN RSA PRIVATE KEY-----", *PEM_BODY, "-----END RSA PRIVATE KEY-----"],
    ["-----BEGIN OPENSSH PRIVATE KEY-----", *PEM_BODY],
    ["-----BEGIN PRIVATE KEY-----", f'"{PEM_BODY[0]}"'],
    ["-----BEGIN ENCRYPTED PRIVATE KEY-----", "Proc-Type: 4,ENCRYPTED", "DEK-Info: AES-128-CBC,0A1B", "", *PEM_BODY],
    [f'KEY = "-----BEGIN EC PRIVATE KEY-----\\n{PEM_BODY[0]}\\n-----END EC PRIVATE KEY-----\\n"'],
])
def test_private_keys_are_caught(lines: list[str]) -> None:
    refusals = secrets_in(diff_of("deploy/key.pem", added=["# key", *lines]))
    assert [(r.line, r.kind) for r in refusals] == [(2, "secret")]
    assert "looks like a private key" in refusals[0].message
    assert all(body not in refusals[0].message for body in PEM_BODY)


def test_code_that_mentions_a_pem_header_is_not_a_key() -> None:
    added = ['if "-----BEGIN RSA PRIVATE KEY-----" in text:', '    raise ValueError("paste the key")',
             'HEADER = "-----BEGIN PRIVATE KEY-----"', "",
             "-----BEGIN RSA PRIVATE KEY-----", "MIIE" + "x" * 60, "-----END RSA PRIVATE KEY-----"]
    assert secrets_in(diff_of("app/keys.py", added=added)) == []


@pytest.mark.parametrize("line", [
    'password = "changeme"',
    'password = "hunter2"',
    "token = os.environ['TOKEN']",
    'token = os.environ.get("GITHUB_TOKEN", "")',
    "api_key = settings.anthropic_api_key_for_this_installation",
    'token = "<your-token>"',
    'api_key = "<YOUR_API_KEY_GOES_HERE_1234>"',
    "token: ${GITHUB_TOKEN}",
    "password: {{ vault_db_password_2024 }}",
    'api_key = "xxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
    'API_KEY = "your-api-key-here-123456789"',
    "secret = '********************1'",
    "password: REPLACE_WITH_REAL_PASSWORD_1",
    '"integrity": "sha512-' + rnd(86, BASE64, seed=9) + '==",',
    "  integrity sha512-" + rnd(86, BASE64, seed=10) + "==",
    '"resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz#' + rnd(40, "0123456789abcdef") + '"',
    "commit = '" + rnd(40, "0123456789abcdef", seed=11) + "'",
    "token_sha = '" + rnd(40, "0123456789abcdef", seed=12) + "'",
    "secret_id = '123e4567-e89b-12d3-a456-426614174000'",
    "api_key = '123e4567-e89b-12d3-a456-426614174000'",
    'tokenizer = "bert-base-multilingual-uncased-v2"',
    'token_url = "https://oauth2.googleapis.com/token/v4"',
    'private_key_path = "/etc/honk/keys/app-2024-06-01.pem"',
    "max_tokens = 4000000000000000000000",
    'password_prompt = "Enter your password (8+ characters)"',
    'key = "AKIAIOSFODNN7EXAMPLE"',  # AWS's documented example key
    "const task = 'disk-cache-directory-for-something-long-42'",
    "ghp_" + "a1B2" * 9,  # a repeating stand-in, not a random token
    "sk-ant-api03-test-key-" + rnd(30),
    "sk-ant-fake-key-for-tests",
    "xoxb-123456789012-abcdefghijkl",
])
def test_common_false_positives_are_not_caught(line: str) -> None:
    assert secrets_in(diff_of("settings/config.py", added=[line])) == []
    assert secrets_in(diff_of("deploy/values.yaml", added=[line])) == []


@pytest.mark.parametrize("line", ["    private_key: PKCS7PrivateKeyTypes,",
                                  "def rotate(token: TokenRecord2024Entity) -> None:",
                                  "password = generate_password_for_user_2024(user)"])
def test_code_is_not_a_secret(line: str) -> None:
    assert secrets_in(diff_of("src/crypto.py", added=[line])) == []


def test_unquoted_values_count_in_config_files_only() -> None:
    line = f"access_key = {rnd(32)}"
    assert len(secrets_in(diff_of(".env.production", added=[line]))) == 1
    assert len(secrets_in(diff_of("deploy.sh", added=[line]))) == 1
    assert secrets_in(diff_of("app/main.py", added=[line])) == []  # in source code that is an expression


def test_each_secret_on_a_line_is_reported_once() -> None:
    line = f'{{"token": "{GITHUB_CLASSIC}", "aws": "AKIA{rnd(16, UPPER_ALNUM)}"}}'
    refusals = secrets_in(diff_of("creds.json", added=[line]))
    assert sorted(r.message.split("looks like ")[1].split(" (")[0] for r in refusals) == [
        "a GitHub token", "an AWS access key"]


def test_line_numbers_follow_the_hunks() -> None:
    diff = (f"diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n"
            f"@@ -1,2 +1,3 @@\n keep\n+x = 1\n keep\n"
            f"@@ -40,3 +41,3 @@ class A:\n ctx\n-old\n+TOKEN = '{GITHUB_CLASSIC}'\n ctx\n"
            f"diff --git a/b.py b/b.py\nnew file mode 100644\n--- /dev/null\n+++ b/b.py\n"
            f"@@ -0,0 +1,2 @@\n+first\n+KEY = '{GITHUB_CLASSIC}'\n")
    assert [(r.path, r.line) for r in secrets_in(diff)] == [("a.py", 42), ("b.py", 2)]


def test_an_added_line_that_looks_like_a_header_is_still_checked() -> None:
    # Content "++ token" shows as "+++ token" in the diff; only the hunk counts tell it from a file header.
    diff = (f"diff --git a/c.c b/c.c\n--- a/c.c\n+++ b/c.c\n@@ -1,1 +1,3 @@\n i = 0;\n+++i;\n"
            f"+++ x = \"{GITHUB_CLASSIC}\";\n")
    assert [(r.path, r.line) for r in secrets_in(diff)] == [("c.c", 3)]
    assert [(a.path, a.number, a.text) for a in added_lines(diff)] == [
        ("c.c", 2, "++i;"), ("c.c", 3, f'++ x = "{GITHUB_CLASSIC}";')]


def test_deleted_files_and_binary_files_have_no_added_lines() -> None:
    diff = (f"diff --git a/old.py b/old.py\ndeleted file mode 100644\n--- a/old.py\n+++ /dev/null\n"
            f"@@ -1 +0,0 @@\n-TOKEN = '{GITHUB_CLASSIC}'\n"
            "diff --git a/img.png b/img.png\nBinary files a/img.png and b/img.png differ\n")
    assert added_lines(diff) == []


# Workflows, protected paths and .git


def test_workflow_changes_are_refused_unless_allowed() -> None:
    paths = [".github/workflows/ci.yml", ".github/dependabot.yml", "src/app.py"]
    refusals = scan_diff("", paths, RepoConfig())
    assert [(r.kind, r.path) for r in refusals] == [("workflow", ".github/workflows/ci.yml")]
    assert "`allow_workflows: true`" in refusals[0].message and "`.github/workflows/ci.yml`" in refusals[0].message
    assert scan_diff("", paths, parse_repo_config("allow_workflows: true")) == []


def test_protected_paths_cover_every_kind_of_change() -> None:
    config = parse_repo_config("protected_paths: ['migrations/**', '*.lock', 'LICENSE']")
    # modified, deleted, both sides of a rename, added
    paths = ["LICENSE", "poetry.lock", "migrations/0001_init.py", "src/renamed.py", "frontend/yarn.lock", "src/ok.py"]
    refusals = scan_diff("", paths, config)
    assert [(r.kind, r.path) for r in refusals] == [("protected_path", p) for p in
                                                    ("LICENSE", "poetry.lock", "migrations/0001_init.py",
                                                     "frontend/yarn.lock")]
    assert refusals[2].message == ("`migrations/0001_init.py` matches `migrations/**` in `protected_paths` of "
                                   "`.github/honk.yml`, so Honk may not change it.")
    assert scan_diff("", ["src/app/migrations.py", "LICENSES.md"], config) == []


@pytest.mark.parametrize("path", [".git/config", ".git/hooks/pre-commit", "vendor/lib/.git/HEAD", ".git"])
def test_changes_inside_git_directories_are_refused(path: str) -> None:
    refusals = scan_diff("", [path, ".gitignore", ".github/CODEOWNERS"], parse_repo_config("allow_workflows: true"))
    assert [(r.kind, r.path) for r in refusals] == [("protected_path", path)]


def test_refusals_format_as_a_markdown_list() -> None:
    refusals = scan_diff("", [".github/workflows/a.yml", ".git/config"], RepoConfig())
    text = format_refusals(refusals)
    assert text.splitlines() == [f"- {r.message}" for r in refusals] and len(refusals) == 2


def test_nothing_wrong_means_no_refusals() -> None:
    diff = diff_of("src/app.py", added=["def add(a, b):", "    return a + b"], removed=["pass"])
    assert scan_diff(diff, ["src/app.py"], RepoConfig()) == []


def test_name_status_parsing() -> None:
    output = "M\0src/a.py\0R087\0old name.py\0new name.py\0D\0gone.lock\0A\0.github/workflows/x.yml\0"
    assert parse_name_status(output) == ["src/a.py", "old name.py", "new name.py", "gone.lock",
                                         ".github/workflows/x.yml"]
    assert parse_name_status("") == []


def test_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0
    assert shannon_entropy(rnd(40)) > 4.0


# On a real repository


def git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), "-c", "user.name=Test", "-c", "user.email=test@example.com",
                             "-c", "commit.gpgsign=false", *args], capture_output=True, text=True, check=True)
    return result.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "migrations").mkdir()
    (root / "migrations" / "0001_init.sql").write_text("create table t (id int);\n" * 5)
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("def main():\n    return 1\n")
    (root / "LICENSE").write_text("MIT License\n\nPermission is hereby granted, free of charge...\n" * 3)
    (root / "poetry.lock").write_text("[[package]]\nname = 'x'\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def test_check_change_on_a_real_repository(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    config = parse_repo_config("protected_paths: ['migrations/**', 'LICENSE', '*.lock']")
    (repo / "src" / "app.py").write_text(f"def main():\n    return 2\n\nTOKEN = '{GITHUB_CLASSIC}'\n")
    (repo / "src" / "new file é.py").write_text(f"# new\nKEY = 'AKIA{rnd(16, UPPER_ALNUM)}'\n")
    git(repo, "mv", "LICENSE", "COPYING")  # a rename out of a protected path
    (repo / "poetry.lock").unlink()  # a deletion
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    git(repo, "add", "-A")
    refusals = check_change(repo, base, config)
    assert sorted((r.kind, r.path, r.line) for r in refusals) == [
        ("protected_path", "LICENSE", None),
        ("protected_path", "poetry.lock", None),
        ("secret", "src/app.py", 4),
        ("secret", "src/new file é.py", 2),
        ("workflow", ".github/workflows/ci.yml", None),
    ]
    assert all(GITHUB_CLASSIC not in r.message for r in refusals)


def test_check_change_ignores_the_checkouts_diff_config(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    # An agent could set these in .git/config; the guard's view of the diff must not change.
    git(repo, "config", "diff.noprefix", "true")
    git(repo, "config", "diff.mnemonicPrefix", "true")
    git(repo, "config", "core.quotePath", "true")
    git(repo, "config", "diff.external", "/bin/false")
    git(repo, "config", "color.diff", "always")
    (repo / "src" / "app.py").write_text(f"TOKEN = '{GITHUB_CLASSIC}'\n")
    (repo / "src" / "ünïcode.py").write_text(f"TOKEN = '{GITHUB_CLASSIC}'\n")
    git(repo, "add", "-A")
    assert [(r.path, r.line) for r in check_change(repo, base, RepoConfig())] == [("src/app.py", 1),
                                                                                   ("src/ünïcode.py", 1)]


def test_check_change_with_a_clean_change_and_a_protected_edit(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "src" / "app.py").write_text("def main():\n    return 3\n")
    git(repo, "add", "-A")
    assert check_change(repo, base, RepoConfig()) == []
    (repo / "migrations" / "0001_init.sql").write_text("drop table t;\n")
    git(repo, "add", "-A")
    config = parse_repo_config("protected_paths: migrations/**")
    assert [(r.kind, r.path) for r in check_change(repo, base, config)] == [
        ("protected_path", "migrations/0001_init.sql")]


def test_check_change_needs_a_valid_base(repo: Path) -> None:
    with pytest.raises(GuardError, match="git diff failed"):
        check_change(repo, "no-such-commit", RepoConfig())


def test_key_material_must_follow_the_header_in_the_same_file() -> None:
    diff = (diff_of("docs/keys.md", added=["To spot a key, look for `-----BEGIN RSA PRIVATE KEY-----`."])
            + diff_of("data/blob.b64", added=[PEM_BODY[0]]))
    assert secrets_in(diff) == []
    # Two hunks of one file: the header ends the first, unrelated base64 starts the second.
    split = (f"diff --git a/n.txt b/n.txt\n--- a/n.txt\n+++ b/n.txt\n@@ -1,0 +1,1 @@\n+-----BEGIN PRIVATE KEY-----\n"
             f"@@ -50,0 +51,1 @@\n+{PEM_BODY[1]}\n")
    assert secrets_in(split) == []


def test_nested_repositories_and_symlinks_leading_outside_are_refused(repo: Path, tmp_path: Path) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    nested = repo / "vendor" / "lib"
    nested.mkdir(parents=True)
    git(nested, "init", "-q")
    (nested / "x").write_text("x")
    git(nested, "add", "x")
    git(nested, "commit", "-q", "-m", "nested")
    (repo / "src" / "etc").symlink_to("/etc/passwd")
    (repo / "src" / "up").symlink_to("../../outside")
    (repo / "src" / "sibling").symlink_to("../LICENSE")  # stays inside: fine
    (repo / "src" / "here").symlink_to("./app.py")
    git(repo, "add", "-A")
    refusals = check_change(repo, base, RepoConfig())
    assert sorted((r.kind, r.path) for r in refusals) == [
        ("nested_repository", "vendor/lib"), ("symlink", "src/etc"), ("symlink", "src/up")]
    assert "/etc/passwd" in next(r.message for r in refusals if r.path == "src/etc")
