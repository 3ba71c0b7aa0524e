"""Where the model runs (CONTRACT sections 5 and 9): Anthropic's API, Amazon Bedrock or Google Vertex AI.

Honk talks to each through the official SDK's own client (`AsyncAnthropic`, `AsyncAnthropicBedrock`,
`AsyncAnthropicVertex`), configured with the provider's usual settings, read from the environment or `.env`:

- anthropic: `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`.
- bedrock: `AWS_REGION` (or `AWS_DEFAULT_REGION`, or the profile's region) and the usual AWS credentials
  (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, `AWS_PROFILE`, an instance or task role),
  or a Bedrock API key in `AWS_BEARER_TOKEN_BEDROCK`; `ANTHROPIC_BEDROCK_BASE_URL` for another endpoint.
- vertex: `ANTHROPIC_VERTEX_PROJECT_ID` (else the credentials' project), `CLOUD_ML_REGION` (`global`, `us-east5`,
  ...) and Google Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, `gcloud auth
  application-default login`, or the metadata server on Google Cloud); `ANTHROPIC_VERTEX_BASE_URL` for another
  endpoint.

`MODEL_IDS` is the one table of what each provider calls each model Honk knows. Everything else in Honk (budgets,
prices, caps, the audit trail) speaks Honk's names; only the request carries the provider's id.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import anthropic
from dotenv import dotenv_values

from app.settings import Settings

Provider = Literal["anthropic", "bedrock", "vertex"]
PROVIDERS: tuple[Provider, ...] = ("anthropic", "bedrock", "vertex")
NAMES: dict[str, str] = {"anthropic": "the Anthropic API", "bedrock": "Amazon Bedrock", "vertex": "Google Vertex AI"}
Client = anthropic.AsyncAnthropic | anthropic.AsyncAnthropicBedrock | anthropic.AsyncAnthropicVertex

# The Messages API version that Bedrock and Vertex take in the request body (they ignore the header).
BODY_VERSIONS = {"bedrock": "bedrock-2023-05-31", "vertex": "vertex-2023-10-16"}
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
ENV_FILE = Path(".env")


class Ids(NamedTuple):
    bedrock: str
    vertex: str


# Honk's name for a model (which is also its id on the Anthropic API) -> its ids on Bedrock and Vertex.
# Bedrock: the global cross-region inference profile (`global.` + Bedrock's model id), which every commercial region
# serves at Anthropic's list price; the newest models take on-demand requests only through a profile. Vertex: from the
# 4.6 generation on the id is the API's; before it, the snapshot date follows an `@`.
MODEL_IDS: dict[str, Ids] = {
    "claude-fable-5-2": Ids("global.anthropic.claude-fable-5-2", "claude-fable-5-2"),
    "claude-mythos-5-2": Ids("global.anthropic.claude-mythos-5-2", "claude-mythos-5-2"),
    "claude-fable-5-1": Ids("global.anthropic.claude-fable-5-1", "claude-fable-5-1"),
    "claude-mythos-5-1": Ids("global.anthropic.claude-mythos-5-1", "claude-mythos-5-1"),
    "claude-fable-5": Ids("global.anthropic.claude-fable-5", "claude-fable-5"),
    "claude-mythos-5": Ids("global.anthropic.claude-mythos-5", "claude-mythos-5"),
    "claude-opus-5-5": Ids("global.anthropic.claude-opus-5-5", "claude-opus-5-5"),
    "claude-opus-5": Ids("global.anthropic.claude-opus-5", "claude-opus-5"),
    "claude-sonnet-5-5": Ids("global.anthropic.claude-sonnet-5-5", "claude-sonnet-5-5"),
    "claude-sonnet-5": Ids("global.anthropic.claude-sonnet-5", "claude-sonnet-5"),
    "claude-opus-4-8": Ids("global.anthropic.claude-opus-4-8", "claude-opus-4-8"),
    "claude-opus-4-7": Ids("global.anthropic.claude-opus-4-7", "claude-opus-4-7"),
    "claude-opus-4-6": Ids("global.anthropic.claude-opus-4-6-v1", "claude-opus-4-6"),
    "claude-opus-4-5": Ids("global.anthropic.claude-opus-4-5-20251101-v1:0", "claude-opus-4-5@20251101"),
    "claude-sonnet-4-6": Ids("global.anthropic.claude-sonnet-4-6", "claude-sonnet-4-6"),
    "claude-sonnet-4-5": Ids("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5@20250929"),
    "claude-haiku-4-5": Ids("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5@20251001"),
}

# A model id in any provider's spelling: an optional Bedrock ARN path, inference-profile prefix and `anthropic.`,
# the name, then dates, versions and decorations (-20251001, -v1:0, @20251001, @default, [1m]).
_ID = re.compile(r"(?:arn:[^/]*/)?(?:(?:global|us|eu|apac|jp|au|ca|us-gov)\.)?(?:anthropic\.)?"
                 r"(?P<name>claude-[a-z0-9-]+?)(?:-\d{8}|-v\d+(?::\d+)?|@\w+|\[\w+\])*")


class ProviderError(anthropic.AnthropicError):
    """A provider's client cannot be set up (a region or project missing): one line naming what to set."""


def canonical(model: str) -> str | None:
    """Honk's name for `model` written in any provider's spelling, or None for a model Honk does not know."""
    match = _ID.fullmatch(model.strip())
    return match["name"] if match and match["name"] in MODEL_IDS else None


def model_for(provider: Provider, model: str) -> str:
    """What `provider` calls `model`. Honk's names go through the table; an id already in the provider's spelling,
    or of a model Honk does not know, passes through unchanged; a known model's id in another provider's spelling is
    translated (HONK_MODEL=global.anthropic.claude-opus-5-5 falls back to `claude-opus-5-5` on the Anthropic API)."""
    if model in MODEL_IDS:
        return model if provider == "anthropic" else getattr(MODEL_IDS[model], provider)
    if _spelling(model) == provider:
        return model
    name = canonical(model)
    if name is None:
        return model
    return name if provider == "anthropic" else getattr(MODEL_IDS[name], provider)


def _spelling(model: str) -> Provider:
    if model.startswith("arn:") or re.match(r"(?:[a-z-]+\.)?anthropic\.", model):
        return "bedrock"
    return "vertex" if "@" in model else "anthropic"


def provider_of(client: Any) -> Provider:
    if isinstance(client, anthropic.AsyncAnthropicBedrock):
        return "bedrock"
    if isinstance(client, anthropic.AsyncAnthropicVertex):
        return "vertex"
    return "anthropic"


def request_extras(client: Any) -> dict[str, Any]:
    """What a Messages request through `client` needs beyond Honk's parameters: Bedrock and Vertex take the API
    version in the body, and the one they take is theirs, not the first-party API's date the SDK would send."""
    version = BODY_VERSIONS.get(provider_of(client))
    return {"extra_body": {"anthropic_version": version}} if version else {}


@dataclass(frozen=True)
class Route:
    """One model at one provider, and the client that reaches it."""

    provider: Provider
    model: str  # Honk's name (or the operator's id, when Honk does not know the model)
    model_id: str  # what the provider is asked for
    client: Client

    @property
    def regional(self) -> bool:
        """Served from a regional endpoint, which Bedrock and Vertex price above their global one (pricing.py)."""
        if self.provider == "bedrock":
            return not self.model_id.split("/")[-1].startswith("global.")
        if self.provider == "vertex":
            return getattr(self.client, "region", "global") != "global"
        return False

    def describe(self) -> str:
        where = NAMES[self.provider]
        return f"{self.model} on {where}" + (f" ({self.model_id})" if self.model_id != self.model else "")

    def to_dict(self) -> dict[str, str]:
        return {"provider": self.provider, "model": self.model, "model_id": self.model_id}


def route(provider: Provider, model: str, settings: Settings, client: Client | None = None) -> Route:
    """`model` at `provider`, through `client` when given (its provider wins), else a new client of the SDK's;
    either way with the SDK's retries off (Honk retries, api.py)."""
    if client is not None:
        provider, client = provider_of(client), client.with_options(max_retries=0)
    else:
        client = client_for(provider, settings)
    return Route(provider, model, model_for(provider, model), client)


def fallback_target(settings: Settings, provider: Provider, model: str) -> tuple[Provider, str] | None:
    """Where a run on `model` at `provider` goes when that provider keeps failing: HONK_FALLBACK_PROVIDER (default:
    the same provider) with HONK_FALLBACK_MODEL (default: the same model); None when neither is set, or when they
    name the very same model at the same provider."""
    if settings.honk_fallback_provider is None and not settings.honk_fallback_model:
        return None
    to = settings.honk_fallback_provider or provider
    to_model = settings.honk_fallback_model or model
    if to == provider and model_for(to, to_model) == model_for(provider, model):
        return None
    return to, to_model


def judge_provider(settings: Settings) -> Provider:
    return settings.honk_judge_provider or settings.honk_provider


def client_for(provider: Provider, settings: Settings, **options: Any) -> Client:
    """The SDK's own client for `provider`, with the SDK's retries off (Honk retries, api.py). `options` go to the
    client (e.g. `timeout`). Raises ProviderError when a setting it needs is missing."""
    options.setdefault("max_retries", 0)
    if provider == "bedrock":
        return _bedrock(options)
    if provider == "vertex":
        return _vertex(options)
    key = settings.anthropic_api_key
    return anthropic.AsyncAnthropic(api_key=key.get_secret_value() if key else None,
                                    base_url=settings.anthropic_base_url, **options)


def _bedrock(options: dict[str, Any]) -> anthropic.AsyncAnthropicBedrock:
    region = env("AWS_REGION") or env("AWS_DEFAULT_REGION")
    bearer = env("AWS_BEARER_TOKEN_BEDROCK")
    credentials: dict[str, Any] = {}
    if bearer:  # a Bedrock API key: the SDK sends it instead of signing
        credentials["api_key"] = bearer
    elif env("AWS_ACCESS_KEY_ID") and env("AWS_SECRET_ACCESS_KEY"):
        credentials.update(aws_access_key=env("AWS_ACCESS_KEY_ID"), aws_secret_key=env("AWS_SECRET_ACCESS_KEY"),
                           aws_session_token=env("AWS_SESSION_TOKEN"))
    elif env("AWS_PROFILE"):
        credentials["aws_profile"] = env("AWS_PROFILE")
    # Otherwise boto3's own chain finds them (~/.aws, SSO, web identity, the instance's or task's role).
    from botocore.exceptions import BotoCoreError

    try:
        return anthropic.AsyncAnthropicBedrock(aws_region=region, base_url=env("ANTHROPIC_BEDROCK_BASE_URL"),
                                               **credentials, **options)
    except ValueError as exc:  # no region anywhere
        raise ProviderError(f"Amazon Bedrock needs a region: set AWS_REGION (the SDK said: {exc})") from None
    except BotoCoreError as exc:  # e.g. AWS_PROFILE names no profile
        raise ProviderError(f"Amazon Bedrock: {exc}") from None


def _vertex(options: dict[str, Any]) -> anthropic.AsyncAnthropicVertex:
    region = env("CLOUD_ML_REGION")
    if not region:
        raise ProviderError("Google Vertex AI needs a region: set CLOUD_ML_REGION (e.g. global or us-east5)")
    extra: dict[str, Any] = {}
    if project := env("ANTHROPIC_VERTEX_PROJECT_ID"):
        extra["project_id"] = project
    keyfile = env("GOOGLE_APPLICATION_CREDENTIALS")
    if keyfile and "GOOGLE_APPLICATION_CREDENTIALS" not in os.environ:
        # Only in .env, where Google's libraries do not look: load the file for them. It is the operator's own
        # (google-auth warns about files from untrusted sources, which this is not).
        import google.auth
        import google.auth.exceptions

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                extra["credentials"], found = google.auth.load_credentials_from_file(keyfile,
                                                                                     scopes=[CLOUD_PLATFORM_SCOPE])
        except google.auth.exceptions.GoogleAuthError as exc:
            raise ProviderError(f"GOOGLE_APPLICATION_CREDENTIALS: {exc}") from None
        if found and "project_id" not in extra:
            extra["project_id"] = found
    return anthropic.AsyncAnthropicVertex(region=region, base_url=env("ANTHROPIC_VERTEX_BASE_URL"), **extra,
                                          **options)


def trouble(exc: Exception) -> tuple[str, bool] | None:
    """A provider's own failure outside the SDK's errors, as (what happened, worth retrying), or None when `exc` is
    none of those: AWS credentials that cannot be found, Google credentials that cannot be found or refreshed."""
    from botocore.exceptions import BotoCoreError
    from google.auth import exceptions as google

    if isinstance(exc, RuntimeError) and "AWS credentials" in str(exc):
        return f"no AWS credentials for Amazon Bedrock: {exc}", False
    if isinstance(exc, RuntimeError) and "project_id" in str(exc):
        return "Google Vertex AI needs a project: set ANTHROPIC_VERTEX_PROJECT_ID", False
    if isinstance(exc, BotoCoreError):
        return f"AWS credentials for Amazon Bedrock: {exc}", False
    if isinstance(exc, google.TransportError):
        return f"cannot reach Google's token service: {exc}", True
    if isinstance(exc, google.GoogleAuthError):  # a refresh the token service failed for now says it is retryable
        return f"Google credentials for Vertex AI: {exc}", bool(getattr(exc, "retryable", False))
    return None


def env(name: str) -> str | None:
    """A provider setting from the environment, else from `.env` (where Honk's own settings come from too)."""
    value = os.environ.get(name)
    if value is None and ENV_FILE.is_file():
        value = dotenv_values(ENV_FILE).get(name)
    return value or None


def secrets() -> list[str]:
    """The providers' credentials that Honk can see, for redaction (the Anthropic key is among Settings.secrets)."""
    names = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK")
    return [value for name in names if (value := env(name))]
