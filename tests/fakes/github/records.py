"""GitHub's records of a repository: issues, pull requests, labels, comments, reviews and review threads.

`Records` adds to the git layer how they are made: by tests, through the scripting methods (`create_repo`,
`create_issue`, `open_pull`, `add_review`, ...), and by the API routes, through the `_new_*` helpers both use.
Callers of the `_` helpers hold the lock.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.fakes.github.git import OCTOCAT, ZERO, Git, split_person
from tests.fakes.github.state import _Repo, iso, node_id

_REVIEW_STATES = {"APPROVED": "APPROVED", "APPROVE": "APPROVED", "CHANGES_REQUESTED": "CHANGES_REQUESTED",
                  "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENTED": "COMMENTED", "COMMENT": "COMMENTED",
                  "DISMISSED": "DISMISSED", "PENDING": "PENDING"}


class Records(Git):
    # ----------------------------------------------------------------------------------------- scripting

    def create_repo(self, full_name: str, files: Mapping[str, str | bytes] | None = None,
                    default_branch: str = "main", private: bool = False, *, description: str | None = None,
                    installation_id: int | None = None, topics: Sequence[str] = (), language: str | None = None,
                    archived: bool = False) -> Path:
        """A bare repository with one commit of `files` on `default_branch`; returns its path on disk. `topics`,
        `language` and `archived` show in its JSON; an archived repository is read-only (see `archive_repo`)."""
        owner, name = full_name.split("/")
        with self._lock:
            path = self._root / owner / f"{name}.git"
            repo = self._add_repo(owner, name, path, default_branch=default_branch, private=private,
                                  description=description, installation_id=installation_id, topics=topics,
                                  language=language, archived=archived)
            path.mkdir(parents=True)
            self._git(repo, "init", "--bare", "--quiet", f"--initial-branch={default_branch}")
            self._git(repo, "config", "http.receivepack", "true")
            self._commit(repo, default_branch, files or {"README.md": f"# {name}\n"}, "Initial commit",
                         OCTOCAT, OCTOCAT)
            self._repos[full_name.lower()] = repo
        return path

    def create_fleet(self, count: int, *, owner: str = "acme", prefix: str = "svc",
                     files: Mapping[str, str | bytes] | None = None,
                     every: Callable[[int], Mapping[str, Any] | None] | None = None,
                     installation_id: int | None = None) -> list[str]:
        """`count` repositories `owner/prefix-000`, `owner/prefix-001`, ... of one installation (the fake's
        `installation_id` unless given), each with one commit of `files` (by default a `README.md` naming it) on
        `main`; returns their full names, in order. `every(index)` may return overrides for one repository:
        `files` (merged over the default files; None deletes one), `topics`, `language`, `archived`,
        `description`, `private`, `default_branch`. For example, only every third one with a `package.json`:
        `every=lambda i: {"files": {"package.json": "{}"}, "language": "TypeScript"} if i % 3 == 0 else None`.

        Fast (no git subprocess per repository: a copy of one template bare repository, its first commit written
        by Python), and each is still an independent bare repository served by `git http-backend`."""
        allowed = {"files", "topics", "language", "archived", "description", "private", "default_branch"}
        names: list[str] = []
        with self._lock, tempfile.TemporaryDirectory(dir=self._root, prefix=".fleet-") as scratch:
            templates: dict[str, Path] = {}
            for index in range(count):
                name = f"{prefix}-{index:03d}"
                extra = dict((every(index) if every else None) or {})
                if set(extra) - allowed:
                    raise ValueError(f"every({index}) gave unknown keys {sorted(set(extra) - allowed)}")
                content: dict[str, str | bytes | None] = dict(files or {"README.md": f"# {name}\n"})
                content.update(extra.pop("files", None) or {})
                branch = extra.pop("default_branch", "main")
                path = self._root / owner / f"{name}.git"
                repo = self._add_repo(owner, name, path, default_branch=branch, installation_id=installation_id,
                                      **extra)
                if branch not in templates:
                    templates[branch] = self._bare_template(Path(scratch) / branch.replace("/", "_"), branch)
                self._copy_bare(templates[branch], path)
                self._write_initial_commit(path, branch, {k: v for k, v in content.items() if v is not None},
                                           "Initial commit", OCTOCAT)
                self._repos[repo.full_name.lower()] = repo
                names.append(repo.full_name)
        return names

    def archive_repo(self, full_name: str, *, archived: bool = True) -> None:
        """Archive a repository (or unarchive it, `archived=False`): then, as on GitHub, REST writes to it answer
        403 "Repository was archived so is read-only." and pushes are refused; reads and clones still work."""
        with self._lock:
            self._repo(full_name).archived = archived

    def _add_repo(self, owner: str, name: str, path: Path, *, default_branch: str = "main", private: bool = False,
                  description: str | None = None, installation_id: int | None = None, topics: Sequence[str] = (),
                  language: str | None = None, archived: bool = False) -> _Repo:
        """A new repository's record (not yet listed in `_repos`; its bare repository is the caller's to make)."""
        full_name = f"{owner}/{name}"
        if full_name.lower() in self._repos or path.exists():
            raise ValueError(f"{full_name} exists")
        if owner not in self._users:
            self.register_user(owner, "Organization")
        return _Repo(self._new_id(), owner, name, path, default_branch, private,
                     installation_id or self.installation_id, description, iso(), topics=list(topics),
                     language=language, archived=archived)

    def commit_files(self, repo: str, branch: str, files: Mapping[str, str | bytes | None], message: str,
                     author: str | tuple[str, str] = "Octo Cat <octocat@github.com>") -> str:
        """A human's commit on `branch` (made from the default branch if new); None deletes a file."""
        r = self._repo(repo)
        with self._lock:
            if self._branch_sha(r, branch) is None:
                base = self._branch_sha(r, r.default_branch)
                self._git(r, "update-ref", f"refs/heads/{branch}", base or ZERO)
            person = split_person(author)
            return self._commit(r, branch, files, message, person, person)

    def create_issue(self, repo: str, title: str, body: str | None = "", user: str = "alice",
                     labels: list[str] | None = None) -> int:
        """An open issue; returns its number (shared with pull requests, as on GitHub)."""
        r = self._repo(repo)
        with self._lock:
            number = self._new_issue(r, title, body, user, pull=False, via_app=False)["number"]
            for label in labels or []:
                self._add_label(r, number, label)
            return number

    def edit_issue(self, repo: str, number: int, *, title: str | None = None, body: str | None = None) -> None:
        """Change an issue's title or body, as its author editing it on GitHub would."""
        r = self._repo(repo)
        with self._lock:
            issue = r.issues[number]
            issue.update({k: v for k, v in (("title", title), ("body", body)) if v is not None})
            issue["updated_at"] = iso()

    def add_label(self, repo: str, number: int, label: str) -> dict[str, Any]:
        """Put a label on an issue or pull request (creating the label); returns the label."""
        r = self._repo(repo)
        with self._lock:
            return self._add_label(r, number, label)

    def add_comment(self, repo: str, number: int, body: str, user: str = "alice") -> int:
        """A comment on an issue or pull request; returns its id."""
        r = self._repo(repo)
        with self._lock:
            if number not in r.issues:
                raise KeyError(f"{repo}#{number} does not exist")
            return self._new_comment(r, number, body, user, via_app=False)["id"]

    def add_review(self, repo: str, pr: int, user: str, state: str = "COMMENTED", body: str = "",
                   comments: list[dict[str, Any]] | None = None) -> int:
        """A submitted review on a pull request with line comments `{path, line, body}` (or
        `{in_reply_to, body}` to answer a thread); returns the review id."""
        r = self._repo(repo)
        with self._lock:
            pull = r.pulls.get(pr)
            if pull is None:
                raise KeyError(f"{repo}#{pr} is not a pull request")
            self._refresh_head(r, pull)
            review = self._new_review(r, pr, user, _REVIEW_STATES[state.upper()], body, pull["head_sha"])
            for comment in comments or []:
                if comment.get("in_reply_to"):
                    self._new_review_comment(r, pr, review["id"], user, comment["body"],
                                             in_reply_to=int(comment["in_reply_to"]))
                else:
                    self._new_review_comment(r, pr, review["id"], user, comment["body"], path=comment["path"],
                                             line=int(comment["line"]))
            return review["id"]

    def open_pull(self, repo: str, head: str, base: str, title: str, user: str = "alice", body: str = "") -> int:
        """Open a pull request from `head` as a person (scripting, no API call); returns its number."""
        r = self._repo(repo)
        with self._lock:
            head_sha, base_sha = self._branch_sha(r, head), self._branch_sha(r, base)
            if head_sha is None or base_sha is None:
                raise ValueError(f"no branch {head!r} or {base!r} in {repo}")
            issue = self._new_issue(r, title, body, user, pull=True, via_app=False)
            self._new_pull(r, issue["number"], head, base, head_sha, base_sha, draft=False)
            return issue["number"]

    def set_pull_state(self, repo: str, number: int, state: str, *, user: str | None = None) -> None:
        """Close (`closed`), reopen (`open`) or merge (`merged`, by `user`; no merge commit is made) a pull
        request."""
        r = self._repo(repo)
        with self._lock:
            pull, issue, now = r.pulls[number], r.issues[number], iso()
            pull["state"] = issue["state"] = "open" if state == "open" else "closed"
            pull["closed_at"] = issue["closed_at"] = None if state == "open" else now
            pull["merged_at"] = now if state == "merged" else None
            pull["merged_by"] = user if state == "merged" else None
            pull["merge_commit_sha"] = None
            pull["updated_at"] = issue["updated_at"] = now

    def merge_pull(self, repo: str, number: int, user: str = "alice", *, method: str = "merge") -> str:
        """Merge an open pull request as `user` would on GitHub's page: a real merge (`merge`, or a `squash`
        or `rebase` made as one commit) on its base branch, recorded with `merged_at`, `merged_by` and
        `merge_commit_sha`. Returns the new commit's SHA; ValueError when it is not open or conflicts."""
        r = self._repo(repo)
        with self._lock:
            pull = r.pulls.get(number)
            if pull is None or r.issues[number]["state"] != "open":
                raise ValueError(f"{repo}#{number} is not an open pull request")
            self._refresh_head(r, pull)
            sha = self._merge(r, pull, by=user, method=method)
            if sha is None:
                raise ValueError(f"{repo}#{number} does not merge cleanly")
            return sha

    # ----------------------------------------------------------------------------------------- making records

    def _new_issue(self, repo: _Repo, title: str, body: str | None, user: str, *, pull: bool,
                   via_app: bool) -> dict[str, Any]:
        """An open issue, or the issue half of a pull request (`pull`, with `_new_pull` for the other half)."""
        number, now = self._new_number(repo), iso()
        repo.issues[number] = {"number": number, "id": self._new_id(), "title": title, "body": body, "user": user,
                               "labels": [], "state": "open", "state_reason": None, "created_at": now,
                               "updated_at": now, "closed_at": None, "pull": pull, "via_app": via_app}
        return repo.issues[number]

    def _new_pull(self, repo: _Repo, number: int, head: str, base: str, head_sha: str, base_sha: str, *,
                  draft: bool) -> dict[str, Any]:
        repo.pulls[number] = {"number": number, "id": self._new_id(), "head": head, "base": base,
                              "head_sha": head_sha, "base_sha": base_sha, "draft": draft, "merged_at": None,
                              "merged_by": None, "merge_commit_sha": None, "reviewers": [], "state": "open"}
        return repo.pulls[number]

    def _merge(self, repo: _Repo, pull: dict[str, Any], *, by: str, method: str = "merge",
               title: str | None = None, message: str | None = None) -> str | None:
        """Merge `pull` (its head refreshed) into its base as `by` (the App's bot, or a person, with GitHub as
        committer) and close it as merged; the new commit's SHA, or None (nothing changed) on a conflict."""
        number, issue = pull["number"], repo.issues[pull["number"]]
        base_sha = self._branch_sha(repo, pull["base"]) or pull["base_sha"]
        merged = self._git(repo, "merge-tree", "--write-tree", base_sha, pull["head_sha"], check=False)
        if merged.returncode != 0:
            return None
        tree = merged.stdout.decode().split()[0]
        title = title or (f"{issue['title']} (#{number})" if method == "squash" else
                          f"Merge pull request #{number} from {repo.owner}/{pull['head']}")
        text = f"{title}\n\n{message}" if message else title
        parents = ["-p", base_sha] + (["-p", pull["head_sha"]] if method == "merge" else [])
        email = self.bot_email if by == self.bot_login else f"{self._register(by)}+{by}@users.noreply.github.com"
        env = {"GIT_AUTHOR_NAME": by, "GIT_AUTHOR_EMAIL": email,
               "GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com"}
        sha = self._out(repo, "commit-tree", tree, *parents, "-F", "-", input=text.encode(), env=env)
        self._git(repo, "update-ref", f"refs/heads/{pull['base']}", sha, base_sha)
        now = iso()
        pull["state"] = issue["state"] = "closed"
        pull["merged_at"] = pull["closed_at"] = issue["closed_at"] = now
        pull["base_sha"], pull["updated_at"], issue["updated_at"] = base_sha, now, now
        pull["merged_by"], pull["merge_commit_sha"] = by, sha
        return sha

    def _add_label(self, repo: _Repo, number: int, name: str) -> dict[str, Any]:
        label = repo.labels.get(name.lower())
        if label is None:
            lid = self._new_id()
            label = {"id": lid, "node_id": node_id("Label", lid), "url": "", "name": name, "description": None,
                     "color": "ededed", "default": False}
            repo.labels[name.lower()] = label
        issue = repo.issues[number]
        if label["name"] not in issue["labels"]:
            issue["labels"].append(label["name"])
            issue["updated_at"] = iso()
        return {**label, "url": f"{self.base_url}/repos/{repo.full_name}/labels/{quote(label['name'])}"}

    def _new_comment(self, repo: _Repo, number: int, body: str, user: str, *, via_app: bool) -> dict[str, Any]:
        now, cid = iso(), self._new_id()
        comment = {"id": cid, "repo": repo.full_name, "number": number, "body": body, "user": user,
                   "created_at": now, "updated_at": now, "via_app": via_app}
        self._comments[cid] = comment
        repo.issues[number]["updated_at"] = now
        return comment

    def _new_review(self, repo: _Repo, pr: int, user: str, state: str, body: str, commit: str) -> dict[str, Any]:
        rid = self._new_id()
        review = {"id": rid, "repo": repo.full_name, "pr": pr, "user": user, "state": state, "body": body,
                  "commit_id": commit, "submitted_at": iso()}
        self._reviews[rid] = review
        return review

    def _new_review_comment(self, repo: _Repo, pr: int, review_id: int, user: str, body: str, *,
                            path: str | None = None, line: int | None = None,
                            in_reply_to: int | None = None) -> dict[str, Any]:
        pull = repo.pulls[pr]
        cid, now = self._new_id(), iso()
        if in_reply_to is not None:
            parent = self._review_comments[in_reply_to]
            root = parent["in_reply_to_id"] or parent["id"]
            path, line, thread = parent["path"], parent["line"], parent["thread"]
        else:
            root, thread = None, f"PRRT_kwDO{cid}"
            self._threads[thread] = {"id": thread, "repo": repo.full_name, "pr": pr, "resolved": False,
                                     "comments": [], "path": path, "line": line}
        comment = {"id": cid, "repo": repo.full_name, "pr": pr, "review_id": review_id, "user": user, "body": body,
                   "path": path, "line": line, "in_reply_to_id": root, "thread": thread,
                   "commit_id": pull["head_sha"], "diff_hunk": self._hunk(repo, pull, path or "", line or 1),
                   "created_at": now, "updated_at": now}
        self._review_comments[cid] = comment
        self._threads[thread]["comments"].append(cid)
        return comment

    def _subject(self, repo: _Repo, number: int | None, comment_id: int | None,
                 review_comment_id: int | None) -> tuple[str, str, int]:
        if comment_id is not None:
            return ("comment", repo.full_name, comment_id)
        if review_comment_id is not None:
            return ("review_comment", repo.full_name, review_comment_id)
        if number is None:
            raise ValueError("name an issue number, comment_id or review_comment_id")
        return ("issue", repo.full_name, number)

    def _refresh_head(self, repo: _Repo, pull: dict[str, Any]) -> None:
        """Pull requests follow their branches, as on GitHub (a deleted branch keeps the last head)."""
        sha = self._branch_sha(repo, pull["head"])
        if sha:
            pull["head_sha"] = sha
        if pull["state"] == "open":
            pull["base_sha"] = self._branch_sha(repo, pull["base"]) or pull["base_sha"]
