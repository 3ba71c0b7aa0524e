"""Pipeline benchmark: webhook delivery to opened pull request, with an instant scripted model.

    .venv/bin/python bench/pipeline.py [--commits 50000] [--files 2000] [--keep] [--tmpdir /dev/shm]

Starts the local GitHub (`tests.fakes.github.FakeGitHub`, REST and git over `git http-backend` on loopback),
the scripted Messages API (`tests.fakes.messages_api.FakeMessagesAPI`) and one real `honk serve` subprocess
(SQLite), as the end-to-end tests do. Two repositories live in the fake:
- small: a handful of files;
- large: `--commits` commits over `--files` files in nested packages, written with `git fast-import` and
  repacked with a bitmap index (as GitHub serves them); the time this takes is printed.
Both have `.github/honk.yml` with `test: grep -q forwards widgets.py`.

On each repository two jobs run one after the other, each on its own issue: the first finds no mirror (a full
fetch over HTTP), the second finds a warm one (an incremental fetch, then a local clone). Each is a labelled
issue delivered by `fake.deliver`; the model reads a file, makes one edit and ends. Each job is timed from the
delivery POST to its `pull_request` event, then split with the job's audit events:
- queue: `job.started` - `job.queued`;
- workspace: the `workspace` event's fetch_s + clone_s (mirror fetch; local clone and checkout);
- agent: `agent.stop` duration_s (the tool loop: model calls and sandboxed tools), and its model part, the sum
  of `model.response` duration_s (instant, but over loopback HTTP through the SDK);
- verify: `verify.tests` duration_s; push: `git.pushed` seconds (commit and push);
- GitHub calls and the rest: what is left (intake, authorisation, reactions and status comments, config and
  briefing, finding and opening the pull request, review request, audit writes).
Honk's own time is the total minus the model's part. Targets: under 3 s of Honk's own time for the small
repository; on the large one, the second job's workspace time at most a tenth of the first job's.
Also printed: where "GitHub calls and the rest" goes, the number of requests Honk made to the fake GitHub and
the fake's own time answering them. The workspace figures depend on the disk: a job's checkout creates every file
of the tree, so `--tmpdir /dev/shm` shows them without it. Needs bubblewrap (bwrap) and git. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from tests.e2e import FILES, FIX  # the same small repository and scripted fix as the end-to-end tests
from tests.fakes.github import FakeGitHub
from tests.fakes.messages_api import FakeMessagesAPI
from tests.support import SECRET, HonkProcess, app_private_key, free_port, honk_env

SMALL, LARGE = "acme/widgets", "acme/monolith"
PER_PACKAGE = 50  # files per directory in the large repository
TERMINAL = ("succeeded", "failed", "cancelled")


# ------------------------------------------------------------------------------------- the large repository

def _module(package: int, module: int, revision: int) -> bytes:
    functions = "".join(f"def f{k}(x: int) -> int:\n    return x * {k} + REVISION\n\n\n" for k in range(8))
    return f'"""Package {package}, module {module}."""\n\nREVISION = {revision}\n\n\n{functions}'.encode()


def _git_env(root: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(root), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null", "LC_ALL": "C"}


def grow_history(bare: Path, commits: int, files: int, env: dict[str, str]) -> None:
    """Put `commits` - 1 commits on top of `main` in a bare repository (so it has `commits` in all): one adds
    `files` modules, each of the others changes one of them. Then repack with a bitmap, as a server would."""
    base = subprocess.run(["git", "rev-parse", "refs/heads/main"], cwd=bare, env=env, capture_output=True,
                          check=True, text=True).stdout.strip()
    paths = [b"src/pkg%03d/mod%02d.py" % divmod(i, PER_PACKAGE) for i in range(files)]
    proc = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=bare, env=env,
                            stdin=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        chunks: list[bytes] = []

        def commit(number: int, changes: list[int], start: str | None = None) -> None:
            message = b"Change %d\n" % number
            chunks.append(b"commit refs/heads/main\ncommitter Dev <dev@example.com> %d +0000\ndata %d\n%s"
                          % (1_600_000_000 + number * 60, len(message), message))
            if start:
                chunks.append(b"from %s\n" % start.encode())
            for index in changes:
                data = _module(*divmod(index, PER_PACKAGE), number)
                chunks.append(b"M 100644 inline %s\ndata %d\n%s\n" % (paths[index], len(data), data))
            chunks.append(b"\n")

        commit(1, list(range(files)), start=base)
        for number in range(2, commits):
            commit(number, [number % files])
            if len(chunks) > 4000:
                proc.stdin.write(b"".join(chunks))
                chunks.clear()
        chunks.append(b"done\n")
        proc.stdin.write(b"".join(chunks))
        proc.stdin.close()
        if proc.wait() != 0:
            raise SystemExit(f"git fast-import failed ({proc.returncode})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    subprocess.run(["git", "repack", "-a", "-d", "-q", "--write-bitmap-index"], cwd=bare, env=env, check=True)


# ------------------------------------------------------------------------------------- one job, measured

class Timed:
    """ASGI wrapper round the fake GitHub: when each request arrived and when its answer was sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.spans: list[tuple[float, float, str]] = []  # (start, end, path), wall clock

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.time()

        async def timed_send(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.spans.append((start, time.time(), scope["path"]))

        await self.app(scope, receive, timed_send)


def _is_git(path: str) -> bool:
    return path.endswith(("/info/refs", "/git-upload-pack", "/git-receive-pack"))


@dataclass
class Figures:
    repo: str
    job: str
    total: float  # delivery POST -> pull_request event
    done: float  # delivery POST -> job.succeeded
    queue: float
    fetch: float
    clone: float
    agent: float
    model: float
    verify: float
    push: float
    rest_calls: int  # REST and GraphQL requests to the fake GitHub before the pull request existed
    rest_s: float  # the fake GitHub's own time answering them (request in to answer out)
    git_calls: int  # git smart-HTTP requests (fetch and push)
    git_s: float  # the fake's time answering them (git http-backend: upload-pack, receive-pack)
    before_workspace: float  # job.started -> workspace start: authorisation, 👀, status comment, repo info
    before_agent: float  # workspace ready -> agent.start: sandbox check, config, comments, briefing
    after_push: float  # git.pushed -> pull_request: find, open, request review

    @property
    def workspace(self) -> float:
        return self.fetch + self.clone

    @property
    def other(self) -> float:
        return self.total - self.queue - self.workspace - self.agent - self.verify - self.push

    @property
    def own(self) -> float:
        return self.total - self.model


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["at"].removesuffix("Z")).replace(tzinfo=UTC).timestamp()


def _fail(message: str, honk: HonkProcess) -> NoReturn:
    raise SystemExit(f"{message}\n--- honk log (tail) ---\n{honk.output()[-4000:]}")


def run_job(fake: FakeGitHub, timed: Timed, model: FakeMessagesAPI, honk: HonkProcess, url: str, repo: str,
            label: str, title: str) -> Figures:
    issue = fake.create_issue(repo, title, "They should spin forwards.", user="alice")
    model.script(*FIX)
    payload = fake.issues_labeled(repo, issue, "honk", "alice")
    spans_before = len(timed.spans)
    sent = time.time()
    answer = fake.deliver("issues", payload)
    if answer.status_code != 202:
        _fail(f"delivery answered {answer.status_code}: {answer.text}", honk)
    job_id = answer.json()["job"]
    deadline = time.monotonic() + 600
    while True:
        job = httpx.get(f"{url}/api/jobs/{job_id}", timeout=10).json()
        if job["status"] in TERMINAL:
            break
        if time.monotonic() > deadline:
            _fail(f"job {job_id} did not finish in 600 s", honk)
        time.sleep(0.05)
    if job["status"] != "succeeded" or job.get("outcome") != "pull_request":
        _fail(f"job {job_id} on {repo} ended {job['status']} ({job.get('outcome')}): {job.get('error')}", honk)
    events = job["events"]

    def first(kind: str) -> dict[str, Any]:
        return next(e for e in events if e["kind"] == kind)

    def total_of(kind: str, key: str) -> float:
        return sum(float(e["data"].get(key) or 0) for e in events if e["kind"] == kind)

    workspace = first("workspace")
    fetch, clone = float(workspace["data"]["fetch_s"]), float(workspace["data"]["clone_s"])
    pull_at = _at(first("pull_request"))
    spans = [(end - start, _is_git(path)) for start, end, path in timed.spans[spans_before:] if end <= pull_at]
    rest = [seconds for seconds, is_git in spans if not is_git]
    git_spans = [seconds for seconds, is_git in spans if is_git]
    return Figures(
        repo=repo, job=label, total=pull_at - sent, done=_at(first("job.succeeded")) - sent,
        queue=_at(first("job.started")) - _at(first("job.queued")), fetch=fetch, clone=clone,
        agent=total_of("agent.stop", "duration_s"), model=total_of("model.response", "duration_s"),
        verify=total_of("verify.tests", "duration_s"), push=total_of("git.pushed", "seconds"),
        rest_calls=len(rest), rest_s=sum(rest),
        git_calls=len(git_spans), git_s=sum(git_spans),
        before_workspace=_at(workspace) - fetch - clone - _at(first("job.started")),
        before_agent=_at(first("agent.start")) - _at(workspace),
        after_push=pull_at - _at(first("git.pushed")))


# ------------------------------------------------------------------------------------- report

def print_table(rows: list[Figures], sizes: dict[str, str]) -> None:
    head = (f"{'repo':<28}{'job':<8}{'total':>7}{'queue':>7}{'workspace (fetch/clone)':>25}"
            f"{'agent (model)':>15}{'verify':>8}{'push':>7}{'github+other':>14}{'Honk own':>10}{'done':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.repo + ' ' + sizes[r.repo]:<28}{r.job:<8}{r.total:>7.2f}{r.queue:>7.2f}"
              f"{f'{r.workspace:.2f} ({r.fetch:.2f}/{r.clone:.2f})':>25}"
              f"{f'{r.agent:.2f} ({r.model:.2f})':>15}{r.verify:>8.2f}{r.push:>7.2f}{r.other:>14.2f}"
              f"{r.own:>10.2f}{r.done:>7.2f}")
    print("seconds; total = delivery POST to the pull_request event, done = to job.succeeded (final status comment)")
    print()
    print("where github+other goes (s): before workspace = job.started to the fetch (authorisation, token, 👀, "
          "status comment, repo info);")
    print("workspace->agent = sandbox check, config, issue comments, briefing; push->PR = find, open, request "
          "review; rest = intake and the gaps")
    print("around verify and push. Calls: requests to the fake GitHub before the PR existed, with the fake's own "
          "time answering them.")
    head = (f"{'repo':<16}{'job':<8}{'github+other':>13}{'before ws':>11}{'ws->agent':>11}{'push->PR':>10}"
            f"{'rest':>7}{'REST calls (fake s)':>21}{'git HTTP (fake s)':>19}")
    print(head)
    print("-" * len(head))
    for r in rows:
        rest = r.other - r.before_workspace - r.before_agent - r.after_push
        print(f"{r.repo:<16}{r.job:<8}{r.other:>13.2f}{r.before_workspace:>11.2f}{r.before_agent:>11.2f}"
              f"{r.after_push:>10.2f}{rest:>7.2f}{f'{r.rest_calls} ({r.rest_s:.2f})':>21}"
              f"{f'{r.git_calls} ({r.git_s:.2f})':>19}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=50_000, help="commits in the large repository")
    parser.add_argument("--files", type=int, default=2_000, help="files in the large repository's tree")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (printed at the end)")
    parser.add_argument("--tmpdir", type=Path, default=None,
                        help="where the temporary directory (repositories, Honk's data dir) goes, e.g. /dev/shm to "
                             "take the disk out of the figures; default: the system's temporary directory")
    args = parser.parse_args()
    if shutil.which("bwrap") is None:
        raise SystemExit("bubblewrap (bwrap) is not installed: the agent's sandbox needs it")
    # SIGTERM unwinds like Ctrl-C, so every finally below runs: servers stopped, honk stopped, temp dir gone.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tmp = Path(tempfile.mkdtemp(prefix="honk-bench-pipeline-", dir=args.tmpdir))
    rows: list[Figures] = []
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; SQLite; git "
          f"{subprocess.run(['git', '--version'], capture_output=True, text=True).stdout.split()[-1]}; in {tmp}",
          flush=True)
    try:
        with ExitStack() as stack:
            key = app_private_key()
            fake = FakeGitHub(app_id=4242, private_key_pem=key, permissions={"alice": "write"},
                              root=tmp / "github")
            fake.create_repo(SMALL, FILES)
            bare = fake.create_repo(LARGE, FILES)
            started = time.monotonic()
            grow_history(bare, args.commits, args.files, _git_env(tmp))
            generated = time.monotonic() - started
            env = _git_env(tmp)
            count = subprocess.run(["git", "rev-list", "--count", "main"], cwd=bare, env=env, capture_output=True,
                                   text=True, check=True).stdout.strip()
            tracked = subprocess.run(["git", "ls-tree", "-r", "--name-only", "main"], cwd=bare, env=env,
                                     capture_output=True, text=True, check=True).stdout.count("\n")
            pack = sum(p.stat().st_size for p in (bare / "objects" / "pack").glob("*.pack"))
            print(f"large repository: {count} commits, {tracked} files, {pack / 2**20:.1f} MiB packed; "
                  f"generated in {generated:.1f} s (fast-import + repack)", flush=True)

            timed = Timed(fake.app)
            fake.app = timed
            github_url = stack.enter_context(fake.serve())
            model = stack.enter_context(FakeMessagesAPI())
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            fake.webhook_target(f"{url}/api/github/webhooks", SECRET)
            env = honk_env(tmp, GITHUB_APP_ID="4242", GITHUB_PRIVATE_KEY=key.replace("\n", "\\n"),
                           GITHUB_API_URL=github_url, HONK_DATABASE_URL=f"sqlite:///{tmp / 'honk.db'}",
                           HONK_POLL_SECONDS="0.05", HONK_RETRY_BASE_SECONDS="0.5", HONK_LOG_LEVEL="WARNING",
                           **model.env())
            honk = HonkProcess(["serve", "--port", str(port)], env, tmp, tmp / "honk.log")
            stack.callback(honk.stop)
            honk.wait_http(f"{url}/healthz")

            for repo in (SMALL, LARGE):
                for label, title in (("first", "Widgets spin backwards"), ("second", "Widgets still spin backwards")):
                    rows.append(run_job(fake, timed, model, honk, url, repo, label, title))
                    print(f"  {repo} {label} job: {rows[-1].total:.2f} s to the pull request", flush=True)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    sizes = {SMALL: f"({len(FILES)} files)", LARGE: f"({int(count) // 1000}k commits)"}
    print()
    print_table(rows, sizes)
    print()
    small = [r for r in rows if r.repo == SMALL]
    first, second = (r for r in rows if r.repo == LARGE)
    worst = max(r.own for r in small)
    print(f"small repo Honk-own time: {worst:.2f} s (slower of two jobs: "
          f"{' and '.join(f'{r.own:.2f}' for r in small)}; model part {max(r.model for r in small):.2f} s) "
          f"(target < 3 s: {'met' if worst < 3 else 'MISSED'})")
    ratio = second.workspace / first.workspace
    print(f"large repo second-job workspace / first-job workspace: {second.workspace:.2f} / {first.workspace:.2f}"
          f" = {ratio:.3f} (target <= 0.10: {'met' if ratio <= 0.10 else 'MISSED'})")


if __name__ == "__main__":
    main()
