"""`honk run`: the agent on a local checkout against ANTHROPIC_BASE_URL, with progress and a summary."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from app import cli
from app.agent.local import run_local
from app.settings import Settings
from tests.agent.conftest import ANTHROPIC_KEY, run
from tests.fakes.messages_api import FakeMessagesAPI, bash, edit, end, error, last_tool_result, reply, thinking, verify


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, color_system=None), out


@pytest.fixture
def local_settings(fake: FakeMessagesAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    # As a user would: the SDK finds the endpoint and key in the environment.
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    return settings.model_copy(update={"anthropic_api_key": None, "anthropic_base_url": None})


def test_fixes_a_small_bug(local_settings: Settings, fake: FakeMessagesAPI, repo: Path) -> None:
    fake.script(
        reply(thinking("Look first."), bash("cat calc.py test_calc.py")),
        reply(bash("python3 -c 'from test_calc import test_add; test_add()'")),
        error(529, retry_after=0),
        reply(edit("str_replace", "calc.py", old_str="return a - b", new_str="return a + b")),
        reply(bash("python3 -c 'from test_calc import test_add; test_add(); print(\"passed\")'")),
        end("add() subtracted; it now adds, and test_add passes."),
    )
    shown, out = console()
    code = run(run_local(local_settings, repo, "Fix the failing test", console=shown))
    text = out.getvalue()
    assert code == 0, text
    assert (repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert "$ cat calc.py test_calc.py" in text and "✎ str_replace calc.py" in text
    assert "AssertionError" in text and "passed" in text  # tool results as they came
    assert "retry 1" in text
    assert "add() subtracted; it now adds" in text
    assert "completed · 5 turns · 4 tool calls" in text and "$0." in text
    assert "git diff --stat:" in text and "calc.py | 2 +-" in text
    assert fake.bodies[0]["messages"][0]["content"][0]["text"].startswith("Your task:\nFix the failing test")


def test_reports_a_budget_stop_and_new_files(local_settings: Settings, fake: FakeMessagesAPI, repo: Path) -> None:
    fake.script(*[reply(bash(f"touch new{i}.txt")) for i in range(3)])
    shown, out = console()
    code = run(run_local(local_settings.model_copy(update={"honk_max_turns": 2}), repo, "loop", console=shown))
    text = out.getvalue()
    assert code == 1
    assert "stopped: turns budget reached" in text and "new files: new0.txt, new1.txt" in text


def test_bad_repository_path(local_settings: Settings, tmp_path: Path) -> None:
    shown, out = console()
    assert run(run_local(local_settings, tmp_path / "missing", "x", console=shown)) == 2
    assert "is not a directory" in out.getvalue()


def test_missing_sandbox_is_one_clear_line(local_settings: Settings, repo: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.checkout.sandbox.shutil.which", lambda name: None)
    shown, out = console()
    assert run(run_local(local_settings.model_copy(update={"honk_sandbox": "bwrap"}), repo, "x", console=shown)) == 2
    assert "bubblewrap (bwrap) is not installed" in out.getvalue()


def test_unsandboxed_runs_say_so(local_settings: Settings, fake: FakeMessagesAPI, repo: Path) -> None:
    fake.script(end("nothing to do"))
    shown, out = console()
    assert run(run_local(local_settings.model_copy(update={"honk_sandbox": "none"}), repo, "x", console=shown)) == 0
    assert "WITHOUT a sandbox" in out.getvalue()


def test_missing_api_key_is_reported(local_settings: Settings, repo: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("HOME", str(tmp_path))  # and no SDK profile on disk either
    shown, out = console()
    assert run(run_local(local_settings, repo, "x", console=shown)) == 1
    assert "no Anthropic credentials" in out.getvalue()

    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path / "missing"))  # a profile that cannot be read
    shown, out = console()
    assert run(run_local(local_settings, repo, "x", console=shown)) == 2
    assert "cannot set up the Anthropic client" in out.getvalue()


def test_honk_run_gives_the_model_the_repositorys_verifiers(fake: FakeMessagesAPI, repo: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`honk run` reads the checkout's `.github/honk.yml` like a job does, and `verify` runs what it declares."""
    (repo / ".github").mkdir()
    (repo / ".github/honk.yml").write_text("verify:\n  calc: grep -q 'a + b' calc.py\n")
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("HONK_SANDBOX", "bwrap" if shutil.which("bwrap") else "none")
    fake.script(reply(verify()), reply(edit("str_replace", "calc.py", old_str="a - b", new_str="a + b")),
                reply(verify(["calc"])), end("Fixed add()."))
    assert cli.main(["run", "--repo", str(repo), "Fix add"]) == 0
    first, second = last_tool_result(fake.bodies[1]), last_tool_result(fake.bodies[3])
    assert first.startswith("✗ calc: grep -q 'a + b' calc.py exited 1")
    assert second.startswith("1 verifier passed: calc")
    assert "verifiers calc" in capsys.readouterr().out


def test_honk_run_refuses_a_broken_config(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (repo / ".github").mkdir()
    (repo / ".github/honk.yml").write_text("verify:\n  'unit tests': pytest\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--repo", str(repo), "Fix add"]) == 2
    assert "honk run: `.github/honk.yml`: a verifier name in `verify`" in capsys.readouterr().err
