"""GitHub's response shapes: the JSON of users, organizations, the App, repositories, commits, contents, labels,
issues, comments, reactions, pull requests, reviews, review comments and (GraphQL) review threads.

`Shapes` adds them to the records as `_*_json` methods; each takes `b`, the base URL its links point at, and
is called with the lock held. Shapes follow githubkit's models (the fake's own tests check them).
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from tests.fakes.github.records import Records
from tests.fakes.github.state import _Repo, iso, node_id

REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
#: A repository's merge settings: in its full JSON, and in the `head.repo` and `base.repo` of `pull_request` events.
MERGE_SETTINGS = {"allow_squash_merge": True, "allow_merge_commit": True, "allow_rebase_merge": True,
                  "allow_auto_merge": False, "delete_branch_on_merge": False, "allow_update_branch": False,
                  "use_squash_pr_title_as_default": False, "squash_merge_commit_message": "COMMIT_MESSAGES",
                  "squash_merge_commit_title": "COMMIT_OR_PR_TITLE", "merge_commit_message": "PR_TITLE",
                  "merge_commit_title": "MERGE_MESSAGE"}


class Shapes(Records):
    def _user(self, b: str, login: str) -> dict[str, Any]:
        uid = self._register(login)
        kind = self._users[login][1]
        api = f"{b}/users/{quote(login)}"
        html = f"{b}/apps/{login.removesuffix('[bot]')}" if kind == "Bot" else f"{b}/{login}"
        return {"login": login, "id": uid, "node_id": node_id(kind, uid),
                "avatar_url": f"{b}/avatars/u/{uid}?v=4", "gravatar_id": "", "url": api, "html_url": html,
                "followers_url": f"{api}/followers", "following_url": f"{api}/following{{/other_user}}",
                "gists_url": f"{api}/gists{{/gist_id}}", "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
                "subscriptions_url": f"{api}/subscriptions", "organizations_url": f"{api}/orgs",
                "repos_url": f"{api}/repos", "events_url": f"{api}/events{{/privacy}}",
                "received_events_url": f"{api}/received_events", "type": kind, "user_view_type": "public",
                "site_admin": False}

    def _org_json(self, b: str, login: str) -> dict[str, Any]:
        uid, api = self._register(login), f"{b}/orgs/{login}"
        return {"login": login, "id": uid, "node_id": node_id("Organization", uid), "url": api,
                "repos_url": f"{api}/repos", "events_url": f"{api}/events", "hooks_url": f"{api}/hooks",
                "issues_url": f"{api}/issues", "members_url": f"{api}/members{{/member}}",
                "public_members_url": f"{api}/public_members{{/member}}",
                "avatar_url": f"{b}/avatars/u/{uid}?v=4", "description": None}

    def _app_json(self, b: str) -> dict[str, Any]:
        return {"id": self.app_id, "client_id": f"Iv1.{self.app_id:016x}", "slug": self.slug,
                "node_id": node_id("Integration", self.app_id), "name": "Honk (test)",
                "owner": self._user(b, self.app_owner),
                "description": "", "external_url": "http://127.0.0.1", "html_url": f"{b}/apps/{self.slug}",
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                "permissions": {"contents": "write", "issues": "write", "pull_requests": "write",
                                "metadata": "read"},
                "events": ["issues", "issue_comment", "pull_request_review", "pull_request_review_comment"]}

    def _association(self, repo: _Repo, login: str) -> str:
        if login == repo.owner:
            return "OWNER"
        role = self.role_of(repo.full_name, login)
        if role in ("admin", "maintain", "write", "triage", "read"):
            return "MEMBER" if self._users[repo.owner][1] == "Organization" else "COLLABORATOR"
        return "NONE"

    def _repo_json(self, b: str, repo: _Repo, *, complete: bool = True) -> dict[str, Any]:
        """`GET /repos/{owner}/{repo}` when `complete`, else the thinner copy in pull requests and webhooks."""
        full = repo.full_name
        api, html, host = f"{b}/repos/{full}", f"{b}/{full}", b.split("://", 1)[-1]
        pushed = self._out(repo, "log", "-1", "--all", "--format=%cI") or repo.created_at
        pushed = iso(datetime.fromisoformat(pushed).astimezone(UTC))
        open_issues = sum(1 for i in repo.issues.values() if i["state"] == "open")
        data: dict[str, Any] = {
            "id": repo.id, "node_id": node_id("Repository", repo.id), "name": repo.name, "full_name": full,
            "private": repo.private, "owner": self._user(b, repo.owner), "html_url": html,
            "description": repo.description, "fork": False, "url": api,
            "archive_url": f"{api}/{{archive_format}}{{/ref}}", "assignees_url": f"{api}/assignees{{/user}}",
            "blobs_url": f"{api}/git/blobs{{/sha}}", "branches_url": f"{api}/branches{{/branch}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}", "comments_url": f"{api}/comments{{/number}}",
            "commits_url": f"{api}/commits{{/sha}}", "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "contents_url": f"{api}/contents/{{+path}}", "contributors_url": f"{api}/contributors",
            "deployments_url": f"{api}/deployments", "downloads_url": f"{api}/downloads",
            "events_url": f"{api}/events", "forks_url": f"{api}/forks", "git_commits_url": f"{api}/git/commits{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}", "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_url": f"git://{host}/{full}.git", "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "issue_events_url": f"{api}/issues/events{{/number}}", "issues_url": f"{api}/issues{{/number}}",
            "keys_url": f"{api}/keys{{/key_id}}", "labels_url": f"{api}/labels{{/name}}",
            "languages_url": f"{api}/languages", "merges_url": f"{api}/merges",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "pulls_url": f"{api}/pulls{{/number}}", "releases_url": f"{api}/releases{{/id}}",
            "ssh_url": f"git@{host.split(':')[0]}:{full}.git", "stargazers_url": f"{api}/stargazers",
            "statuses_url": f"{api}/statuses/{{sha}}", "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription", "tags_url": f"{api}/tags", "teams_url": f"{api}/teams",
            "trees_url": f"{api}/git/trees{{/sha}}", "clone_url": f"{b}/{full}.git", "mirror_url": None,
            "hooks_url": f"{api}/hooks", "svn_url": html, "homepage": None, "language": repo.language, "forks_count": 0,
            "stargazers_count": 0, "watchers_count": 0, "size": 1, "default_branch": repo.default_branch,
            "open_issues_count": open_issues, "is_template": False, "topics": list(repo.topics), "has_issues": True,
            "has_projects": True, "has_wiki": True, "has_pages": False, "has_downloads": True,
            "has_discussions": False, "archived": repo.archived, "disabled": False,
            "visibility": "private" if repo.private else "public", "pushed_at": pushed,
            "created_at": repo.created_at, "updated_at": pushed, "allow_forking": True,
            "web_commit_signoff_required": False, "license": None, "forks": 0, "open_issues": open_issues,
            "watchers": 0, "custom_properties": {},
        }
        if complete:
            data.update({"permissions": {"admin": False, "maintain": False, "push": True, "triage": True,
                                         "pull": True},
                         "temp_clone_token": "", **MERGE_SETTINGS, "subscribers_count": 0, "network_count": 0})
            if self._users[repo.owner][1] == "Organization":
                data["organization"] = self._user(b, repo.owner)
        return data

    def _rollup(self, url: str, subject: tuple[str, str, int]) -> dict[str, Any]:
        counts = dict.fromkeys(REACTIONS, 0)
        for reaction in self._reactions:
            if reaction["subject"] == subject:
                counts[reaction["content"]] += 1
        return {"url": url, "total_count": sum(counts.values()), **counts}

    def _label_json(self, b: str, repo: _Repo, name: str) -> dict[str, Any]:
        label = repo.labels[name.lower()]
        return {**label, "url": f"{b}/repos/{repo.full_name}/labels/{quote(name)}"}

    def _issue_json(self, b: str, repo: _Repo, issue: dict[str, Any]) -> dict[str, Any]:
        n, api, html = issue["number"], f"{b}/repos/{repo.full_name}", f"{b}/{repo.full_name}"
        url = f"{api}/issues/{n}"
        comments = sum(1 for c in self._comments.values() if c["repo"] == repo.full_name and c["number"] == n)
        data: dict[str, Any] = {
            "url": url, "repository_url": api, "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments", "events_url": f"{url}/events",
            "html_url": f"{html}/{'pull' if issue['pull'] else 'issues'}/{n}", "id": issue["id"],
            "node_id": node_id("PullRequest" if issue["pull"] else "Issue", issue["id"]), "number": n,
            "title": issue["title"], "user": self._user(b, issue["user"]),
            "labels": [self._label_json(b, repo, name) for name in issue["labels"]], "state": issue["state"],
            "locked": False, "assignee": None, "assignees": [], "milestone": None, "comments": comments,
            "created_at": issue["created_at"], "updated_at": issue["updated_at"], "closed_at": issue["closed_at"],
            "author_association": self._association(repo, issue["user"]), "type": None,
            "active_lock_reason": None, "sub_issues_summary": {"total": 0, "completed": 0, "percent_completed": 0},
            "body": issue["body"], "closed_by": None, "timeline_url": f"{url}/timeline",
            "reactions": self._rollup(f"{url}/reactions", ("issue", repo.full_name, n)),
            "performed_via_github_app": self._app_json(b) if issue["via_app"] else None,
            "state_reason": issue["state_reason"],
        }
        if issue["pull"]:
            pull = repo.pulls[n]
            data["draft"] = pull["draft"]
            data["pull_request"] = {"url": f"{api}/pulls/{n}", "html_url": f"{html}/pull/{n}",
                                    "diff_url": f"{html}/pull/{n}.diff", "patch_url": f"{html}/pull/{n}.patch",
                                    "merged_at": pull["merged_at"]}
        return data

    def _comment_json(self, b: str, repo: _Repo, comment: dict[str, Any]) -> dict[str, Any]:
        api, n = f"{b}/repos/{repo.full_name}", comment["number"]
        kind = "pull" if repo.issues[n]["pull"] else "issues"
        url = f"{api}/issues/comments/{comment['id']}"
        return {"url": url, "html_url": f"{b}/{repo.full_name}/{kind}/{n}#issuecomment-{comment['id']}",
                "issue_url": f"{api}/issues/{n}", "id": comment["id"],
                "node_id": node_id("IssueComment", comment["id"]), "user": self._user(b, comment["user"]),
                "created_at": comment["created_at"], "updated_at": comment["updated_at"],
                "author_association": self._association(repo, comment["user"]), "body": comment["body"],
                "reactions": self._rollup(f"{url}/reactions", ("comment", repo.full_name, comment["id"])),
                "performed_via_github_app": self._app_json(b) if comment["via_app"] else None}

    def _reaction_json(self, b: str, reaction: dict[str, Any]) -> dict[str, Any]:
        return {"id": reaction["id"], "node_id": node_id("Reaction", reaction["id"]),
                "user": self._user(b, reaction["user"]), "content": reaction["content"],
                "created_at": reaction["created_at"]}

    def _commit_json(self, b: str, repo: _Repo, sha: str) -> dict[str, Any]:
        fields = self._out(repo, "show", "-s", "--format=%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI"
                           "%x00%B", sha).split("\0")
        sha, tree, parents, an, ae, ad, cn, ce, cd, message = fields
        api, html = f"{b}/repos/{repo.full_name}", f"{b}/{repo.full_name}"

        def when(stamp: str) -> str:
            return iso(datetime.fromisoformat(stamp).astimezone(UTC))

        def account(email: str) -> dict[str, Any] | None:
            match = re.fullmatch(r"(?:\d+\+)?([^@]+)@users\.noreply\.github\.com", email)
            return self._user(b, match.group(1)) if match else None

        return {"url": f"{api}/commits/{sha}", "sha": sha, "node_id": node_id("Commit", int(sha[:7], 16)),
                "html_url": f"{html}/commit/{sha}", "comments_url": f"{api}/commits/{sha}/comments",
                "commit": {"url": f"{api}/git/commits/{sha}", "author": {"name": an, "email": ae, "date": when(ad)},
                           "committer": {"name": cn, "email": ce, "date": when(cd)}, "message": message.strip(),
                           "comment_count": 0, "tree": {"sha": tree, "url": f"{api}/git/trees/{tree}"},
                           "verification": {"verified": False, "reason": "unsigned", "signature": None,
                                            "payload": None, "verified_at": None}},
                "author": account(ae), "committer": account(ce),
                "parents": [{"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/commit/{p}"}
                            for p in parents.split()]}

    def _pull_json(self, b: str, repo: _Repo, pull: dict[str, Any], *, simple: bool = False) -> dict[str, Any]:
        self._refresh_head(repo, pull)
        n, api, html = pull["number"], f"{b}/repos/{repo.full_name}", f"{b}/{repo.full_name}"
        issue = repo.issues[n]
        repo_json, owner = self._repo_json(b, repo, complete=False), self._user(b, repo.owner)

        def side(ref: str, sha: str) -> dict[str, Any]:
            return {"label": f"{repo.owner}:{ref}", "ref": ref, "sha": sha, "user": owner, "repo": repo_json}

        links = {"self": f"{api}/pulls/{n}", "html": f"{html}/pull/{n}", "issue": f"{api}/issues/{n}",
                 "comments": f"{api}/issues/{n}/comments", "review_comments": f"{api}/pulls/{n}/comments",
                 "review_comment": f"{api}/pulls/comments{{/number}}", "commits": f"{api}/pulls/{n}/commits",
                 "statuses": f"{api}/statuses/{pull['head_sha']}"}
        data: dict[str, Any] = {
            "url": links["self"], "id": pull["id"], "node_id": node_id("PullRequest", pull["id"]),
            "html_url": links["html"], "diff_url": f"{html}/pull/{n}.diff", "patch_url": f"{html}/pull/{n}.patch",
            "issue_url": links["issue"], "commits_url": links["commits"],
            "review_comments_url": links["review_comments"], "review_comment_url": links["review_comment"],
            "comments_url": links["comments"], "statuses_url": links["statuses"], "number": n,
            "state": issue["state"], "locked": False, "title": issue["title"], "user": self._user(b, issue["user"]),
            "body": issue["body"], "labels": [self._label_json(b, repo, name) for name in issue["labels"]],
            "milestone": None, "active_lock_reason": None, "created_at": issue["created_at"],
            "updated_at": issue["updated_at"], "closed_at": issue["closed_at"], "merged_at": pull["merged_at"],
            "merge_commit_sha": pull.get("merge_commit_sha"), "assignee": None, "assignees": [],
            "requested_reviewers": [self._user(b, login) for login in pull["reviewers"]], "requested_teams": [],
            "head": side(pull["head"], pull["head_sha"]), "base": side(pull["base"], pull["base_sha"]),
            "_links": {k: {"href": v} for k, v in links.items()},
            "author_association": self._association(repo, issue["user"]), "auto_merge": None,
            "draft": pull["draft"],
        }
        if simple:
            return data
        stats = self._git(repo, "diff", "--numstat", f"{pull['base_sha']}...{pull['head_sha']}", "--",
                          check=False).stdout.decode().splitlines()
        counts = [line.split("\t") for line in stats if line]
        merge = self._git(repo, "merge-tree", "--write-tree", pull["base_sha"], pull["head_sha"], check=False)
        open_ = issue["state"] == "open"
        data.update({
            "merged": pull["merged_at"] is not None, "mergeable": (merge.returncode == 0) if open_ else None,
            "rebaseable": (merge.returncode == 0) if open_ else None,
            "mergeable_state": ("clean" if merge.returncode == 0 else "dirty") if open_ else "unknown",
            "merged_by": self._user(b, pull["merged_by"]) if pull.get("merged_by") else None,
            "comments": sum(1 for c in self._comments.values() if c["repo"] == repo.full_name and c["number"] == n),
            "review_comments": sum(1 for c in self._review_comments.values()
                                   if c["repo"] == repo.full_name and c["pr"] == n),
            "maintainer_can_modify": False,
            "commits": int(self._out(repo, "rev-list", "--count", f"{pull['base_sha']}..{pull['head_sha']}") or 0),
            "additions": sum(int(c[0]) for c in counts if c[0].isdigit()),
            "deletions": sum(int(c[1]) for c in counts if c[1].isdigit()), "changed_files": len(counts),
        })
        return data

    def _review_json(self, b: str, repo: _Repo, review: dict[str, Any]) -> dict[str, Any]:
        api, html, n = f"{b}/repos/{repo.full_name}", f"{b}/{repo.full_name}", review["pr"]
        page = f"{html}/pull/{n}#pullrequestreview-{review['id']}"
        return {"id": review["id"], "node_id": node_id("PullRequestReview", review["id"]),
                "user": self._user(b, review["user"]), "body": review["body"], "state": review["state"],
                "html_url": page, "pull_request_url": f"{api}/pulls/{n}",
                "_links": {"html": {"href": page}, "pull_request": {"href": f"{api}/pulls/{n}"}},
                "submitted_at": review["submitted_at"], "commit_id": review["commit_id"],
                "author_association": self._association(repo, review["user"])}

    def _review_comment_json(self, b: str, repo: _Repo, comment: dict[str, Any]) -> dict[str, Any]:
        api, html, n, cid = f"{b}/repos/{repo.full_name}", f"{b}/{repo.full_name}", comment["pr"], comment["id"]
        url = f"{api}/pulls/comments/{cid}"
        data: dict[str, Any] = {
            "url": url, "pull_request_review_id": comment["review_id"], "id": cid,
            "node_id": node_id("PullRequestReviewComment", cid), "diff_hunk": comment["diff_hunk"],
            "path": comment["path"], "position": 1, "original_position": 1, "commit_id": comment["commit_id"],
            "original_commit_id": comment["commit_id"], "user": self._user(b, comment["user"]),
            "body": comment["body"], "created_at": comment["created_at"], "updated_at": comment["updated_at"],
            "html_url": f"{html}/pull/{n}#discussion_r{cid}", "pull_request_url": f"{api}/pulls/{n}",
            "author_association": self._association(repo, comment["user"]),
            "_links": {"self": {"href": url}, "html": {"href": f"{html}/pull/{n}#discussion_r{cid}"},
                       "pull_request": {"href": f"{api}/pulls/{n}"}},
            "start_line": None, "original_start_line": None, "start_side": None, "line": comment["line"],
            "original_line": comment["line"], "side": "RIGHT", "subject_type": "line",
            "reactions": self._rollup(f"{url}/reactions", ("review_comment", repo.full_name, cid)),
        }
        if comment["in_reply_to_id"]:
            data["in_reply_to_id"] = comment["in_reply_to_id"]
        return data

    def _thread_json(self, b: str, thread: dict[str, Any]) -> dict[str, Any]:
        nodes = []
        for cid in thread["comments"]:
            comment = self._review_comments[cid]
            nodes.append({"id": node_id("PullRequestReviewComment", cid), "databaseId": cid,
                          "body": comment["body"], "path": comment["path"], "author": {"login": comment["user"]},
                          "url": f"{b}/{comment['repo']}/pull/{comment['pr']}#discussion_r{cid}"})
        return {"id": thread["id"], "isResolved": thread["resolved"], "isOutdated": False, "path": thread["path"],
                "line": thread["line"], "comments": {"totalCount": len(nodes), "nodes": nodes,
                                                     "pageInfo": {"hasNextPage": False, "endCursor": None}}}

    def _content_json(self, b: str, repo: _Repo, ref: str, entry: tuple[str, str, str, str],
                      content: bytes | None) -> dict[str, Any]:
        _mode, kind, sha, path = entry
        api, html = f"{b}/repos/{repo.full_name}", f"{b}/{repo.full_name}"
        is_file = kind == "blob"
        self_url = f"{api}/contents/{quote(path)}?ref={quote(ref)}"
        git_url = f"{api}/git/{'blobs' if is_file else 'trees'}/{sha}"
        html_url = f"{html}/{'blob' if is_file else 'tree'}/{ref}/{path}"
        data: dict[str, Any] = {
            "type": "file" if is_file else "dir", "size": 0, "name": path.rsplit("/", 1)[-1], "path": path,
            "sha": sha, "url": self_url, "git_url": git_url, "html_url": html_url,
            "download_url": f"{b}/raw/{repo.full_name}/{ref}/{path}" if is_file else None,
            "_links": {"self": self_url, "git": git_url, "html": html_url}}
        if is_file:
            data["size"] = int(self._out(repo, "cat-file", "-s", sha))
        if content is not None:
            data.update({"content": base64.encodebytes(content).decode(), "encoding": "base64"})
        return data
