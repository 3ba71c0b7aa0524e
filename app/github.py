"""Honk as a GitHub App: installation clients on githubkit, against `GITHUB_API_URL`.

Responses are read as raw JSON where Honk needs only a few fields: githubkit's strict models reject some
real (older or thinner) payloads, and a schema mismatch must never stop a job.
"""

from __future__ import annotations

from githubkit import AppInstallationAuthStrategy, GitHub
from githubkit.cache import MemCacheStrategy
from githubkit.exception import RequestFailed

from app.settings import Settings

WRITE_ROLES = frozenset({"admin", "maintain", "write"})


class GitHubNotConfigured(Exception):
    """Honk lacks the App credentials it needs to act on GitHub."""


class GitHubApp:
    def __init__(self, settings: Settings) -> None:
        missing = [name for name in settings.missing_github() if "WEBHOOK" not in name]
        if missing:
            raise GitHubNotConfigured(f"set {', '.join(missing)} so Honk can act as its GitHub App")
        assert settings.github_app_id is not None and settings.github_private_key is not None
        self._app_id = settings.github_app_id
        self._key = settings.github_private_key.get_secret_value()
        self._base_url = settings.github_api_url
        # githubkit caches installation tokens process-wide, keyed without the base URL; a cache of our
        # own keeps two Apps (or a test's fake GitHub) in one process apart.
        self._cache = MemCacheStrategy()

    def installation(self, installation_id: int) -> GitHub[AppInstallationAuthStrategy]:
        auth = AppInstallationAuthStrategy(self._app_id, self._key, installation_id)
        return GitHub(auth, base_url=self._base_url + "/", cache_strategy=self._cache, timeout=30)

    async def permission(self, installation_id: int, repo: str, login: str) -> str:
        """The sender's role on the repository (admin, maintain, write, triage, read or none)."""
        owner, name = repo.split("/", 1)
        async with self.installation(installation_id) as gh:
            try:
                response = await gh.rest.repos.async_get_collaborator_permission_level(owner, name, login)
            except RequestFailed as exc:
                if exc.response.status_code == 404:
                    return "none"  # not a collaborator at all
                raise
        data = response.json()
        role = data.get("role_name") if isinstance(data, dict) else None
        legacy = data.get("permission") if isinstance(data, dict) else None
        # A custom role reports its base level in the legacy field ("maintain" shows there as "write").
        return role if role in WRITE_ROLES else (legacy or role or "none")


def can_write(role: str) -> bool:
    return role in WRITE_ROLES
