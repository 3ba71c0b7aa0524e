"""GitHub's Checks API and GitHub Actions' runs, jobs and job logs: the records, their JSON, and the scripting
methods tests use (`add_check_suite`, `add_workflow_run`, and `check_runs` to read what the App reported).

A check run the App creates joins (or opens) the App's check suite for its commit, as on GitHub. A workflow run
is a check suite of the `github-actions` App with one check run per job; each job's log is served as plain
text at a signed URL of the fake's own (`log_url`), which `GET .../actions/jobs/{id}/logs` redirects to.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from tests.fakes.github.shapes import Shapes
from tests.fakes.github.state import _Repo, iso, node_id

CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out")
STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
ACTIONS_APP = "github-actions"


class Checks(Shapes):
    # ------------------------------------------------------------------------------------- scripting

    def add_check_suite(self, repo: str, head_sha: str, conclusion: str | None = "success",
                        runs: Sequence[str | Mapping[str, Any]] = ("build",), *, app: str = ACTIONS_APP) -> int:
        """A check suite of another App (GitHub Actions by default) on `head_sha`, with its check runs: each a
        name (finished with the suite's `conclusion`) or a dict of check-run fields (`name`, `conclusion`,
        `status`, `output`, `details_url`, `external_id`). `conclusion=None` leaves it in progress. Returns
        the suite's id."""
        r = self._repo(repo)
        with self._lock:
            suite = self._new_suite(r, head_sha, app)
            for run in runs:
                fields: dict[str, Any] = {"name": run} if isinstance(run, str) else dict(run)
                fields.setdefault("conclusion", conclusion)
                fields.setdefault("status", "completed" if fields["conclusion"] else "in_progress")
                self._new_check_run(r, suite, fields)
            self._settle_suite(suite)
            return suite["id"]

    def add_workflow_run(self, repo: str, head_sha: str, conclusion: str | None = "failure",
                         jobs: Mapping[str, str | tuple[str, str]] | None = None, *, name: str = "CI",
                         path: str = ".github/workflows/ci.yml", event: str = "pull_request") -> int:
        """A finished GitHub Actions workflow run on `head_sha` (its check suite and one check run per job).
        `jobs` maps each job's name to its log text (the job then ends with the run's `conclusion`) or to
        `(conclusion, log text)`. Returns the run's id."""
        r = self._repo(repo)
        with self._lock:
            suite = self._new_suite(r, head_sha, ACTIONS_APP)
            run_id = self._new_id()
            number = 1 + sum(1 for w in self._workflow_runs.values() if w["repo"] == r.full_name)
            now = iso()
            self._workflow_runs[run_id] = {
                "id": run_id, "repo": r.full_name, "name": name, "path": path, "event": event,
                "head_sha": head_sha, "head_branch": suite["head_branch"], "conclusion": conclusion,
                "status": "completed" if conclusion else "in_progress", "suite_id": suite["id"],
                "run_number": number, "workflow_id": 100000 + sum(map(ord, path)), "created_at": now,
                "updated_at": now}
            for job_name, spec in (jobs or {"build": ""}).items():
                job_conclusion, log = (conclusion, spec) if isinstance(spec, str) else spec
                check = self._new_check_run(r, suite, {
                    "name": job_name, "conclusion": job_conclusion,
                    "status": "completed" if job_conclusion else "in_progress"})
                self._jobs[check["id"]] = {  # on GitHub a job's id is its check run's id
                    "id": check["id"], "repo": r.full_name, "run_id": run_id, "name": job_name,
                    "conclusion": job_conclusion, "status": check["status"], "log": log,
                    "log_sig": secrets.token_urlsafe(16), "head_sha": head_sha, "created_at": now}
                check["details_url"] = f"/{r.full_name}/actions/runs/{run_id}/job/{check['id']}"
            self._settle_suite(suite)
            return run_id

    def check_runs(self, repo: str, sha: str) -> list[dict[str, Any]]:
        """Every check run on the commit, oldest first, as `GET /repos/{repo}/check-runs/{id}` answers."""
        r = self._repo(repo)
        with self._lock:
            return [self._check_run_json(self.base_url, r, c) for c in self._check_runs.values()
                    if c["repo"] == r.full_name and c["head_sha"] == sha]

    def job_log(self, job_id: int) -> str:
        return self._jobs[job_id]["log"]

    # ------------------------------------------------------------------------------------- records

    def _new_suite(self, repo: _Repo, head_sha: str, app: str) -> dict[str, Any]:
        suite_id, now = self._new_id(), iso()
        self._check_suites[suite_id] = {"id": suite_id, "repo": repo.full_name, "head_sha": head_sha,
                                        "head_branch": self._branch_at(repo, head_sha), "app": app,
                                        "status": "queued", "conclusion": None, "created_at": now,
                                        "updated_at": now}
        return self._check_suites[suite_id]

    def _app_suite(self, repo: _Repo, head_sha: str) -> dict[str, Any]:
        """The App's own suite for the commit, opened by its first check run."""
        for suite in self._check_suites.values():
            if suite["repo"] == repo.full_name and suite["head_sha"] == head_sha and suite["app"] == self.slug:
                return suite
        return self._new_suite(repo, head_sha, self.slug)

    def _new_check_run(self, repo: _Repo, suite: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
        run_id, now = self._new_id(), iso()
        run: dict[str, Any] = {"id": run_id, "repo": repo.full_name, "suite_id": suite["id"],
                               "head_sha": suite["head_sha"], "name": fields["name"], "status": "queued",
                               "conclusion": None, "started_at": now, "completed_at": None,
                               "output": {"title": None, "summary": None, "text": None},
                               "details_url": None, "external_id": ""}
        self._check_runs[run_id] = run
        self._apply_check_fields(run, fields)
        return run

    def _apply_check_fields(self, run: dict[str, Any], fields: Mapping[str, Any]) -> None:
        """Set a check run's fields as GitHub does (validated by the route beforehand)."""
        for key in ("name", "details_url", "external_id", "started_at"):
            if key in fields:
                run[key] = fields[key]
        if "output" in fields and fields["output"] is not None:
            run["output"] = {k: fields["output"].get(k) for k in ("title", "summary", "text")}
        if fields.get("status"):
            run["status"] = fields["status"]
        if fields.get("conclusion"):
            run["conclusion"], run["status"] = fields["conclusion"], "completed"  # a conclusion completes it
        if run["status"] == "completed":
            run["completed_at"] = fields.get("completed_at") or run["completed_at"] or iso()
        self._settle_suite(self._check_suites[run["suite_id"]])

    def _settle_suite(self, suite: dict[str, Any]) -> None:
        """A suite is completed when all its runs are, with the worst of their conclusions."""
        runs = [c for c in self._check_runs.values() if c["suite_id"] == suite["id"]]
        suite["updated_at"] = iso()
        if runs and all(c["status"] == "completed" for c in runs):
            order = ("action_required", "cancelled", "timed_out", "failure", "stale", "neutral", "success",
                     "skipped")
            suite["status"] = "completed"
            suite["conclusion"] = min((c["conclusion"] for c in runs), key=order.index)
        elif any(c["status"] != "queued" for c in runs):
            suite["status"], suite["conclusion"] = "in_progress", None
        else:
            suite["status"], suite["conclusion"] = "queued", None

    def _branch_at(self, repo: _Repo, sha: str) -> str | None:
        proc = self._git(repo, "for-each-ref", "--points-at", sha, "--format=%(refname:short)", "refs/heads",
                         check=False)
        names = proc.stdout.decode().split()
        return names[0] if names else None

    def _resolve_sha(self, repo: _Repo, ref: str) -> str | None:
        """A ref (SHA, branch or tag) as a commit SHA; a scripted suite's SHA counts even with no commit."""
        if any(s["repo"] == repo.full_name and s["head_sha"] == ref for s in self._check_suites.values()):
            return ref
        return self._rev(repo, ref)

    # ------------------------------------------------------------------------------------- shapes

    def _checks_app_json(self, b: str, app: str) -> dict[str, Any]:
        if app == self.slug:
            return self._app_json(b)
        data = self._app_json(b) | {"id": 15368, "client_id": "Iv1.05c79e9ad1f6bdfa", "slug": app,
                                    "node_id": node_id("Integration", 15368), "name": "GitHub Actions",
                                    "owner": self._user(b, "github"), "html_url": f"{b}/apps/{app}",
                                    "external_url": "https://help.github.com/en/actions"}
        data["permissions"] = {"actions": "write", "checks": "write", "contents": "write", "metadata": "read"}
        data["events"] = ["check_run", "check_suite", "workflow_run"]
        return data

    def _head_commit(self, repo: _Repo, sha: str) -> dict[str, Any]:
        line = self._git(repo, "log", "-1", "--format=%T%x00%B%x00%cI%x00%an%x00%ae%x00%cn%x00%ce", sha,
                         "--", check=False).stdout.decode()
        parts = line.split("\x00")
        if len(parts) < 7:
            return {"id": sha, "tree_id": sha, "message": "", "timestamp": iso(),
                    "author": {"name": "Alice", "email": "alice@example.com"},
                    "committer": {"name": "Alice", "email": "alice@example.com"}}
        tree, message, when, an, ae, cn, ce = (p.strip() for p in parts[:7])
        return {"id": sha, "tree_id": tree, "message": message, "timestamp": when,
                "author": {"name": an, "email": ae}, "committer": {"name": cn, "email": ce}}

    def _check_pulls(self, b: str, repo: _Repo, sha: str) -> list[dict[str, Any]]:
        api = f"{b}/repos/{repo.full_name}"
        mini = {"id": repo.id, "url": api, "name": repo.name}
        for pull in repo.pulls.values():
            self._refresh_head(repo, pull)  # a pull request's head is its branch's, pushes included
        return [{"url": f"{api}/pulls/{p['number']}", "id": p["id"], "number": p["number"],
                 "head": {"ref": p["head"], "sha": p["head_sha"], "repo": mini},
                 "base": {"ref": p["base"], "sha": p["base_sha"], "repo": mini}}
                for p in repo.pulls.values() if p["head_sha"] == sha and p["state"] == "open"]

    def _check_suite_json(self, b: str, repo: _Repo, suite: dict[str, Any], *,
                          webhook: bool = False) -> dict[str, Any]:
        api = f"{b}/repos/{repo.full_name}"
        runs = [c for c in self._check_runs.values() if c["suite_id"] == suite["id"]]
        data: dict[str, Any] = {
            "id": suite["id"], "node_id": node_id("CheckSuite", suite["id"]), "head_branch": suite["head_branch"],
            "head_sha": suite["head_sha"], "status": suite["status"], "conclusion": suite["conclusion"],
            "url": f"{api}/check-suites/{suite['id']}", "before": None, "after": suite["head_sha"],
            "pull_requests": self._check_pulls(b, repo, suite["head_sha"]),
            "app": self._checks_app_json(b, suite["app"]), "created_at": suite["created_at"],
            "updated_at": suite["updated_at"], "rerequestable": True, "runs_rerequestable": True,
            "latest_check_runs_count": len(runs), "check_runs_url": f"{api}/check-suites/{suite['id']}/check-runs",
            "head_commit": self._head_commit(repo, suite["head_sha"])}
        if not webhook:
            data["repository"] = self._repo_json(b, repo, complete=False)
        return data

    def _check_run_json(self, b: str, repo: _Repo, run: dict[str, Any]) -> dict[str, Any]:
        api, suite = f"{b}/repos/{repo.full_name}", self._check_suites[run["suite_id"]]
        output = run["output"]
        return {"id": run["id"], "head_sha": run["head_sha"], "node_id": node_id("CheckRun", run["id"]),
                "external_id": run["external_id"], "url": f"{api}/check-runs/{run['id']}",
                "html_url": f"{b}/{repo.full_name}/runs/{run['id']}",
                "details_url": (b + run["details_url"] if (run["details_url"] or "").startswith("/")
                                else run["details_url"]),
                "status": run["status"], "conclusion": run["conclusion"], "started_at": run["started_at"],
                "completed_at": run["completed_at"],
                "output": {"title": output["title"], "summary": output["summary"], "text": output["text"],
                           "annotations_count": 0, "annotations_url": f"{api}/check-runs/{run['id']}/annotations"},
                "name": run["name"], "check_suite": {"id": suite["id"]},
                "app": self._checks_app_json(b, suite["app"]),
                "pull_requests": self._check_pulls(b, repo, run["head_sha"])}

    def _job_json(self, b: str, repo: _Repo, job: dict[str, Any]) -> dict[str, Any]:
        api, run = f"{b}/repos/{repo.full_name}", self._workflow_runs[job["run_id"]]
        check = self._check_runs[job["id"]]
        done = job["status"] == "completed"
        steps = [("Set up job", "success"), (f"Run {job['name']}", job["conclusion"]), ("Complete job", "success")]
        return {"id": job["id"], "run_id": run["id"], "run_url": f"{api}/actions/runs/{run['id']}",
                "run_attempt": 1, "node_id": node_id("CheckRun", job["id"]), "head_sha": job["head_sha"],
                "url": f"{api}/actions/jobs/{job['id']}",
                "html_url": f"{b}/{repo.full_name}/actions/runs/{run['id']}/job/{job['id']}",
                "status": job["status"], "conclusion": job["conclusion"], "created_at": job["created_at"],
                "started_at": check["started_at"], "completed_at": check["completed_at"], "name": job["name"],
                "steps": [{"name": name, "status": "completed" if done else "in_progress",
                           "conclusion": conclusion if done else None, "number": i,
                           "started_at": check["started_at"], "completed_at": check["completed_at"]}
                          for i, (name, conclusion) in enumerate(steps, 1)],
                "check_run_url": f"{api}/check-runs/{job['id']}", "labels": ["ubuntu-latest"], "runner_id": 1,
                "runner_name": "GitHub Actions 1", "runner_group_id": 1, "runner_group_name": "GitHub Actions",
                "workflow_name": run["name"], "head_branch": run["head_branch"]}

    def _workflow_run_json(self, b: str, repo: _Repo, run: dict[str, Any]) -> dict[str, Any]:
        api = f"{b}/repos/{repo.full_name}"
        runs = f"{api}/actions/runs/{run['id']}"
        suite = f"{api}/check-suites/{run['suite_id']}"
        sender = self._user(b, "alice")
        return {"id": run["id"], "name": run["name"], "node_id": node_id("WorkflowRun", run["id"]),
                "head_branch": run["head_branch"], "head_sha": run["head_sha"], "path": run["path"],
                "display_title": run["name"], "run_number": run["run_number"], "event": run["event"],
                "status": run["status"], "conclusion": run["conclusion"], "workflow_id": run["workflow_id"],
                "check_suite_id": run["suite_id"], "check_suite_node_id": node_id("CheckSuite", run["suite_id"]),
                "url": runs, "html_url": f"{b}/{repo.full_name}/actions/runs/{run['id']}",
                "pull_requests": self._check_pulls(b, repo, run["head_sha"]), "created_at": run["created_at"],
                "updated_at": run["updated_at"], "actor": sender, "triggering_actor": sender, "run_attempt": 1,
                "referenced_workflows": [], "run_started_at": run["created_at"], "jobs_url": f"{runs}/jobs",
                "logs_url": f"{runs}/logs", "check_suite_url": suite, "artifacts_url": f"{runs}/artifacts",
                "cancel_url": f"{runs}/cancel", "rerun_url": f"{runs}/rerun", "previous_attempt_url": None,
                "workflow_url": f"{api}/actions/workflows/{run['workflow_id']}",
                "head_commit": self._head_commit(repo, run["head_sha"]),
                "repository": self._repo_json(b, repo, complete=False),
                "head_repository": self._repo_json(b, repo, complete=False)}

    def _workflow_json(self, b: str, repo: _Repo, run: dict[str, Any]) -> dict[str, Any]:
        api = f"{b}/repos/{repo.full_name}"
        return {"id": run["workflow_id"], "node_id": node_id("Workflow", run["workflow_id"]), "name": run["name"],
                "path": run["path"], "state": "active", "created_at": run["created_at"],
                "updated_at": run["created_at"], "url": f"{api}/actions/workflows/{run['workflow_id']}",
                "html_url": f"{b}/{repo.full_name}/blob/{repo.default_branch}/{run['path']}",
                "badge_url": f"{b}/{repo.full_name}/workflows/{run['name']}/badge.svg"}

    def log_url(self, b: str, job: dict[str, Any]) -> str:
        """Where a job's log is: unauthenticated, signed, short-lived (on GitHub, a blob store's URL)."""
        return f"{b}/_blobs/job-logs/{job['id']}?sig={job['log_sig']}"
