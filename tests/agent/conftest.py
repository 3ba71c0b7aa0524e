"""Fixtures for the agent tests: settings with known secrets, a scratch repository, the fake API."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import pytest

from app.agent import Agent, Budget, RetryPolicy
from app.audit import MemoryAudit
from app.settings import Settings
from tests.fakes.messages_api import FakeMessagesAPI

T = TypeVar("T")

HAS_BWRAP = shutil.which("bwrap") is not None
# With HONK_REQUIRE_BWRAP=1 (set by .ci/run) a missing bwrap fails these tests: CI never passes by skipping.
needs_bwrap = pytest.mark.skipif(not HAS_BWRAP and os.environ.get("HONK_REQUIRE_BWRAP") != "1",
                                 reason="bubblewrap (bwrap) is not installed; sandbox tests need it (CI installs it)")

# Secret values the transcript and the model must never see.
ANTHROPIC_KEY = "sk-ant-api03-test-key-AbCdEfGhIjKlMnOpQrStUvWxYz"
WEBHOOK_SECRET = "webhook-secret-Zq8Xw7Vu6Ts5"
INSTALLATION_TOKEN = "ghs_InstallationToken0123456789abcdefABCD"
PRIVATE_KEY = ("-----BEGIN RSA PRIVATE KEY-----\n"
               "MIIEowIBAAKCAQEAtestkeymaterialtestkeymaterialtestkeymaterial0123\n"
               "Zm9vYmFyYmF6cXV4dGVzdGtleW1hdGVyaWFsdGVzdGtleW1hdGVyaWFsMDEyMw==\n"
               "-----END RSA PRIVATE KEY-----")
BUGGY_CALC = "def add(a, b):\n    return a - b\n"
CALC_TEST = ("from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, anthropic_api_key=ANTHROPIC_KEY, github_webhook_secret=WEBHOOK_SECRET,
                    github_private_key=PRIVATE_KEY, honk_sandbox="bwrap" if HAS_BWRAP else "none",
                    honk_command_timeout=20)  # type: ignore[call-arg]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small git repository with a bug: add() subtracts."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "calc.py").write_text(BUGGY_CALC)
    (root / "test_calc.py").write_text(CALC_TEST)
    (root / "README.md").write_text("# calc\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "init")
    return root


@pytest.fixture
def fake() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI() as api:
        yield api


AgentFactory = Callable[..., tuple[Agent, MemoryAudit]]


@pytest.fixture
def make_agent(settings: Settings, repo: Path, fake: FakeMessagesAPI) -> Iterator[AgentFactory]:
    """Agents wired to the fake API, with quick retries; their shells are closed after the test."""
    made: list[Agent] = []

    def factory(settings: Settings = settings, budget: Budget | None = None,
                **kwargs: Any) -> tuple[Agent, MemoryAudit]:
        audit = MemoryAudit()
        client = anthropic.AsyncAnthropic(base_url=fake.url, api_key=ANTHROPIC_KEY)
        kwargs.setdefault("retry", RetryPolicy(base_delay=0.01, max_delay=0.05))
        agent = Agent(settings, repo, audit, client=client, budget=budget, **kwargs)
        made.append(agent)
        return agent, audit

    yield factory
    for agent in made:
        agent.shell.kill()  # tests close their agents; this only catches one that failed midway
