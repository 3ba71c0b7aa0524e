"""What Honk keeps about Slack (CONTRACT section 8): who is who, which channel works on which repository, and
which Slack thread follows which issue and pull request.

- A link ties a Slack user (team and user id) to the GitHub login that person proved through the App's OAuth.
  The GitHub user token is never kept; only the login and its id are.
- A link's state is single use: its nonce is recorded when used, until it expires.
- A channel may be bound to one repository (`/honk channel owner/name`), so requests there may leave it out.
- A thread is where one request lives: the Slack message edited in place (`status_ts`) and the issue it opened,
  later the pull request, so that GitHub's events about them reach the thread.

GitHub stays the record: every request is also an issue, every follow-up a comment. These rows only route.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from app.queue.db import Database
from app.queue.models import Base, Id


class SlackLink(Base):
    __tablename__ = "slack_links"

    team_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    github_login: Mapped[str] = mapped_column(String(100))
    github_id: Mapped[int] = mapped_column(BigInteger)
    linked_at: Mapped[datetime]


class SlackNonce(Base):
    """A used link state, kept until it would have expired anyway."""

    __tablename__ = "slack_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime]


class SlackChannel(Base):
    __tablename__ = "slack_channels"

    team_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo: Mapped[str] = mapped_column(String(250))
    bound_by: Mapped[str] = mapped_column(String(100))  # the GitHub login of the writer who bound it
    bound_at: Mapped[datetime]


class SlackThread(Base):
    __tablename__ = "slack_threads"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(String(40))
    channel_id: Mapped[str] = mapped_column(String(40))
    thread_ts: Mapped[str] = mapped_column(String(40))  # the request's own message: replies go under it
    status_ts: Mapped[str | None] = mapped_column(String(40))  # Honk's message, edited in place
    slack_user: Mapped[str] = mapped_column(String(40))
    requester: Mapped[str] = mapped_column(String(100))  # the linked GitHub login
    repo: Mapped[str] = mapped_column(String(250))
    issue_number: Mapped[int | None] = mapped_column(Integer)
    pull_number: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]

    __table_args__ = (
        Index("ux_slack_threads_message", "team_id", "channel_id", "thread_ts", unique=True),
        Index("ix_slack_threads_issue", "repo", "issue_number"),
        Index("ix_slack_threads_pull", "repo", "pull_number"),
    )


@dataclass(frozen=True)
class Thread:
    id: int
    team_id: str
    channel_id: str
    thread_ts: str
    status_ts: str | None
    slack_user: str
    requester: str
    repo: str
    issue_number: int | None
    pull_number: int | None


class SlackStore:
    """The Slack tables, over the queue's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # Links

    def link(self, team_id: str, user_id: str, login: str, github_id: int) -> None:
        """Link (or re-link) a Slack user to a GitHub login."""
        with self.db.session() as session:
            row = session.get(SlackLink, (team_id, user_id))
            now = self.db.now(session)
            if row is None:
                session.add(SlackLink(team_id=team_id, user_id=user_id, github_login=login, github_id=github_id,
                                      linked_at=now))
            else:
                row.github_login, row.github_id, row.linked_at = login, github_id, now

    def login_of(self, team_id: str, user_id: str) -> str | None:
        with self.db.session() as session:
            row = session.get(SlackLink, (team_id, user_id))
            return row.github_login if row else None

    def use_nonce(self, nonce: str, expires_at: datetime) -> bool:
        """True the first time a link state's nonce is used, False ever after (until it has expired)."""
        try:
            with self.db.session() as session:
                now = self.db.now(session)
                session.execute(delete(SlackNonce).where(SlackNonce.expires_at < now))
                session.add(SlackNonce(nonce=nonce, expires_at=expires_at))
            return True
        except IntegrityError:
            return False

    # Channels

    def bind(self, team_id: str, channel_id: str, repo: str, login: str) -> None:
        with self.db.session() as session:
            row = session.get(SlackChannel, (team_id, channel_id))
            now = self.db.now(session)
            if row is None:
                session.add(SlackChannel(team_id=team_id, channel_id=channel_id, repo=repo, bound_by=login,
                                         bound_at=now))
            else:
                row.repo, row.bound_by, row.bound_at = repo, login, now

    def channel_repo(self, team_id: str, channel_id: str) -> str | None:
        with self.db.session() as session:
            row = session.get(SlackChannel, (team_id, channel_id))
            return row.repo if row else None

    # Threads

    def open_thread(self, *, team_id: str, channel_id: str, thread_ts: str, slack_user: str, requester: str,
                    repo: str) -> Thread:
        """The thread of a request, made on first use: a retried job finds the one it made."""
        with self.db.session() as session:
            row = session.scalars(select(SlackThread).where(
                SlackThread.team_id == team_id, SlackThread.channel_id == channel_id,
                SlackThread.thread_ts == thread_ts)).first()
            if row is None:
                row = SlackThread(team_id=team_id, channel_id=channel_id, thread_ts=thread_ts, slack_user=slack_user,
                                  requester=requester, repo=repo, created_at=self.db.now(session))
                session.add(row)
                session.flush()
            return _thread(row)

    def update_thread(self, thread_id: int, **fields: object) -> Thread:
        """Set `status_ts`, `issue_number` or `pull_number` on a thread."""
        allowed = {"status_ts", "issue_number", "pull_number"}
        if set(fields) - allowed:
            raise ValueError(f"only {sorted(allowed)} change on a thread")
        with self.db.session() as session:
            row = session.get(SlackThread, thread_id)
            if row is None:
                raise KeyError(thread_id)
            for key, value in fields.items():
                setattr(row, key, value)
            return _thread(row)

    def thread_at(self, team_id: str, channel_id: str, thread_ts: str) -> Thread | None:
        with self.db.session() as session:
            row = session.scalars(select(SlackThread).where(
                SlackThread.team_id == team_id, SlackThread.channel_id == channel_id,
                SlackThread.thread_ts == thread_ts)).first()
            return _thread(row) if row else None

    def thread_of_issue(self, repo: str, number: int) -> Thread | None:
        """The thread following an issue, or the pull request that closes it (`number` may be either)."""
        with self.db.session() as session:
            row = session.scalars(select(SlackThread).where(
                SlackThread.repo == repo, (SlackThread.issue_number == number) | (SlackThread.pull_number == number))
                .order_by(SlackThread.id.desc())).first()
            return _thread(row) if row else None


def _thread(row: SlackThread) -> Thread:
    return Thread(row.id, row.team_id, row.channel_id, row.thread_ts, row.status_ts, row.slack_user, row.requester,
                  row.repo, row.issue_number, row.pull_number)
