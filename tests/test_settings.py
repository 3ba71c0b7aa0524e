"""Settings come from the environment and `.env`; a bad one is one clear line naming the variable."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.process import HonkState
from app.settings import Settings, SettingsError, load_settings
from tests.support import app_private_key, honk_env


def test_defaults_match_the_contract(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.github_api_url == "https://api.github.com"
    assert (settings.honk_model, settings.honk_label, settings.honk_trigger) == ("claude-opus-5-5", "honk", "@honk")
    assert settings.honk_sandbox == "bwrap"
    assert settings.honk_data_dir == Path(".honk")
    assert settings.database_url == f"sqlite:///{tmp_path / '.honk' / 'honk.db'}"
    assert settings.honk_worker_concurrency == 2


def test_environment_and_dotenv_are_read(make_settings: Callable[..., Settings], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("GITHUB_APP_ID=123\nHONK_LABEL=robot\nHONK_TRIGGER=@robot\n")
    monkeypatch.setenv("HONK_LABEL", "from-env")  # the environment wins over .env
    settings = load_settings()
    assert (settings.github_app_id, settings.honk_label, settings.honk_trigger) == (123, "from-env", "@robot")


def test_private_key_inline_with_literal_newlines(make_settings: Callable[..., Settings],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pem = app_private_key()
    monkeypatch.setenv("GITHUB_PRIVATE_KEY", pem.strip().replace("\n", "\\n"))
    key = load_settings().github_private_key
    assert key is not None and key.get_secret_value() == pem.strip()


def test_private_key_from_a_file(make_settings: Callable[..., Settings], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pem = app_private_key()
    (tmp_path / "app.pem").write_text(pem)
    monkeypatch.setenv("GITHUB_PRIVATE_KEY_PATH", str(tmp_path / "app.pem"))
    key = load_settings().github_private_key
    assert key is not None and key.get_secret_value() == pem.strip()


@pytest.mark.parametrize(("name", "value", "says"), [
    ("GITHUB_APP_ID", "twelve", "GITHUB_APP_ID"),
    ("GITHUB_PRIVATE_KEY", "not a key", "GITHUB_PRIVATE_KEY"),
    ("GITHUB_PRIVATE_KEY_PATH", "/nonexistent/app.pem", "GITHUB_PRIVATE_KEY_PATH"),
    ("GITHUB_API_URL", "api.github.com", "GITHUB_API_URL"),
    ("HONK_SANDBOX", "docker", "HONK_SANDBOX"),
    ("HONK_TRIGGER", "honk", "HONK_TRIGGER"),
    ("HONK_DATABASE_URL", "mysql://x", "HONK_DATABASE_URL"),
    ("HONK_WORKER_CONCURRENCY", "0", "HONK_WORKER_CONCURRENCY"),
    ("HONK_WEBHOOK_PROXY_URL", "smee.io/abc", "HONK_WEBHOOK_PROXY_URL: must start with http:// or https://"),
])
def test_a_bad_value_is_one_line_naming_the_variable(make_settings: Callable[..., Settings],
                                                     monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                                     says: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert says in message and "\n" not in message
    if name == "GITHUB_PRIVATE_KEY":
        assert value not in message  # never echo what might be a secret


def test_missing_github_settings_are_listed(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(github_webhook_secret=None)
    assert settings.missing_github() == ["GITHUB_APP_ID", "GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH)",
                                         "GITHUB_WEBHOOK_SECRET"]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("HONK_WORKER_CONCURRENCY", "lots", "HONK_WORKER_CONCURRENCY: Input should be a valid integer, unable to parse "
                                        "string as an integer (got 'lots')"),
    ("HONK_DASHBOARD_TOKEN", "letmein", 'HONK_DASHBOARD_TOKEN: must be at least 24 characters long; make one with: '
                                        'python -c "import secrets; print(secrets.token_urlsafe(32))"'),
])
def test_honk_with_a_bad_setting_prints_one_line_and_exits_2(tmp_path: Path, name: str, value: str,
                                                             message: str) -> None:
    env = honk_env(tmp_path, **{name: value})
    done = subprocess.run([sys.executable, "-m", "app", "serve", "--port", "0"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"honk: invalid setting: {message}"]


def test_a_short_dashboard_token_is_a_settings_error(make_settings: Callable[..., Settings],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HONK_DASHBOARD_TOKEN", "hunter2-hunter2-hunter2")  # 23 characters
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message == ('invalid setting: HONK_DASHBOARD_TOKEN: must be at least 24 characters long; make one with: '
                       'python -c "import secrets; print(secrets.token_urlsafe(32))"')
    assert "hunter2" not in message  # never echo a secret, not even a bad one

    monkeypatch.setenv("HONK_DASHBOARD_TOKEN", "hunter2-hunter2-hunter2!")  # 24: long enough
    token = load_settings().honk_dashboard_token
    assert token is not None and token.get_secret_value() == "hunter2-hunter2-hunter2!"
    monkeypatch.setenv("HONK_DASHBOARD_TOKEN", "")  # a blank line in .env: no token, the loopback rule applies
    assert load_settings().honk_dashboard_token is None


def test_the_data_directory_and_database_are_honks_alone(make_settings: Callable[..., Settings],
                                                         tmp_path: Path) -> None:
    data = tmp_path / "loose"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    state = HonkState.create(make_settings(honk_data_dir=data))
    try:
        state.db.migrate()
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE((data / "honk.db").stat().st_mode) == 0o600
    finally:
        state.db.dispose()
