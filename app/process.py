"""What one Honk process holds: settings, the database, the queue, what it listens on, the App's slug, and how
to wake an in-process worker."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from app.queue.db import Database
from app.queue.store import JobBackoff, JobQueue
from app.settings import Settings


@dataclass
class HonkState:
    settings: Settings
    db: Database
    queue: JobQueue
    listen_host: str = "127.0.0.1"
    # Whether every socket the web server bound is a loopback address, learnt once it has bound them (the
    # `--host` text alone can mislead: "" and hostnames may bind every interface). None: no server of ours
    # has reported yet, and the access rule falls back to `listen_host` (loopback only if it is a loopback
    # literal or `localhost`).
    bound_loopback: bool | None = None
    # The first-run setup code, so that only whoever runs Honk can register its App: printed in the log by
    # `honk serve`/`honk web`, asked of every visitor of the setup pages who is not on this machine.
    # In memory only: a restart makes a new one.
    setup_code: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    public_url: str | None = None  # HONK_PUBLIC_URL, else http://<host>:<port>
    app_slug: str | None = None  # learnt from GitHub; "@<slug>" then triggers Honk too
    on_job_queued: list[Callable[[], None]] = field(default_factory=list)
    # Called with the new settings when they are reloaded (the first-run setup writes .env), so that
    # whatever copied them at start-up, such as an in-process worker, follows.
    on_settings_changed: list[Callable[[Settings], None]] = field(default_factory=list)

    @classmethod
    def create(cls, settings: Settings, listen_host: str = "127.0.0.1") -> HonkState:
        settings.prepare_data_dir()
        db = Database(settings.database_url)
        queue = JobQueue(db, JobBackoff(settings.honk_max_attempts, settings.honk_retry_base_seconds,
                                         settings.honk_retry_max_seconds), settings.honk_lease_seconds)
        return cls(settings=settings, db=db, queue=queue, listen_host=listen_host)

    def learn_app_slug(self, slug: str) -> None:
        self.app_slug = slug

    def replace_settings(self, settings: Settings) -> None:
        self.settings = settings
        for notify in self.on_settings_changed:
            notify(settings)

    def job_queued(self) -> None:
        for wake in self.on_job_queued:
            wake()
