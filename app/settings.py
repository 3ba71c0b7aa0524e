"""Honk's settings: one typed object read from the environment and `.env` (README, "Configuration").

Field names are the environment variable names, lower-cased; pydantic-settings matches them
case-insensitively. Anything wrong becomes one `SettingsError` line that names the variable.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.hosts import DEFAULT_ALLOWED_HOSTS, parse_allowlist

MIN_DASHBOARD_TOKEN_LENGTH = 24  # characters of HONK_DASHBOARD_TOKEN; token_urlsafe(32) gives 43


class SettingsError(Exception):
    """A missing or malformed setting, worded for the operator: one line, naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", validate_default=True)

    # GitHub App
    github_app_id: int | None = None
    github_private_key: SecretStr | None = None
    github_private_key_path: Path | None = None
    github_webhook_secret: SecretStr | None = None
    github_api_url: str = "https://api.github.com"

    # Read by the anthropic SDK itself; kept here so Honk can redact them and report what is missing.
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None

    # Ask from Slack (issue #15): the Slack app's credentials, and the GitHub App's OAuth ones for linking users.
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    github_client_id: str | None = None
    github_client_secret: SecretStr | None = None

    # What asks Honk to work
    honk_model: str = "claude-opus-5-5"
    honk_label: str = "honk"
    honk_campaign_label: str = "honk-campaign"  # starts a fleet campaign (CONTRACT.md section 7)
    honk_trigger: str = "@honk"
    honk_branch_prefix: str = "honk/"

    # Where things live
    honk_data_dir: Path = Path(".honk")
    honk_database_url: str | None = None
    honk_public_url: str | None = None
    honk_dashboard_token: SecretStr | None = None
    # A smee.io-style channel (server-sent events) whose deliveries `honk serve`/`honk web` relay to their own
    # webhook route: for a laptop that GitHub cannot reach (app/intake/relay.py).
    honk_webhook_proxy_url: str | None = None

    # Sandbox for the model's commands
    honk_sandbox: Literal["bwrap", "none"] = "bwrap"
    # Hosts the repository's setup commands may reach, beyond the package registries (app.checkout.egress): host
    # names or *.domain patterns, comma- or space-separated. Only the operator sets this, never honk.yml.
    honk_setup_allowed_hosts: str = ""

    # Worker and queue
    honk_worker_concurrency: int = Field(2, ge=1, le=64)
    honk_lease_seconds: float = Field(60.0, gt=0)
    # GitHub's content-creation pacing per installation (app/github/pacing.py): `burst` requests back to back, then
    # one per `interval` seconds. GitHub asks for one second; a GitHub Enterprise Server without those limits, or a
    # benchmark against a local fake, may set less.
    honk_github_content_interval: float = Field(1.0, ge=0)
    honk_github_content_burst: int = Field(20, ge=1)
    honk_github_content_per_hour: int = Field(500, ge=1)  # GitHub's ceiling of content-creating requests an hour
    honk_poll_seconds: float = Field(0.5, gt=0)
    honk_max_attempts: int = Field(5, ge=1)
    honk_retry_base_seconds: float = Field(10.0, ge=0)
    honk_retry_max_seconds: float = Field(600.0, ge=0)
    honk_shutdown_grace_seconds: float = Field(30.0, ge=0)

    # Agent budgets per run (issue #3); a repository's .github/honk.yml may lower or raise them later.
    honk_max_turns: int = Field(80, ge=1)
    honk_max_tokens: int = Field(4_000_000, ge=1)
    honk_max_cost_usd: float = Field(10.0, gt=0)
    honk_max_wall_seconds: float = Field(1800.0, gt=0)
    honk_command_timeout: float = Field(120.0, gt=0)
    honk_tool_style: Literal["anthropic", "custom"] = "anthropic"

    # Feedback loops (issue #12): verifiers, the judge, CI fixes.
    honk_verify_rounds: int = Field(2, ge=0, le=20)
    honk_judge: bool = True  # HONK_JUDGE=off disables it (pydantic reads on/off, true/false, 1/0)
    honk_judge_model: str | None = None  # default: HONK_MODEL
    honk_ci_fix_rounds: int = Field(2, ge=0, le=20)

    # Governance (issue #16): the model's provider and its fallback, spending caps, the audit trail's retention.
    # Bedrock and Vertex read their own usual settings (AWS_REGION and AWS credentials; ANTHROPIC_VERTEX_PROJECT_ID,
    # CLOUD_ML_REGION and Google credentials) through the SDK's clients.
    honk_provider: Literal["anthropic", "bedrock", "vertex"] = "anthropic"
    honk_fallback_provider: Literal["anthropic", "bedrock", "vertex"] | None = None
    honk_fallback_model: str | None = None  # default: HONK_MODEL, under the fallback provider's name for it
    honk_judge_provider: Literal["anthropic", "bedrock", "vertex"] | None = None  # default: HONK_PROVIDER
    honk_policy_file: Path | None = None  # spending caps and allowed models (YAML), the operator's alone
    honk_audit_retention_days: int | None = Field(None, ge=1)  # bulky transcripts purged after; chains kept

    @field_validator("github_private_key", mode="before")
    @classmethod
    def _unescape_newlines(cls, value: object) -> object:
        # Many hosts only take one-line variables, so a literal "\n" stands for a newline.
        if isinstance(value, str):
            value = value.replace("\\n", "\n").strip()
            if value and "-----BEGIN" not in value:
                raise ValueError("is not a PEM private key (it should start with -----BEGIN)")
            return value or None
        return value

    @field_validator("honk_trigger")
    @classmethod
    def _trigger_is_mention(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith("@") or len(value) < 2 or any(c.isspace() for c in value):
            raise ValueError("must be a mention such as @honk")
        return value

    @field_validator("honk_label", "honk_campaign_label")
    @classmethod
    def _label_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @model_validator(mode="after")
    def _labels_differ(self) -> Settings:
        if self.honk_label.casefold() == self.honk_campaign_label.casefold():
            raise ValueError("HONK_LABEL and HONK_CAMPAIGN_LABEL must be different labels: one asks for one pull "
                             "request, the other starts a campaign across repositories")
        return self

    @field_validator("honk_dashboard_token", mode="before")
    @classmethod
    def _dashboard_token_long_enough(cls, value: object) -> object:
        # The token guards transcripts and code from the network: too short and it can be guessed. An empty
        # value is no token (the loopback-only rule applies), as for a blank line in .env. The error never
        # shows the value (_describe leaves out the values of secrets).
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and not text:
            return None
        if isinstance(text, str) and len(text) < MIN_DASHBOARD_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_DASHBOARD_TOKEN_LENGTH} characters long; make one with: "
                             f"python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
        return value

    @field_validator("honk_judge_model")
    @classmethod
    def _judge_model(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @property
    def judge_model(self) -> str:
        return self.honk_judge_model or self.honk_model

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None and self.slack_signing_secret is not None

    @field_validator("github_api_url", "honk_public_url", "honk_webhook_proxy_url", "slack_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("honk_setup_allowed_hosts")
    @classmethod
    def _setup_allowed_hosts(cls, value: str) -> str:
        parse_allowlist(value)  # raises ValueError naming HONK_SETUP_ALLOWED_HOSTS
        return value

    @field_validator("honk_database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db")
        return value or None

    @model_validator(mode="after")
    def _read_key_file(self) -> Settings:
        if self.github_private_key is None and self.github_private_key_path is not None:
            try:
                text = self.github_private_key_path.expanduser().read_text()
            except OSError as exc:
                raise ValueError(f"GITHUB_PRIVATE_KEY_PATH: cannot read {self.github_private_key_path}: "
                                 f"{exc.strerror}") from None
            if "-----BEGIN" not in text:
                raise ValueError(f"GITHUB_PRIVATE_KEY_PATH: {self.github_private_key_path} is not a PEM key")
            self.github_private_key = SecretStr(text.strip())
        return self

    # Derived values

    @cached_property
    def database_url(self) -> str:
        if self.honk_database_url:
            return self.honk_database_url
        return f"sqlite:///{(self.honk_data_dir / 'honk.db').resolve()}"

    @property
    def setup_allowed_hosts(self) -> tuple[str, ...]:
        """Every host name or *.domain pattern the setup step may reach: the registries, then the operator's."""
        return tuple(dict.fromkeys([*DEFAULT_ALLOWED_HOSTS, *parse_allowlist(self.honk_setup_allowed_hosts)]))

    @property
    def webhook_secret(self) -> bytes | None:
        if self.github_webhook_secret is None:
            return None
        return self.github_webhook_secret.get_secret_value().encode() or None

    def prepare_data_dir(self) -> Path:
        """Create HONK_DATA_DIR (mirrors, workspaces, the SQLite database) for Honk's user alone: mode 0700, also
        when it already existed with a looser mode."""
        path = self.honk_data_dir.expanduser()
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)
        return path

    def missing_github(self) -> list[str]:
        """The variables Honk still needs before it can act on GitHub."""
        missing = []
        if self.github_app_id is None:
            missing.append("GITHUB_APP_ID")
        if self.github_private_key is None:
            missing.append("GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH)")
        if self.webhook_secret is None:
            missing.append("GITHUB_WEBHOOK_SECRET")
        return missing

    def secrets(self) -> list[str]:
        """Every secret value Honk holds, for redaction from transcripts and logs."""
        values = [self.github_private_key, self.github_webhook_secret, self.anthropic_api_key,
                  self.honk_dashboard_token, self.slack_bot_token, self.slack_signing_secret,
                  self.github_client_secret]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


def github_web_root(api_url: str) -> str:
    """GitHub's web address for an API root: `https://api.github.com` -> `https://github.com`, GitHub Enterprise
    Server `https://HOST/api/v3` -> `https://HOST`, GHE.com `https://api.SUB.ghe.com` -> `https://SUB.ghe.com`.
    Anything else (a test's local GitHub) serves both at the same root. The App's setup and Slack's linking
    both send people there."""
    api = api_url.rstrip("/")
    parts = urlsplit(api)
    if parts.path.endswith("/api/v3"):
        return api.removesuffix("/api/v3")
    if parts.hostname and parts.hostname.startswith("api.") and parts.path in ("", "/"):
        return f"{parts.scheme}://{parts.netloc.removeprefix('api.')}"
    return api


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning validation errors into one `SettingsError` line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


_SECRETS = {"GITHUB_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET", "ANTHROPIC_API_KEY", "HONK_DASHBOARD_TOKEN",
            "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "GITHUB_CLIENT_SECRET"}  # never shown


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"]).upper() or "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        if message.startswith(("GITHUB_", "HONK_")):
            problems.append(message)  # already names its variable
            continue
        value = error.get("input")
        shown = f" (got {value!r})" if isinstance(value, str | int | float) and name not in _SECRETS else ""
        problems.append(f"{name}: {message}{shown}")
    return "invalid setting: " + "; ".join(problems)
