"""The end-to-end world shared by the issue and review tests: a real `honk serve`, the local GitHub (REST and
git over HTTP) and the scripted model. Registered as a pytest plugin in conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.github import FakeGitHub
from tests.fakes.messages_api import FakeMessagesAPI, bash, edit, end, reply, thinking, verdict
from tests.support import SECRET, HonkProcess, app_private_key, free_port, honk_env, wait_for

REPO = "acme/widgets"
FILES = {
    "widgets.py": "def spin():\n    return 'backwards'\n",
    "README.md": "# Widgets\n",
    ".github/honk.yml": "test: grep -q forwards widgets.py\n",
}
FIX = (reply(thinking("Read the code first."), bash("cat widgets.py")),
       reply(edit("str_replace", "widgets.py", old_str="backwards", new_str="forwards")),
       end("Make widgets spin forwards\n\nspin() returned 'backwards'; it now returns 'forwards'."))


@pytest.fixture(scope="module")
def app_key() -> str:
    return app_private_key()


@dataclass
class World:
    github: FakeGitHub
    model: FakeMessagesAPI
    url: str
    tmp: Path
    env: dict[str, str]
    processes: list[HonkProcess]

    def start(self, *args: str, **env: str) -> HonkProcess:
        process = HonkProcess(list(args), {**self.env, **env}, self.tmp, self.tmp / f"honk{len(self.processes)}.log")
        self.processes.append(process)
        return process

    def label(self, number: int, sender: str = "alice", label: str = "honk") -> httpx.Response:
        return self.github.deliver("issues", self.github.issues_labeled(REPO, number, label, sender))

    def job(self, job_id: int) -> dict[str, Any]:
        return httpx.get(f"{self.url}/api/jobs/{job_id}", timeout=10).json()

    def finished(self, job_id: int, timeout: float = 60) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] in ("succeeded", "failed", "cancelled") else None
        try:
            return wait_for(done, timeout=timeout, interval=0.1, what=f"job {job_id}")
        except AssertionError:
            raise AssertionError(f"job {job_id} did not finish: {self.job(job_id)}\n" + self.logs()) from None

    def logs(self) -> str:
        return "\n".join(process.output()[-4000:] for process in self.processes)

    def bot_comments(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self.github.comments(REPO, number) if c["user"]["login"] == self.github.bot_login]


@pytest.fixture
def world(tmp_path: Path, app_key: str) -> Iterator[World]:
    github = FakeGitHub(app_id=4242, private_key_pem=app_key, permissions={"alice": "write", "bob": "read"},
                        root=tmp_path / "github")
    github.create_repo(REPO, FILES)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The judge approves unless a test scripts it otherwise (`world.model.script_judge`).
    with github.serve() as github_url, FakeMessagesAPI(judge_default=verdict("approve")) as model:
        github.webhook_target(f"{url}/api/github/webhooks", SECRET)
        env = honk_env(tmp_path, GITHUB_APP_ID="4242", GITHUB_PRIVATE_KEY=app_key.replace("\n", "\\n"),
                       GITHUB_API_URL=github_url, HONK_DATABASE_URL=f"sqlite:///{tmp_path / 'honk.db'}",
                       HONK_POLL_SECONDS="0.1", HONK_RETRY_BASE_SECONDS="0.5", **model.env())
        world = World(github, model, url, tmp_path, env, [])
        try:
            yield world
        finally:
            for process in world.processes:
                process.stop()
    github.close()


def said(body: dict[str, Any], index: int = -1) -> str:
    """The text of one message of a request (the last by default): its text blocks and tool results."""
    content = body["messages"][index]["content"]
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if block.get("type") == "text":
            parts.append(block["text"])
        elif block.get("type") == "tool_result":
            inner = block.get("content", "")
            parts.append(inner if isinstance(inner, str) else "".join(b.get("text", "") for b in inner))
    return "\n".join(parts)


def serve(world: World, **env: str) -> HonkProcess:
    honk = world.start("serve", "--port", world.url.rsplit(":", 1)[1], **env)
    honk.wait_http(f"{world.url}/healthz")
    return honk
