"""The local GitHub behaves like the real one: GitHub's shapes (checked with githubkit's models), its auth,
git over smart HTTP, pull-request rules, failure injection and signed webhook deliveries."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI, Request
from githubkit import AppAuthStrategy, AppInstallationAuthStrategy, GitHub
from githubkit.cache import MemCacheStrategy
from githubkit.exception import PrimaryRateLimitExceeded, RequestFailed, SecondaryRateLimitExceeded
from githubkit.webhooks import parse_obj
from githubkit_schemas.latest import models as m
from pydantic import TypeAdapter

from tests.fakes.github import PRIMARY_RATE_LIMIT, FakeGitHub, basic_auth_header
from tests.support import FIXTURES, app_private_key, live_server

REPO = "acme/widgets"
FILES = {"README.md": "# Widgets\n", "src/spin.py": "def spin():\n    return 'backwards'\n"}


@pytest.fixture(scope="module")
def app_key() -> str:
    return app_private_key()


@pytest.fixture
def github(app_key: str, tmp_path: Path) -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub(app_id=4242, private_key_pem=app_key, root=tmp_path / "github",
                      permissions={"alice": "write", "rita": "write", "bob": "read"})
    fake.create_repo(REPO, files=FILES)
    with fake.serve() as url:
        yield fake, url
    fake.close()


def parse(model: Any, body: Any) -> Any:
    """Validate a JSON body with githubkit's model for it (raises on any shape mismatch)."""
    return TypeAdapter(model).validate_python(body)


def app_jwt(key: str, app_id: int = 4242, **claims: Any) -> str:
    now = int(time.time())
    return jwt.encode({"iat": now - 60, "exp": now + 540, "iss": str(app_id), **claims}, key, algorithm="RS256")


def new_token(url: str, key: str, installation: int = 42) -> str:
    answer = httpx.post(f"{url}/app/installations/{installation}/access_tokens",
                        headers={"Authorization": f"Bearer {app_jwt(key)}"})
    assert answer.status_code == 201, answer.text
    return parse(m.InstallationToken, answer.json()).token


def api(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"token {token}",
                                               "Accept": "application/vnd.github+json"}, timeout=10)


def kit(url: str, key: str) -> GitHub[AppInstallationAuthStrategy]:
    """A githubkit client as Honk builds it: App installation auth and a token cache of its own."""
    return GitHub(AppInstallationAuthStrategy(4242, key, 42), base_url=url + "/", cache_strategy=MemCacheStrategy(),
                  auto_retry=False)


def git(*args: str, cwd: Path | None = None, token: str | None = None, check: bool = True) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
                "GIT_ASKPASS": "", "SSH_ASKPASS": "", "GIT_AUTHOR_NAME": "Honk", "GIT_AUTHOR_EMAIL": "honk@example.com",
                "GIT_COMMITTER_NAME": "Honk", "GIT_COMMITTER_EMAIL": "honk@example.com"})
    extra = ["-c", f"http.extraHeader=Authorization: {basic_auth_header(token)}"] if token else []
    proc = subprocess.run(["git", *extra, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {args} failed: {proc.stderr}")
    return proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------------- auth


def test_app_routes_need_a_jwt_from_the_apps_key(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    app = httpx.get(f"{url}/app", headers={"Authorization": f"Bearer {app_jwt(app_key)}"})
    assert parse(m.Integration, app.json()).slug == "honk-test"
    other_key = app_private_key()
    for headers in ({}, {"Authorization": f"Bearer {app_jwt(other_key)}"},
                    {"Authorization": f"Bearer {app_jwt(app_key, app_id=1)}"},
                    {"Authorization": f"Bearer {app_jwt(app_key, exp=int(time.time()) - 5)}"}):
        denied = httpx.post(f"{url}/app/installations/42/access_tokens", headers=headers)
        assert denied.status_code == 401 and "message" in denied.json()
    installation = httpx.get(f"{url}/repos/{REPO}/installation",
                             headers={"Authorization": f"Bearer {app_jwt(app_key)}"})
    assert parse(m.Installation, installation.json()).id == 42
    assert fake.calls("access_token")[0].path == "/app/installations/42/access_tokens"
    bot = httpx.get(f"{url}/users/honk-test[bot]", headers={"Authorization": f"Bearer {app_jwt(app_key)}"})
    assert parse(m.PublicUser, bot.json()).type == "Bot"
    assert fake.bot_email == f"{bot.json()['id']}+honk-test[bot]@users.noreply.github.com"
    assert httpx.get(f"{url}/users/nobody-at-all").status_code == 404


def test_repository_routes_need_a_live_installation_token(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    token = new_token(url, app_key)
    with api(url, token) as client:
        assert client.get(f"/repos/{REPO}").status_code == 200
        role = client.get(f"/repos/{REPO}/collaborators/alice/permission")
        assert parse(m.RepositoryCollaboratorPermission, role.json()).role_name == "write"
        assert client.get(f"/repos/{REPO}/collaborators/nobody/permission").status_code == 404
    for auth in ({}, {"Authorization": "token ghs_wrong"}, {"Authorization": f"Bearer {app_jwt(app_key)}"}):
        answer = httpx.get(f"{url}/repos/{REPO}", headers=auth)
        assert answer.status_code == 401 and parse(m.BasicError, answer.json()).message == "Bad credentials"

    fake.token_lifetime = fake.token_lifetime / 3600 / 2  # half a second
    short = new_token(url, app_key)
    time.sleep(0.6)
    assert httpx.get(f"{url}/repos/{REPO}", headers={"Authorization": f"token {short}"}).status_code == 401
    fake.expire_tokens()
    assert httpx.get(f"{url}/repos/{REPO}", headers={"Authorization": f"token {token}"}).status_code == 401
    # A token of another installation does not see the repository at all.
    elsewhere = new_token(url, app_key, installation=7)
    assert httpx.get(f"{url}/repos/{REPO}", headers={"Authorization": f"token {elsewhere}"}).status_code == 404


def test_the_token_expiry_is_an_hour_ahead(github: tuple[FakeGitHub, str], app_key: str) -> None:
    _, url = github
    answer = httpx.post(f"{url}/app/installations/42/access_tokens",
                        headers={"Authorization": f"Bearer {app_jwt(app_key)}"})
    expires = datetime.fromisoformat(parse(m.InstallationToken, answer.json()).expires_at)
    assert 3590 < expires.timestamp() - time.time() <= 3600


# --------------------------------------------------------------------------------------------- repository


def test_repository_contents_branches_and_refs(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    with kit(url, app_key) as gh:
        repo = gh.rest.repos.get("acme", "widgets")
        full = parse(m.FullRepository, repo.json())
        assert (full.clone_url, full.default_branch, full.full_name, full.private) == (
            f"{url}/{REPO}.git", "main", REPO, False)
        assert full.owner.type == "Organization"

        file = gh.rest.repos.get_content("acme", "widgets", "src/spin.py", ref="main")
        content = parse(m.ContentFile, file.json())
        assert base64.b64decode(content.content).decode() == FILES["src/spin.py"] and content.type == "file"
        listing = gh.rest.repos.get_content("acme", "widgets", "src").json()
        assert [i.path for i in parse(list[m.ContentDirectoryItems], listing)] == ["src/spin.py"]

        branch = parse(m.BranchWithProtection, gh.rest.repos.get_branch("acme", "widgets", "main").json())
        assert branch.commit.sha == fake.branches(REPO)["main"]
        assert branch.commit.commit.committer and branch.commit.commit.committer.name == "Octo Cat"
        ref = parse(m.GitRef, gh.rest.git.get_ref("acme", "widgets", "heads/main").json())
        assert ref.object_.sha == branch.commit.sha

        for call in (lambda: gh.rest.repos.get_content("acme", "widgets", "nope.txt"),
                     lambda: gh.rest.repos.get_branch("acme", "widgets", "nope"),
                     lambda: gh.rest.git.get_ref("acme", "widgets", "heads/nope"),
                     lambda: gh.rest.repos.get("acme", "gadgets")):
            with pytest.raises(RequestFailed) as missing:
                call()
            assert missing.value.response.status_code == 404
    assert fake.file_at(REPO, "main", "README.md") == FILES["README.md"]
    assert fake.file_at(REPO, "main", "missing") is None


# --------------------------------------------------------------------------------------------- git


def test_clone_fetch_and_push_over_http(github: tuple[FakeGitHub, str], app_key: str, tmp_path: Path) -> None:
    fake, url = github
    token = new_token(url, app_key)
    work = tmp_path / "work"
    git("clone", "--quiet", f"{url}/{REPO}.git", str(work), token=token)
    assert (work / "src" / "spin.py").read_text() == FILES["src/spin.py"]
    assert "token" not in (work / ".git" / "config").read_text().lower()

    git("checkout", "-q", "-b", "honk/issue-7", cwd=work)
    (work / "src" / "spin.py").write_text("def spin():\n    return 'forwards'\n")
    git("commit", "-qam", "Spin forwards", cwd=work)
    git("push", "-q", "origin", "honk/issue-7", cwd=work, token=token)
    assert fake.branches(REPO)["honk/issue-7"] == git("rev-parse", "HEAD", cwd=work).strip()
    assert fake.log(REPO, "honk/issue-7")[0]["message"].strip() == "Spin forwards"
    assert "-    return 'backwards'" in fake.diff(REPO, "main", "honk/issue-7")
    assert [(p.ref, p.old, p.forced) for p in fake.pushes] == [("refs/heads/honk/issue-7", "0" * 40, False)]

    human = fake.commit_files(REPO, "main", {"NEWS.md": "spin fixed\n"}, "News", author="Rita <rita@example.com>")
    git("fetch", "-q", "origin", cwd=work, token=token)
    assert git("rev-parse", "origin/main", cwd=work).strip() == human
    assert fake.log(REPO, "main")[0]["author_name"] == "Rita"

    # Without credentials git is asked for them (401) and, unable to prompt, gives up.
    failed = git("clone", f"{url}/{REPO}.git", str(tmp_path / "anon"), check=False)
    assert "could not read Username" in failed or "Authentication failed" in failed
    denied = git("push", "origin", "HEAD:refs/heads/anon", cwd=work, check=False)
    assert "anon" not in fake.branches(REPO) and ("Username" in denied or "Authentication" in denied)
    fake.expire_tokens()
    expired = git("fetch", "origin", cwd=work, token=token, check=False)
    assert "could not read Username" in expired or "Authentication failed" in expired

    answer = httpx.get(f"{url}/{REPO}.git/info/refs?service=git-upload-pack")
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == 'Basic realm="GitHub"'


def test_upload_pack_takes_gzipped_requests(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    want = fake.branches(REPO)["main"]
    request = f"0032want {want}\n".encode() + b"0000" + b"0009done\n"
    answer = httpx.post(f"{url}/{REPO}.git/git-upload-pack", content=gzip.compress(request),
                        headers={"Authorization": basic_auth_header(new_token(url, app_key)),
                                 "Content-Type": "application/x-git-upload-pack-request", "Content-Encoding": "gzip"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-git-upload-pack-result"
    assert answer.content.startswith(b"0008NAK\n") and b"PACK" in answer.content


def test_close_removes_the_repositories_it_made(app_key: str) -> None:
    fake = FakeGitHub(app_id=1, private_key_pem=app_key)
    path = fake.create_repo("octo/demo", {"a.txt": "a"}, default_branch="trunk", private=True)
    assert list(fake.branches("octo/demo")) == ["trunk"] and path.is_dir()
    fake.close()
    assert not path.exists()


def test_a_force_push_is_recorded_as_forced(github: tuple[FakeGitHub, str], app_key: str, tmp_path: Path) -> None:
    fake, url = github
    token = new_token(url, app_key)
    work = tmp_path / "work"
    git("clone", "--quiet", f"{url}/{REPO}.git", str(work), token=token)
    git("commit", "-q", "--amend", "-m", "rewritten", cwd=work)
    git("push", "-q", "--force", "origin", "main", cwd=work, token=token)
    assert [p.forced for p in fake.pushes] == [True]


# --------------------------------------------------------------------------------------------- issues


def test_issues_comments_and_reactions(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    number = fake.create_issue(REPO, "Widgets spin backwards", "Please fix.", user="alice", labels=["honk"])
    human = fake.add_comment(REPO, number, "Still broken", user="rita")
    with kit(url, app_key) as gh:
        issue = parse(m.Issue, gh.rest.issues.get("acme", "widgets", number).json())
        assert (issue.user.login, [label.name for label in issue.labels], issue.comments) == ("alice", ["honk"], 1)
        assert issue.html_url == f"{url}/{REPO}/issues/{number}" and issue.performed_via_github_app is None

        created = gh.rest.issues.create_comment("acme", "widgets", number, body="Queued")
        assert created.status_code == 201
        status = parse(m.IssueComment, created.json())
        assert status.user.login == "honk-test[bot]" and status.user.type == "Bot"
        assert status.performed_via_github_app and status.performed_via_github_app.slug == "honk-test"

        edited = gh.rest.issues.update_comment("acme", "widgets", status.id, body="Working")
        assert parse(m.IssueComment, edited.json()).body == "Working"
        assert parse(m.IssueComment, gh.rest.issues.get_comment("acme", "widgets", status.id).json()).body == "Working"
        with pytest.raises(RequestFailed) as not_ours:
            gh.rest.issues.update_comment("acme", "widgets", human, body="hijack")
        assert not_ours.value.response.status_code == 403

        first = gh.rest.reactions.create_for_issue("acme", "widgets", number, content="eyes")
        again = gh.rest.reactions.create_for_issue("acme", "widgets", number, content="eyes")
        assert (first.status_code, again.status_code) == (201, 200)
        assert parse(m.Reaction, first.json()).id == parse(m.Reaction, again.json()).id
        on_comment = gh.rest.reactions.create_for_issue_comment("acme", "widgets", human, content="eyes")
        assert on_comment.status_code == 201 and parse(m.Reaction, on_comment.json()).user.login == "honk-test[bot]"

    with api(url, new_token(url, app_key)) as client:
        page1 = client.get(f"/repos/{REPO}/issues/{number}/comments", params={"per_page": 1})
        page2 = client.get(f"/repos/{REPO}/issues/{number}/comments", params={"per_page": 1, "page": 2})
        assert 'rel="next"' in page1.headers["link"]
        bodies = [c.body for c in parse(list[m.IssueComment], page1.json() + page2.json())]
        assert bodies == ["Still broken", "Working"]
        assert client.post(f"/repos/{REPO}/issues/{number}/reactions", json={"content": "yay"}).status_code == 422
        assert client.get(f"/repos/{REPO}/issues/999").status_code == 404
    assert [r["content"] for r in fake.reactions(REPO, number)] == ["eyes"]
    assert len(fake.reactions(REPO, comment_id=human)) == 1
    assert [c["body"] for c in fake.comments(REPO, number)] == ["Still broken", "Working"]


# --------------------------------------------------------------------------------------------- pull requests


def push_branch(fake: FakeGitHub, branch: str) -> str:
    return fake.commit_files(REPO, branch, {"src/spin.py": "def spin():\n    return 'forwards'\n"}, "Spin forwards",
                             author=f"honk-test[bot] <{fake.bot_email}>")


def test_pull_requests_open_once_per_branch(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    issue = fake.create_issue(REPO, "Widgets spin backwards")
    head = push_branch(fake, "honk/issue-1")
    with kit(url, app_key) as gh:
        created = gh.rest.pulls.create("acme", "widgets", title="Spin forwards", head="honk/issue-1", base="main",
                                       body=f"Closes #{issue}", draft=False)
        pull = parse(m.PullRequest, created.json())
        assert created.status_code == 201 and pull.number == issue + 1  # one number sequence per repository
        assert (pull.head.sha, pull.head.ref, pull.base.ref, pull.user.login) == (head, "honk/issue-1", "main",
                                                                                  "honk-test[bot]")
        assert (pull.commits, pull.changed_files, pull.mergeable) == (1, 1, True)

        with pytest.raises(RequestFailed) as duplicate:
            gh.rest.pulls.create("acme", "widgets", title="again", head="acme:honk/issue-1", base="main")
        assert duplicate.value.response.status_code == 422
        assert duplicate.value.response.json()["errors"][0]["message"] == \
            "A pull request already exists for acme:honk/issue-1."

        listed = gh.rest.pulls.list("acme", "widgets", state="open", head="acme:honk/issue-1").json()
        assert [p.number for p in parse(list[m.PullRequestSimple], listed)] == [pull.number]
        assert gh.rest.pulls.list("acme", "widgets", head="acme:other").json() == []
        assert len(gh.rest.pulls.list("acme", "widgets", head="honk/issue-1").json()) == 1  # no owner: ignored

        fake.commit_files(REPO, "main", {"main.txt": "x"}, "unrelated")
        assert parse(m.PullRequest, gh.rest.pulls.get("acme", "widgets", pull.number).json()).head.sha == head
        newer = fake.commit_files(REPO, "honk/issue-1", {"more.txt": "y"}, "more")
        assert parse(m.PullRequest, gh.rest.pulls.get("acme", "widgets", pull.number).json()).head.sha == newer

        gh.rest.pulls.update("acme", "widgets", pull.number, title="Spin forwards, really")
        with api(url, new_token(url, app_key)) as client:  # `draft` is not patchable: GitHub ignores it
            updated = client.patch(f"/repos/{REPO}/pulls/{pull.number}", json={"draft": True})
        after = parse(m.PullRequest, updated.json())
        assert (after.title, after.draft, after.body) == ("Spin forwards, really", False, f"Closes #{issue}")
        closed = parse(m.PullRequest, gh.rest.pulls.update("acme", "widgets", pull.number, state="closed").json())
        assert closed.state == "closed"
        assert gh.rest.pulls.list("acme", "widgets", head="acme:honk/issue-1").json() == []
        assert len(gh.rest.pulls.list("acme", "widgets", state="closed").json()) == 1
        # A closed one does not block a new pull request for the branch.
        assert gh.rest.pulls.create("acme", "widgets", title="t", head="honk/issue-1", base="main").status_code == 201

        as_issue = parse(m.Issue, gh.rest.issues.get("acme", "widgets", pull.number).json())
        assert as_issue.pull_request is not None


def test_pull_requests_need_a_branch_ahead_of_base(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    fake.commit_files(REPO, "empty", {}, "nothing")  # a branch whose commit changes nothing is still ahead
    fake.branches(REPO)
    with api(url, new_token(url, app_key)) as client:
        subprocess.run(["git", "update-ref", "refs/heads/same", "main"], cwd=fake.root / "acme" / "widgets.git",
                       check=True)
        for head in ("same", "nope"):
            answer = client.post(f"/repos/{REPO}/pulls", json={"title": "t", "head": head, "base": "main"})
            assert answer.status_code == 422 and answer.json()["message"] == "Validation Failed"
        same = client.post(f"/repos/{REPO}/pulls", json={"title": "t", "head": "same", "base": "main"}).json()
        assert parse(m.ValidationError, same).errors[0].message == "No commits between main and same"
        missing = client.post(f"/repos/{REPO}/pulls", json={"head": "same", "base": "main"})
        assert missing.status_code == 422


def test_reviewers_cannot_include_the_author(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    push_branch(fake, "honk/issue-3")
    with kit(url, app_key) as gh:
        number = gh.rest.pulls.create("acme", "widgets", title="t", head="honk/issue-3", base="main").json()["number"]
        asked = gh.rest.pulls.request_reviewers("acme", "widgets", number, reviewers=["alice"])
        assert asked.status_code == 201
        assert [u.login for u in parse(m.PullRequestSimple, asked.json()).requested_reviewers or []] == ["alice"]
        for reviewer in ("honk-test[bot]", "stranger"):
            with pytest.raises(RequestFailed) as refused:
                gh.rest.pulls.request_reviewers("acme", "widgets", number, reviewers=[reviewer])
            assert refused.value.response.status_code == 422


def test_reviews_threads_replies_and_graphql(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    push_branch(fake, "honk/issue-4")
    with kit(url, app_key) as gh:
        number = gh.rest.pulls.create("acme", "widgets", title="t", head="honk/issue-4", base="main").json()["number"]
        review_id = fake.add_review(REPO, number, "rita", "CHANGES_REQUESTED", "Close, but:",
                                    comments=[{"path": "src/spin.py", "line": 2, "body": "Say why"}])
        reviews = parse(list[m.PullRequestReview], gh.rest.pulls.list_reviews("acme", "widgets", number).json())
        assert [(r.id, r.state, r.user and r.user.login) for r in reviews] == [(review_id, "CHANGES_REQUESTED", "rita")]
        in_review = gh.rest.pulls.list_comments_for_review("acme", "widgets", number, review_id).json()
        comment = parse(list[m.ReviewComment], in_review)[0]
        assert comment.path == "src/spin.py" and "+    return 'forwards'" in comment.diff_hunk
        everything = parse(list[m.PullRequestReviewComment],
                           gh.rest.pulls.list_review_comments("acme", "widgets", number).json())
        assert [(c.id, c.line, c.body) for c in everything] == [(comment.id, 2, "Say why")]

        reply = gh.rest.pulls.create_reply_for_review_comment("acme", "widgets", number, comment.id,
                                                              body="Done in abc123")
        answer = parse(m.PullRequestReviewComment, reply.json())
        assert reply.status_code == 201 and answer.in_reply_to_id == comment.id
        assert answer.user.login == "honk-test[bot]"
        reaction = gh.rest.reactions.create_for_pull_request_review_comment("acme", "widgets", comment.id,
                                                                            content="eyes")
        assert reaction.status_code == 201 and parse(m.Reaction, reaction.json()).content == "eyes"

        query = """query($owner: String!, $name: String!, $number: Int!) {
          repository(owner: $owner, name: $name) { pullRequest(number: $number) {
            reviewThreads(first: 50) { nodes { id isResolved comments(first: 50) { nodes { databaseId } } } } } } }"""
        threads = gh.graphql(query, {"owner": "acme", "name": "widgets", "number": number})
        nodes = threads["repository"]["pullRequest"]["reviewThreads"]["nodes"]
        assert [[c["databaseId"] for c in t["comments"]["nodes"]] for t in nodes] == [[comment.id, answer.id]]
        assert nodes[0]["isResolved"] is False
        resolved = gh.graphql("mutation($id: ID!) { resolveReviewThread(input: {threadId: $id}) "
                              "{ thread { id isResolved } } }", {"id": nodes[0]["id"]})
        assert resolved["resolveReviewThread"]["thread"]["isResolved"] is True
    assert fake.review_threads(REPO, number)[0]["isResolved"] is True
    assert len(fake.reactions(REPO, review_comment_id=comment.id)) == 1


# --------------------------------------------------------------------------------------------- failures


def test_injected_failures_then_success(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    token = new_token(url, app_key)
    fake.failures["get_repo"] = [502]
    with api(url, token) as client:
        failed = client.get(f"/repos/{REPO}")
        assert failed.status_code == 502 and failed.json()["message"] == "Server Error"
        ok = client.get(f"/repos/{REPO}")
        assert ok.status_code == 200
        assert int(ok.headers["x-ratelimit-remaining"]) < int(ok.headers["x-ratelimit-limit"]) == 5000
        assert int(ok.headers["x-ratelimit-reset"]) > time.time()

    fake.failures["get_repo"] = [403, PRIMARY_RATE_LIMIT]
    with kit(url, app_key) as gh:
        with pytest.raises(SecondaryRateLimitExceeded) as secondary:
            gh.rest.repos.get("acme", "widgets")
        assert secondary.value.retry_after.total_seconds() == 1
        with pytest.raises(PrimaryRateLimitExceeded) as primary:
            gh.rest.repos.get("acme", "widgets")
        assert primary.value.response.headers["x-ratelimit-remaining"] == "0"
        assert 0 < primary.value.retry_after.total_seconds() <= 2

    # githubkit's default retry rides out a 502 (after one second), as Honk's client will.
    fake.failures["create_comment"] = [502]
    number = fake.create_issue(REPO, "t")
    retrying = GitHub(AppInstallationAuthStrategy(4242, app_key, 42), base_url=url + "/",
                      cache_strategy=MemCacheStrategy())
    with retrying as gh:
        assert gh.rest.issues.create_comment("acme", "widgets", number, body="hi").status_code == 201
    assert [r.route for r in fake.requests if r.route == "create_comment"] == ["create_comment"] * 2
    assert fake.calls("create_comment")[-1].json == {"body": "hi"}


def test_app_auth_with_githubkit_mints_tokens(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    with GitHub(AppAuthStrategy(4242, app_key), base_url=url + "/", cache_strategy=MemCacheStrategy()) as gh:
        assert parse(m.Integration, gh.rest.apps.get_authenticated().json()).id == 4242
        minted = gh.rest.apps.create_installation_access_token(42)
        assert minted.status_code == 201 and minted.parsed_data.token in fake.tokens


# --------------------------------------------------------------------------------------------- webhooks


Received = list[tuple[dict[str, str], bytes]]


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    got: Received = []
    hook = FastAPI()

    @hook.post("/api/github/webhooks")
    async def receive(request: Request) -> dict[str, str]:
        got.append((dict(request.headers), await request.body()))
        return {"status": "ok"}

    with live_server(hook) as url:
        yield url + "/api/github/webhooks", got


def test_deliveries_are_signed_and_shaped_like_githubs(github: tuple[FakeGitHub, str],
                                                       receiver: tuple[str, Received]) -> None:
    fake, url = github
    hook_url, got = receiver
    fake.webhook_target(hook_url, "s3cret")
    number = fake.create_issue(REPO, "Widgets spin backwards", "Please", user="alice")

    labeled = fake.issues_labeled(REPO, number, "honk", sender="alice")
    assert fake.deliver("issues", labeled).status_code == 200
    event = parse_obj("issues", labeled)
    assert isinstance(event, m.WebhookIssuesLabeled)
    assert (event.label and event.label.name, event.sender.type, event.installation and event.installation.id) == (
        "honk", "User", 42)
    assert event.repository.clone_url == f"{url}/{REPO}.git"
    assert [label.name for label in event.issue.labels or []] == ["honk"]

    mention = fake.issue_comment_created(REPO, number, "@honk please", sender="rita")
    fake.deliver("issue_comment", mention)
    comment_event = parse_obj("issue_comment", mention)
    assert isinstance(comment_event, m.WebhookIssueCommentCreated) and comment_event.comment.body == "@honk please"
    assert [c["body"] for c in fake.comments(REPO, number)] == ["@honk please"]

    bot = fake.issue_comment_created(REPO, number, "Queued", sender=fake.bot_login)
    assert bot["sender"]["type"] == "Bot" and bot["comment"]["performed_via_github_app"]["slug"] == "honk-test"

    again = fake.redeliver(fake.deliveries[0].id)
    assert again.status_code == 200
    headers, body = got[0]
    assert headers["x-github-event"] == "issues" and got[2][0]["x-github-delivery"] == headers["x-github-delivery"]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature-256"] == expected and got[2][1] == body


def test_review_deliveries_parse(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    push_branch(fake, "honk/issue-9")
    with api(url, new_token(url, app_key)) as client:
        number = client.post(f"/repos/{REPO}/pulls", json={"title": "t", "head": "honk/issue-9",
                                                           "base": "main"}).json()["number"]
    review = fake.add_review(REPO, number, "rita", "CHANGES_REQUESTED", "@honk fix",
                             comments=[{"path": "src/spin.py", "line": 1, "body": "@honk rename"}])
    submitted = parse_obj("pull_request_review", fake.pull_request_review_submitted(REPO, number, review))
    assert isinstance(submitted, m.WebhookPullRequestReviewSubmitted)
    assert submitted.review.state == "changes_requested"
    comment_id = fake.review_comments(REPO, number)[0]["id"]
    created = parse_obj("pull_request_review_comment",
                        fake.pull_request_review_comment_created(REPO, number, comment_id))
    assert isinstance(created, m.WebhookPullRequestReviewCommentCreated) and created.comment.body == "@honk rename"


def missing_keys(real: Any, ours: Any, path: str = "") -> list[str]:
    """Keys a real delivery has (recursively, through objects) that ours lacks."""
    if not (isinstance(real, dict) and isinstance(ours, dict)):
        return []
    return [f"{path}.{key}" for key in real if key not in ours] + [
        gap for key in real if key in ours for gap in missing_keys(real[key], ours[key], f"{path}.{key}")]


def test_payloads_carry_every_key_of_real_deliveries(github: tuple[FakeGitHub, str]) -> None:
    fake, _ = github
    fixtures = FIXTURES
    if not fixtures.is_dir():
        pytest.skip(f"no recorded deliveries at {fixtures}")
    number = fake.create_issue(REPO, "Widgets spin backwards")
    ours = {"issues.labeled.5": fake.issues_labeled(REPO, number, "honk", sender="alice"),
            "issue_comment.created.8": fake.issue_comment_created(REPO, number, "@honk go", sender="alice")}
    for name, payload in ours.items():
        real = json.loads((fixtures / f"{name}.json").read_text())
        assert missing_keys(real, payload) == [], name
