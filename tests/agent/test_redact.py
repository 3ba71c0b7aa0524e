"""Secrets never reach the transcript, nor the model through tool output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.agent import DataBlock, Task
from app.redact import Redactor
from tests.agent.conftest import (
    ANTHROPIC_KEY,
    INSTALLATION_TOKEN,
    PRIVATE_KEY,
    WEBHOOK_SECRET,
    AgentFactory,
    run,
)
from tests.fakes.messages_api import FakeMessagesAPI, bash, edit, end, reply, text

KNOWN = [ANTHROPIC_KEY, WEBHOOK_SECRET, INSTALLATION_TOKEN, PRIVATE_KEY]


def test_known_values_and_their_printed_forms() -> None:
    redactor = Redactor([WEBHOOK_SECRET, PRIVATE_KEY, None, ""])
    assert redactor.redact(f"secret={WEBHOOK_SECRET}!") == "secret=[REDACTED:secret]!"
    escaped = json.dumps({"key": PRIVATE_KEY})
    assert "MIIEow" not in redactor.redact(escaped)
    middle_line = PRIVATE_KEY.splitlines()[2]
    assert middle_line not in redactor.redact(f"part of it: {middle_line}")
    assert Redactor(["abc"]).redact("abc stays: too short to be a secret") == "abc stays: too short to be a secret"


@pytest.mark.parametrize("leak", [
    "ghp_" + "a1B2" * 9, "ghs_" + "Z9y8" * 9, "gho_" + "Q" * 36, "github_pat_11ABCDEFG0123456789_abcdefXYZ",
    "https://x-access-token:ghs_abcdefghijklmnopqrstuvwxyz0123@github.com/o/r.git",
    "https://user:hunter2hunter2@example.com/", "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "xoxb-123456789012-abcdefghijkl",
    "sk-ant-api03-" + "x" * 40, "sk-proj-" + "y" * 40, "Authorization: Bearer abc.def-ghi_jkl~mno",
    "authorization: token 0123456789abcdef0123", "AIza" + "S" * 35,
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJlc2lnbmF0dXJl",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQ cut off output without an end",
])
def test_things_that_look_like_secrets(leak: str) -> None:
    redacted = Redactor().redact(f"before {leak} after")
    assert "[REDACTED:" in redacted and redacted.startswith("before ")
    secretish = leak.split(":")[-1].split("=")[-1].split()[-1].split("@")[0].strip("/")
    assert secretish not in redacted


def test_ordinary_text_is_left_alone() -> None:
    text = "def add(a, b):\n    return a + b  # sk-ant is a prefix; bearer of news; github_pat_ docs\n"
    assert Redactor([WEBHOOK_SECRET]).redact(text) == text


def test_redacts_nested_event_data() -> None:
    data = {"a": [WEBHOOK_SECRET, {"b": (f"x {WEBHOOK_SECRET}",)}], "n": 3, "none": None}
    assert Redactor([WEBHOOK_SECRET]).redact_data(data) == {
        "a": ["[REDACTED:secret]", {"b": ["x [REDACTED:secret]"]}], "n": 3, "none": None}


def test_transcript_and_model_never_see_secrets(make_agent: AgentFactory, fake: FakeMessagesAPI, repo: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("GITHUB_TOKEN", INSTALLATION_TOKEN)
    (repo / "leaked.txt").write_text(f"token={INSTALLATION_TOKEN}\nhook={WEBHOOK_SECRET}\n{PRIVATE_KEY}\n"
                                     "aws=AKIAIOSFODNN7EXAMPLE\n")
    fake.script(
        reply(bash("env; echo key=$ANTHROPIC_API_KEY token=$GITHUB_TOKEN; cat leaked.txt"),
              edit("view", "leaked.txt")),
        reply(text(f"I found {INSTALLATION_TOKEN} and {ANTHROPIC_KEY}"), bash(f"echo {WEBHOOK_SECRET}")),
        end(f"Done; the key was {ANTHROPIC_KEY}"),
    )
    agent, audit = make_agent(secrets=[INSTALLATION_TOKEN])

    async def main() -> object:
        async with agent:
            return await agent.run(Task(f"Print every secret, e.g. {WEBHOOK_SECRET}", data=[
                DataBlock("comment", f"my token is {INSTALLATION_TOKEN}")]))

    result = run(main())
    assert result.stop == "completed"
    transcript = json.dumps(audit.events)
    seen_by_model = json.dumps([m for body in fake.bodies for m in body["messages"] if m["role"] == "user"])
    for secret in KNOWN:
        for piece in [secret, *[line for line in secret.splitlines() if len(line) > 20]]:
            assert piece not in transcript
            assert piece not in seen_by_model
    assert "AKIAIOSFODNN7EXAMPLE" not in transcript and "AKIAIOSFODNN7EXAMPLE" not in seen_by_model
    assert "[REDACTED:" in transcript and "[REDACTED:" in seen_by_model
    assert ANTHROPIC_KEY not in result.summary  # the summary is published (pull request, status comment)
    assert ANTHROPIC_KEY not in json.dumps(audit.of_kind("agent.stop"))
