"""The local GitHub at fleet scale: an installation of many generated repositories (`create_fleet`), listed a page
at a time by `GET /installation/repositories`, their trees, topics, languages and archived (read-only) state,
per-repository permissions, and the pull-request endings a campaign waits for (merges and their payloads)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from githubkit.webhooks import parse_obj
from githubkit_schemas.latest import models as m

from tests.fakes.github import FakeGitHub
from tests.fakes.test_github import api, git, missing_keys, new_token, parse
from tests.support import FIXTURES, app_private_key

REPO = "acme/widgets"
FILES = {"README.md": "# Widgets\n", "src/spin.py": "def spin():\n    return 'backwards'\n",
         "src/gears/cog.py": "TEETH = 12\n"}


@pytest.fixture(scope="module")
def app_key() -> str:
    return app_private_key()


@pytest.fixture
def github(app_key: str, tmp_path: Path) -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub(app_id=4242, private_key_pem=app_key, root=tmp_path / "github",
                      permissions={"alice": "write", "rita": "write", "bob": "read"})
    fake.create_repo(REPO, files=FILES, topics=["gears", "spin"], language="Python")
    with fake.serve() as url:
        yield fake, url
    fake.close()


# --------------------------------------------------------------------------------------------- the installation


def test_installation_lists_its_own_repositories_a_page_at_a_time(github: tuple[FakeGitHub, str],
                                                                   app_key: str) -> None:
    fake, url = github
    ours = fake.create_fleet(44)
    theirs = fake.create_fleet(3, owner="globex", prefix="app", installation_id=77)
    expected = sorted([REPO, *ours], key=str.lower)
    assert theirs == ["globex/app-000", "globex/app-001", "globex/app-002"]
    with api(url, new_token(url, app_key)) as client:
        first = client.get("/installation/repositories", params={"per_page": 20})
        assert first.status_code == 200, first.text
        body = parse(m.InstallationRepositoriesGetResponse200, first.json())
        assert (body.total_count, body.repository_selection, len(body.repositories)) == (45, "all", 20)
        assert first.links["next"]["url"].endswith("per_page=20&page=2")
        assert first.links["last"]["url"].endswith("per_page=20&page=3")
        assert "prev" not in first.links
        names, page = [], first
        while True:
            names += [r["full_name"] for r in page.json()["repositories"]]
            if "next" not in page.links:
                break
            page = client.get(page.links["next"]["url"])
            assert page.json()["total_count"] == 45
        assert names == expected
        assert page.links["first"]["url"].endswith("page=1") and len(page.json()["repositories"]) == 5

        # Each entry is the repository as GET /repos/{owner}/{repo} answers it.
        listed = client.get("/installation/repositories").json()
        assert len(listed["repositories"]) == 30  # GitHub's default page
        assert listed["repositories"][0] == client.get(f"/repos/{expected[0]}").json()
        assert len(client.get("/installation/repositories", params={"per_page": 500}).json()["repositories"]) == 45

        fake.failures["installation_repositories"] = [503]
        assert client.get("/installation/repositories").status_code == 503
        assert client.get("/installation/repositories").status_code == 200
    assert len(fake.calls("installation_repositories")) >= 6

    with api(url, new_token(url, app_key, installation=77)) as client:
        other = client.get("/installation/repositories").json()
        assert other["total_count"] == 3 and [r["full_name"] for r in other["repositories"]] == theirs
        assert client.get(f"/repos/{REPO}").status_code == 404
    assert httpx.get(f"{url}/installation/repositories").status_code == 401


def test_topics_language_and_archived_show_in_the_repository(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    fake.create_repo("acme/old-widgets", archived=True, language="Go")
    with api(url, new_token(url, app_key)) as client:
        repo = parse(m.FullRepository, client.get(f"/repos/{REPO}").json())
        assert (repo.topics, repo.language, repo.archived) == (["gears", "spin"], "Python", False)
        old = parse(m.FullRepository, client.get("/repos/acme/old-widgets").json())
        assert (old.topics, old.language, old.archived) == ([], "Go", True)
        fake.archive_repo(REPO)
        assert client.get(f"/repos/{REPO}").json()["archived"] is True
        fake.archive_repo(REPO, archived=False)
        assert client.get(f"/repos/{REPO}").json()["archived"] is False


# --------------------------------------------------------------------------------------------- trees


def test_trees_of_a_branch_a_commit_or_a_tree(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    head = fake.commit_files(REPO, "honk/fleet-1", {"package.json": "{}\n"}, "Add package.json")
    with api(url, new_token(url, app_key)) as client:
        top = client.get(f"/repos/{REPO}/git/trees/main")
        assert top.status_code == 200, top.text
        tree = parse(m.GitTree, top.json())
        assert not tree.truncated and tree.url == f"{url}/repos/{REPO}/git/trees/{tree.sha}"
        entries = {e["path"]: e for e in top.json()["tree"]}
        assert set(entries) == {"README.md", "src"}
        readme, src = entries["README.md"], entries["src"]
        assert (readme["type"], readme["mode"], readme["size"]) == ("blob", "100644", len(FILES["README.md"]))
        assert readme["url"] == f"{url}/repos/{REPO}/git/blobs/{readme['sha']}"
        assert (src["type"], src["mode"], "size" in src) == ("tree", "040000", False)
        assert src["url"] == f"{url}/repos/{REPO}/git/trees/{src['sha']}"

        deep = client.get(f"/repos/{REPO}/git/trees/main", params={"recursive": "1"}).json()
        assert [(e["path"], e["type"]) for e in deep["tree"]] == [
            ("README.md", "blob"), ("src", "tree"), ("src/gears", "tree"), ("src/gears/cog.py", "blob"),
            ("src/spin.py", "blob")]
        assert client.get(f"/repos/{REPO}/git/trees/main?recursive=true").json() == deep

        # A subtree by its SHA lists paths relative to it; a commit SHA and a branch with a slash work too.
        sub = client.get(f"/repos/{REPO}/git/trees/{src['sha']}").json()
        assert sub["sha"] == src["sha"] and [e["path"] for e in sub["tree"]] == ["gears", "spin.py"]
        by_commit = client.get(f"/repos/{REPO}/git/trees/{head}").json()
        assert "package.json" in {e["path"] for e in by_commit["tree"]}
        assert client.get(f"/repos/{REPO}/git/trees/honk/fleet-1").json() == by_commit
        assert client.get(f"/repos/{REPO}/git/trees/{deep['sha']}").json()["sha"] == top.json()["sha"]

        for unknown in ("no-such-branch", "0" * 40, "--all"):
            missing = client.get(f"/repos/{REPO}/git/trees/{unknown}")
            assert missing.status_code == 404 and missing.json()["message"] == "Not Found"
    assert fake.calls("get_tree")


# --------------------------------------------------------------------------------------------- permissions


def test_a_repository_can_override_a_users_role(github: tuple[FakeGitHub, str], app_key: str) -> None:
    fake, url = github
    fake.create_repo("acme/gadgets")
    fake.create_repo("acme/secrets")
    fake.set_permission("acme/gadgets", "bob", "admin")
    fake.repo_permissions["acme/secrets"] = {"alice": "none"}

    def role(client: httpx.Client, repo: str, login: str) -> tuple[int, str | None]:
        answer = client.get(f"/repos/{repo}/collaborators/{login}/permission")
        return answer.status_code, answer.json().get("role_name")

    with api(url, new_token(url, app_key)) as client:
        assert role(client, "acme/gadgets", "bob") == (200, "admin")
        gadgets = parse(m.RepositoryCollaboratorPermission, client.get(
            "/repos/acme/gadgets/collaborators/bob/permission").json())
        assert gadgets.permission == "admin" and gadgets.user is not None
        assert gadgets.user.permissions is not None and gadgets.user.permissions.push
        assert role(client, REPO, "bob") == (200, "read")  # elsewhere, `permissions` as before
        assert role(client, "acme/gadgets", "alice") == (200, "write")
        none = client.get("/repos/acme/secrets/collaborators/alice/permission").json()
        assert (none["permission"], none["user"]["permissions"]["pull"]) == ("none", False)
        assert role(client, "acme/gadgets", "nobody")[0] == 404
    assert fake.repo_permissions == {"acme/gadgets": {"bob": "admin"}, "acme/secrets": {"alice": "none"}}
    assert fake.role_of("ACME/Gadgets", "bob") == "admin" and fake.role_of("acme/secrets", "rita") == "write"


# --------------------------------------------------------------------------------------------- archived


def test_an_archived_repository_is_read_only(github: tuple[FakeGitHub, str], app_key: str, tmp_path: Path) -> None:
    fake, url = github
    number = fake.create_issue(REPO, "Widgets spin backwards")
    token = new_token(url, app_key)
    work = tmp_path / "work"
    git("clone", "--quiet", f"{url}/{REPO}.git", str(work), token=token)
    fake.archive_repo(REPO)
    with api(url, token) as client:
        refused = client.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": "on it"})
        assert refused.status_code == 403
        assert refused.json()["message"] == "Repository was archived so is read-only."
        assert client.post(f"/repos/{REPO}/issues", json={"title": "more"}).status_code == 403
        head = fake.branches(REPO)["main"]
        assert client.post(f"/repos/{REPO}/check-runs", json={"name": "honk", "head_sha": head}).status_code == 403
        assert fake.comments(REPO, number) == [] and list(fake.pulls(REPO)) == []
        # Reads still work, and so do clones and fetches.
        assert client.get(f"/repos/{REPO}/issues/{number}").status_code == 200
        assert client.get(f"/repos/{REPO}/git/trees/main").status_code == 200
    git("fetch", "-q", "origin", cwd=work, token=token)
    git("clone", "--quiet", f"{url}/{REPO}.git", str(tmp_path / "again"), token=token)

    git("checkout", "-q", "-b", "honk/issue-1", cwd=work)
    (work / "NEWS.md").write_text("spun\n")
    git("add", "NEWS.md", cwd=work)
    git("commit", "-qm", "News", cwd=work)
    denied = git("push", "origin", "honk/issue-1", cwd=work, token=token, check=False)
    assert "archived" in denied and "403" in denied, denied
    assert "honk/issue-1" not in fake.branches(REPO) and fake.pushes == []

    fake.archive_repo(REPO, archived=False)
    git("push", "-q", "origin", "honk/issue-1", cwd=work, token=token)
    assert "honk/issue-1" in fake.branches(REPO)


# --------------------------------------------------------------------------------------------- fleets


def test_a_fleet_of_two_hundred_is_quick_and_clonable(github: tuple[FakeGitHub, str], app_key: str,
                                                       tmp_path: Path) -> None:
    fake, url = github

    def every(index: int) -> dict[str, Any] | None:
        if index % 3 == 0:
            return {"files": {"package.json": json.dumps({"name": f"svc-{index:03d}"})}, "topics": ["node"],
                    "language": "TypeScript"}
        if index == 7:
            return {"archived": True, "files": {"README.md": None, "docs/index.md": "# Docs\n"}}
        return None

    started = time.perf_counter()
    names = fake.create_fleet(200, files={"README.md": "# Service\n", "src/main.py": "print('hi')\n"}, every=every)
    elapsed = time.perf_counter() - started
    print(f"\ncreate_fleet(200): {elapsed:.2f} s")
    assert names[0] == "acme/svc-000" and names[-1] == "acme/svc-199" and len(set(names)) == 200

    token = new_token(url, app_key)
    for index in (0, 1, 7, 199):
        work = tmp_path / f"svc-{index}"
        git("clone", "--quiet", f"{url}/{names[index]}.git", str(work), token=token)
        assert (work / "package.json").exists() == (index % 3 == 0)
        assert (work / "src" / "main.py").read_text() == "print('hi')\n"
        assert (work / "README.md").exists() == (index != 7)
        assert git("log", "--format=%an <%ae>|%s", cwd=work).strip() == "Octo Cat <octocat@github.com>|Initial commit"
        fsck = subprocess.run(["git", "fsck", "--strict"], cwd=fake._repo(names[index]).path, capture_output=True,
                              text=True)
        assert fsck.returncode == 0, fsck.stderr
    assert fake.file_at(names[3], "main", "package.json") == '{"name": "svc-003"}'

    with api(url, token) as client:
        listing = client.get("/installation/repositories", params={"per_page": 100, "page": 1}).json()
        assert listing["total_count"] == 201
        by_name = {r["full_name"]: r for r in listing["repositories"]}
        assert (by_name["acme/svc-003"]["topics"], by_name["acme/svc-003"]["language"]) == (["node"], "TypeScript")
        assert by_name["acme/svc-007"]["archived"] is True and by_name["acme/svc-008"]["archived"] is False
        assert client.post("/repos/acme/svc-007/issues", json={"title": "x"}).status_code == 403
        # A fleet repository takes pushes and pull requests like any other.
        work = tmp_path / "svc-1"
        git("checkout", "-q", "-b", "honk/campaign", cwd=work)
        (work / "package.json").write_text("{}\n")
        git("add", "package.json", cwd=work)
        git("commit", "-qm", "Add package.json", cwd=work)
        git("push", "-q", "origin", "honk/campaign", cwd=work, token=token)
        pull = client.post("/repos/acme/svc-001/pulls", json={"title": "Add package.json", "head": "honk/campaign",
                                                               "base": "main"})
        assert pull.status_code == 201, pull.text

    with pytest.raises(ValueError, match="exists"):
        fake.create_fleet(1)
    with pytest.raises(ValueError, match="unknown keys"):
        fake.create_fleet(1, prefix="bad", every=lambda i: {"colour": "red"})


# --------------------------------------------------------------------------------------------- pull requests end


def open_campaign_pull(fake: FakeGitHub, repo: str = REPO, branch: str = "honk/fleet-1") -> int:
    fake.commit_files(repo, branch, {"package.json": "{}\n"}, "Add package.json",
                      author="Honk <honk@example.com>")
    return fake.open_pull(repo, branch, "main", "Add package.json", user="honk-test[bot]")


def test_merging_and_closing_payloads(github: tuple[FakeGitHub, str]) -> None:
    fake, _ = github
    number = open_campaign_pull(fake)
    base_before = fake.branches(REPO)["main"]
    payload = fake.pull_request_closed(REPO, number, merged=True, sender="rita")
    event = parse_obj("pull_request", payload)
    assert isinstance(event, m.WebhookPullRequestClosed)
    pull = payload["pull_request"]
    assert (pull["state"], pull["merged"], pull["merged_by"]["login"]) == ("closed", True, "rita")
    assert pull["merged_at"] and pull["merge_commit_sha"] == fake.branches(REPO)["main"] != base_before
    assert fake.file_at(REPO, "main", "package.json") == "{}\n"
    merge = fake.log(REPO, "main")[0]
    assert merge["message"].startswith(f"Merge pull request #{number}") and merge["committer_name"] == "GitHub"
    assert merge["author_email"].endswith("+rita@users.noreply.github.com")
    assert fake.pulls(REPO)[0]["merged_by"]["login"] == "rita"

    # Merged first (as a person would), then the payload tells of it.
    second = open_campaign_pull(fake, branch="honk/fleet-2")
    fake.commit_files(REPO, "honk/fleet-2", {"extra.txt": "x\n"}, "More")
    sha = fake.merge_pull(REPO, second, user="alice")
    told = fake.pull_request_closed(REPO, second, merged=True, sender="alice")["pull_request"]
    assert (told["merged"], told["merge_commit_sha"], told["merged_by"]["login"]) == (True, sha, "alice")
    with pytest.raises(ValueError, match="not an open pull request"):
        fake.merge_pull(REPO, second)

    third = open_campaign_pull(fake, branch="honk/fleet-3")
    closed = fake.pull_request_closed(REPO, third, merged=False)["pull_request"]
    assert (closed["state"], closed["merged"], closed["merged_by"], closed["merged_at"]) == (
        "closed", False, None, None)
    with pytest.raises(ValueError, match="without being merged"):
        fake.pull_request_closed(REPO, third, merged=True)

    if FIXTURES.is_dir():
        for index in range(1, 7):
            real = json.loads((FIXTURES / f"pull_request.closed.{index}.json").read_text())
            assert missing_keys(real, payload) == [], index


def test_review_and_check_suite_payloads_name_the_pull_requests_head(github: tuple[FakeGitHub, str]) -> None:
    fake, _ = github
    number = open_campaign_pull(fake)
    head = fake.branches(REPO)["honk/fleet-1"]
    review = fake.add_review(REPO, number, "rita", "APPROVED", "ship it")
    submitted = fake.pull_request_review_submitted(REPO, number, review)
    assert isinstance(parse_obj("pull_request_review", submitted), m.WebhookPullRequestReviewSubmitted)
    assert (submitted["pull_request"]["head"]["ref"], submitted["pull_request"]["head"]["sha"]) == (
        "honk/fleet-1", head)
    assert submitted["review"]["commit_id"] == head

    suite_id = fake.add_check_suite(REPO, head, "success", ["build", "test"])
    completed = fake.check_suite_completed(REPO, suite_id)
    assert isinstance(parse_obj("check_suite", completed), m.WebhookCheckSuiteCompleted)
    pulls = completed["check_suite"]["pull_requests"]
    assert [(p["number"], p["head"]["ref"], p["head"]["sha"], p["base"]["ref"]) for p in pulls] == [
        (number, "honk/fleet-1", head, "main")]
    if FIXTURES.is_dir():
        for name, ours in (("pull_request_review.submitted.1.json", submitted),
                           ("check_suite.completed.1.json", completed)):
            real = json.loads((FIXTURES / name).read_text())
            # (the recorded suite's App asked for more permissions than this fake's Apps do)
            assert [k for k in missing_keys(real, ours) if ".app.permissions." not in k] == [], name


def test_the_app_merges_over_rest_and_is_recorded_as_the_merger(github: tuple[FakeGitHub, str],
                                                                app_key: str) -> None:
    fake, url = github
    number = open_campaign_pull(fake)
    with api(url, new_token(url, app_key)) as client:
        merged = client.put(f"/repos/{REPO}/pulls/{number}/merge", json={"merge_method": "squash"})
        assert merged.status_code == 200, merged.text
        pull = client.get(f"/repos/{REPO}/pulls/{number}").json()
        assert (pull["merged"], pull["merged_by"]["login"], pull["merge_commit_sha"]) == (
            True, fake.bot_login, merged.json()["sha"])
        assert fake.log(REPO, "main")[0]["message"] == f"Add package.json (#{number})"
        assert client.put(f"/repos/{REPO}/pulls/{number}/merge", json={}).status_code == 405
