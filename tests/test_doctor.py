"""`honk doctor` (app/doctor.py): against a local GitHub, a scripted Anthropic API, SQLite and the real
bubblewrap, it passes when all is well and names what to do when something is not."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app import doctor
from app.queue.db import Database
from app.settings import Settings
from tests.fakes.github import FakeGitHub
from tests.fakes.messages_api import FakeMessagesAPI, end, error
from tests.support import ROOT, SECRET, app_private_key, free_port, honk_env

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


@pytest.fixture(scope="module")
def app_key() -> str:
    return app_private_key()


@pytest.fixture
def github(app_key: str) -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub(app_id=4242, private_key_pem=app_key)
    with fake.serve() as url:
        yield fake, url
    fake.close()


@pytest.fixture
def anthropic_api() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI() as fake:
        yield fake


@pytest.fixture
def good_env(tmp_path: Path, github: tuple[FakeGitHub, str], anthropic_api: FakeMessagesAPI,
             app_key: str) -> dict[str, str]:
    """Everything right: the App's key and id, a secret, a migrated SQLite database, the Anthropic fake."""
    data = tmp_path / "data"
    database = Database(f"sqlite:///{data / 'honk.db'}")
    database.migrate()
    database.dispose()
    anthropic_api.script(end("pong"))
    return {"GITHUB_APP_ID": "4242", "GITHUB_PRIVATE_KEY": app_key.replace("\n", "\\n"),
            "GITHUB_API_URL": github[1], "GITHUB_WEBHOOK_SECRET": SECRET, "HONK_DATA_DIR": str(data),
            **anthropic_api.env()}


@pytest.fixture
def run_doctor(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
               ) -> Callable[[dict[str, str]], tuple[int, list[str]]]:
    """Run the doctor in-process with exactly this environment (make_settings has cleared Honk's variables
    and moved into an empty directory, so no .env applies)."""

    def run(env: dict[str, str]) -> tuple[int, list[str]]:
        for name, val in env.items():
            monkeypatch.setenv(name, val)
        out = io.StringIO()
        code = doctor.main(out)
        return code, out.getvalue().splitlines()

    return run


def line(lines: list[str], name: str) -> str:
    found = [text for text in lines if text[2:].startswith(f"{name}:")]
    assert len(found) == 1, f"no single {name!r} line in:\n" + "\n".join(lines)
    return found[0]


def failing(lines: list[str], name: str) -> str:
    text = line(lines, name)
    assert text.startswith("✗ "), text
    assert "→ " in text, f"the failing line says what to do: {text}"
    return text


@needs_bwrap
def test_all_good_passes_every_check(good_env: dict[str, str], anthropic_api: FakeMessagesAPI,
                                     run_doctor: Callable[[dict[str, str]], tuple[int, list[str]]]) -> None:
    code, lines = run_doctor(good_env)
    assert code == 0, "\n".join(lines)
    for name in ("settings", "GitHub App", "webhook secret", "database", "migrations", "sandbox", "setup network",
                 "git", "disk space", "Anthropic API"):
        assert line(lines, name).startswith("✓ "), line(lines, name)
    assert "honk-test" in line(lines, "GitHub App")  # the App's slug, from GET /app
    assert lines[-1].startswith("All 10 checks passed")
    # One token, and no sampling parameters.
    assert anthropic_api.bodies == [{"model": "claude-opus-5-5", "max_tokens": 1,
                                     "messages": [{"role": "user", "content": "ping"}]}]


def test_a_key_that_is_not_the_apps_fails_and_says_which_variables(
        good_env: dict[str, str], run_doctor: Callable[[dict[str, str]], tuple[int, list[str]]]) -> None:
    code, lines = run_doctor({**good_env, "GITHUB_PRIVATE_KEY": app_private_key().replace("\n", "\\n")})
    assert code == 1
    text = failing(lines, "GitHub App")
    assert "401" in text and "GITHUB_PRIVATE_KEY" in text and "GITHUB_APP_ID" in text
    assert line(lines, "webhook secret").startswith("✓ ")  # every other check still ran


def test_no_app_points_at_the_setup_page(good_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                         run_doctor: Callable[[dict[str, str]], tuple[int, list[str]]]) -> None:
    monkeypatch.delenv("PORT", raising=False)
    no_app = {k: v for k, v in good_env.items() if k not in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY",
                                                               "GITHUB_WEBHOOK_SECRET")}
    code, lines = run_doctor(no_app)
    assert code == 1
    text = failing(lines, "GitHub App")
    assert "no GitHub App yet" in text and "open http://127.0.0.1:3000/setup " in text
    assert '"First-run setup: open …"' in text  # from elsewhere, the server's log has the one-time code
    assert "setup page" in failing(lines, "webhook secret")  # registering sets the secret too


def test_no_app_points_at_the_public_setup_page(good_env: dict[str, str],
                                                run_doctor: Callable[[dict[str, str]], tuple[int, list[str]]]) -> None:
    no_app = {k: v for k, v in good_env.items() if k not in ("GITHUB_APP_ID", "GITHUB_PRIVATE_KEY")}
    code, lines = run_doctor({**no_app, "HONK_PUBLIC_URL": "https://honk.example.org/"})
    assert code == 1
    assert "open https://honk.example.org/setup " in failing(lines, "GitHub App")


def test_an_app_without_its_key_says_to_generate_one(
        good_env: dict[str, str], run_doctor: Callable[[dict[str, str]], tuple[int, list[str]]]) -> None:
    code, lines = run_doctor({k: v for k, v in good_env.items() if k != "GITHUB_PRIVATE_KEY"})
    assert code == 1
    text = failing(lines, "GitHub App")
    assert "generate a private key" in text and "/setup" not in text


def test_no_webhook_secret_fails(good_env: dict[str, str],
                                 run_doctor: Callable[[dict[str, str]], tuple[int, list[str]]]) -> None:
    code, lines = run_doctor({**good_env, "GITHUB_WEBHOOK_SECRET": ""})
    assert code == 1
    assert "set GITHUB_WEBHOOK_SECRET" in failing(lines, "webhook secret")
    assert lines[-1].startswith("1 of 10 checks failed: webhook secret")


def test_unreachable_anthropic_api_fails(good_env: dict[str, str],
                                         run_doctor: Callable[[dict[str, str]], tuple[int, list[str]]]) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    code, lines = run_doctor({**good_env, "ANTHROPIC_BASE_URL": nowhere})
    assert code == 1
    text = failing(lines, "Anthropic API")
    assert f"cannot reach {nowhere}" in text and "ANTHROPIC_BASE_URL" in text


def test_a_refused_anthropic_key_fails(good_env: dict[str, str],
                                       run_doctor: Callable[[dict[str, str]], tuple[int, list[str]]]) -> None:
    with FakeMessagesAPI(error(401, "authentication_error", "invalid x-api-key"),
                         error(401, "authentication_error", "invalid x-api-key")) as refusing:
        code, lines = run_doctor({**good_env, **refusing.env()})
        assert len(refusing.bodies) == 1  # max_retries=0: a doctor asks once
    assert code == 1
    text = failing(lines, "Anthropic API")
    assert "invalid x-api-key" in text and "check ANTHROPIC_API_KEY" in text


def test_a_database_without_migrations_fails(good_env: dict[str, str], tmp_path: Path,
                                             run_doctor: Callable[[dict[str, str]], tuple[int, list[str]]]) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    code, lines = run_doctor({**good_env, "HONK_DATABASE_URL": f"sqlite:///{empty}"})
    assert code == 1
    assert line(lines, "database").startswith("✓ ")
    assert "start honk serve" in failing(lines, "migrations")


def test_a_missing_database_is_reported_not_created(
        good_env: dict[str, str], tmp_path: Path,
        run_doctor: Callable[[dict[str, str]], tuple[int, list[str]]]) -> None:
    missing = tmp_path / "nowhere" / "honk.db"
    code, lines = run_doctor({**good_env, "HONK_DATABASE_URL": f"sqlite:///{missing}"})
    assert code == 1
    assert "start honk serve" in failing(lines, "database")
    assert not missing.exists() and not missing.parent.exists()


def test_a_bad_setting_is_one_line_not_a_traceback(
        good_env: dict[str, str], run_doctor: Callable[[dict[str, str]], tuple[int, list[str]]]) -> None:
    code, lines = run_doctor({**good_env, "HONK_WORKER_CONCURRENCY": "lots"})
    assert code == 1
    assert "HONK_WORKER_CONCURRENCY" in failing(lines, "settings")


def doctor_process(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = honk_env(tmp_path, **env)
    full["PYTHONPATH"] = str(ROOT) + os.pathsep + full.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "app", "doctor"], env=full, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)


@needs_bwrap
def test_honk_doctor_as_a_command(tmp_path: Path, good_env: dict[str, str], anthropic_api: FakeMessagesAPI) -> None:
    good = doctor_process(tmp_path, good_env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count("✓ ") == 10 and "Traceback" not in good.stderr

    bad = doctor_process(tmp_path, {**good_env, "GITHUB_WEBHOOK_SECRET": "",
                                    "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{free_port()}"})
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "✗ webhook secret:" in bad.stdout and "✗ Anthropic API:" in bad.stdout
    assert "Traceback" not in bad.stderr
