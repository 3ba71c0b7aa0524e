"""The spending ledger (CONTRACT section 9): one row per model call, the monthly counters the caps are checked
against, and the reservations that keep concurrent workers from jointly overshooting a cap.

Before a model call a worker `admit`s it: in one transaction it locks the counter row of every capped scope
(installation, organization, repository, requester; always in the same order, so two workers never deadlock),
reads what each has spent plus what calls under way have reserved, refuses if any cap is reached, and otherwise
reserves an estimate of the call. After the call, `record` adds its real cost to the counters, writes the ledger
row and drops the reservation, again in one transaction. So a cap is checked against every call that has been
admitted, finished or not: with estimates at least as large as the calls, spending ends below cap + one call;
however wrong the estimates, below cap + one call per worker (each worker has one call in flight at most, and
none is admitted once the recorded spending reaches the cap).

PostgreSQL serialises admissions on the counter rows (`SELECT ... FOR UPDATE`); SQLite takes its write lock at
the start of every transaction (BEGIN IMMEDIATE, app/queue/db.py), which serialises them too. A reservation
that is never settled (its worker died mid-call) stops counting when it expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import BigInteger, Float, Index, Integer, String, delete, func, select, true, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.policy import SCOPE_KINDS, Policy, Scope, cap_words, days_of, month_of, scopes_of, usd
from app.queue.db import Database
from app.queue.models import Base, Id

RESERVATION_SECONDS = 900.0  # a reservation of a worker that died stops counting after this
TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
Dimension = Literal["month", "installation", "org", "repo", "requester", "model"]
DIMENSIONS: tuple[Dimension, ...] = ("month", "installation", "org", "repo", "requester", "model")
DIMENSION_NAMES = {"month": "month", "installation": "installation", "org": "organization", "repo": "repository",
                   "requester": "requester", "model": "model"}


# Tables

class SpendCall(Base):
    """One model call and what it cost: the ledger, append-only."""

    __tablename__ = "spend_calls"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM, UTC
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD, UTC
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    organization: Mapped[str] = mapped_column(String(100))
    repository: Mapped[str] = mapped_column(String(250))
    requester: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(20))
    job_id: Mapped[int | None] = mapped_column(Id)  # no foreign key: the ledger outlives any purge of jobs
    kind: Mapped[str] = mapped_column(String(20))  # agent | judge
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_creation_input_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_read_input_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_spend_calls_month_day", "month", "day"), Index("ix_spend_calls_job", "job_id"))


class SpendCounter(Base):
    """What one scope spent in one month: the sum of its ledger rows, kept in step with them. Its row is also
    the lock that serialises admissions against the scope's cap."""

    __tablename__ = "spend_counters"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    scope: Mapped[str] = mapped_column(String(20), primary_key=True)  # installation | organization | ...
    key: Mapped[str] = mapped_column(String(250), primary_key=True)  # lower-cased: GitHub names ignore case
    spent_usd: Mapped[float] = mapped_column(Float)
    calls: Mapped[int] = mapped_column(Integer)


class SpendReservation(Base):
    """An admitted model call whose cost is not known yet: it counts against every scope it names until it is
    recorded, released, or expires."""

    __tablename__ = "spend_reservations"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    month: Mapped[str] = mapped_column(String(7))
    installation: Mapped[str | None] = mapped_column(String(40))
    organization: Mapped[str] = mapped_column(String(100))
    repository: Mapped[str] = mapped_column(String(250))
    requester: Mapped[str | None] = mapped_column(String(100))
    job_id: Mapped[int | None] = mapped_column(Id)
    amount_usd: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]

    __table_args__ = (Index("ix_spend_reservations_month", "month", "expires_at"),
                      {"sqlite_autoincrement": True})  # ids are never reused: a worker settles its own by id


# Who spends

@dataclass(frozen=True)
class Spender:
    """Whose spending a model call is: the scopes it counts against."""

    installation_id: int | None
    repository: str
    requester: str | None

    @property
    def organization(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def scopes(self) -> list[Scope]:
        return scopes_of(installation_id=self.installation_id, repository=self.repository, requester=self.requester)

    def key(self, kind: str) -> str | None:
        value = {"installation": None if self.installation_id is None else str(self.installation_id),
                 "organization": self.organization, "repository": self.repository,
                 "requester": self.requester}[kind]
        return None if value is None else value.lower()


@dataclass(frozen=True)
class Refusal:
    """A cap that is reached: by what was recorded (`spent`), or with what calls under way reserved."""

    scope: Scope
    spent: float
    reserved: float
    cap: float
    month: str

    @property
    def words(self) -> str:
        return cap_words(self.scope, spent=self.spent, cap=self.cap, month=self.month, pending=self.reserved)


@dataclass(frozen=True)
class Admission:
    reservation: int | None = None  # to settle with `record` (or `release`)
    refusal: Refusal | None = None


@dataclass(frozen=True)
class Call:
    """What one model call cost, for the ledger."""

    model: str
    provider: str
    kind: str
    cost_usd: float
    usage: dict[str, int] = field(default_factory=dict)
    job_id: int | None = None


# The store

class SpendLedger:
    def __init__(self, db: Database, reservation_seconds: float = RESERVATION_SECONDS) -> None:
        self.db = db
        self.reservation = timedelta(seconds=reservation_seconds)

    def month(self) -> str:
        """This month (UTC), by the database's clock on PostgreSQL, which every worker shares."""
        with self.db.session() as session:
            return month_of(self.db.now(session))

    def reached(self, spender: Spender, caps: dict[Scope, float], month: str | None = None) -> Refusal | None:
        """The first cap that what was already recorded this month reaches, if any (reservations aside: this is
        the check before a job starts, not before a call)."""
        with self.db.session() as session:
            month = month or month_of(self.db.now(session))
            spent = self._counters(session, month, spender, list(caps))
        for scope in sorted(caps):
            if spent.get(scope.kind, 0.0) >= caps[scope]:
                return Refusal(scope, spent.get(scope.kind, 0.0), 0.0, caps[scope], month)
        return None

    def admit(self, spender: Spender, caps: dict[Scope, float], amount: float, *, job_id: int | None = None,
              release: int | None = None) -> Admission:
        """Check every cap against what is spent and reserved, and reserve `amount` if none is reached. `release`
        is a reservation of the caller's that was never settled (its call failed): it is dropped first."""
        with self.db.session() as session:
            now = self.db.now(session)
            month = month_of(now)
            if release is not None:
                session.execute(delete(SpendReservation).where(SpendReservation.id == release))
            scopes = sorted(caps)
            self._ensure_counters(session, month, spender, scopes)
            spent = self._counters(session, month, spender, scopes, lock=True)
            for scope in scopes:
                column = getattr(SpendReservation, scope.kind)
                reserved = session.scalar(
                    select(func.coalesce(func.sum(SpendReservation.amount_usd), 0.0))
                    .where(SpendReservation.month == month, column == spender.key(scope.kind),
                           SpendReservation.expires_at > now)) or 0.0
                recorded = spent.get(scope.kind, 0.0)
                if recorded + reserved >= caps[scope]:
                    return Admission(refusal=Refusal(scope, recorded, reserved, caps[scope], month))
            reservation = SpendReservation(
                month=month, installation=spender.key("installation"), organization=spender.key("organization"),
                repository=spender.key("repository"), requester=spender.key("requester"), job_id=job_id,
                amount_usd=amount, created_at=now, expires_at=now + self.reservation)
            session.add(reservation)
            session.flush()
            return Admission(reservation=reservation.id)

    def record(self, spender: Spender, call: Call, *, reservation: int | None = None) -> None:
        """Add one call to the ledger and to its scopes' counters, and settle its reservation."""
        with self.db.session() as session:
            now = self.db.now(session)
            month = month_of(now)
            scopes = sorted(spender.scopes)
            self._ensure_counters(session, month, spender, scopes)
            for scope in scopes:  # in order, like `admit`: row locks are always taken in the same order
                session.execute(update(SpendCounter).where(
                    SpendCounter.month == month, SpendCounter.scope == scope.kind,
                    SpendCounter.key == spender.key(scope.kind)).values(
                    spent_usd=SpendCounter.spent_usd + call.cost_usd, calls=SpendCounter.calls + 1))
            session.add(SpendCall(
                at=now, month=month, day=now.date().isoformat(), installation_id=spender.installation_id,
                organization=spender.organization, repository=spender.repository, requester=spender.requester,
                model=call.model, provider=call.provider, job_id=call.job_id, kind=call.kind,
                cost_usd=call.cost_usd, **{key: int(call.usage.get(key, 0) or 0) for key in TOKEN_KEYS}))
            if reservation is not None:
                session.execute(delete(SpendReservation).where(SpendReservation.id == reservation))
            # Reservations long expired are nobody's any more (rows another worker is deleting are left to it).
            stale = select(SpendReservation.id).where(SpendReservation.expires_at < now - self.reservation)
            if not self.db.is_sqlite:
                stale = stale.with_for_update(skip_locked=True)
            session.execute(delete(SpendReservation).where(SpendReservation.id.in_(stale)))

    def release(self, reservation: int) -> None:
        with self.db.session() as session:
            session.execute(delete(SpendReservation).where(SpendReservation.id == reservation))

    # Counters

    def _ensure_counters(self, session: Session, month: str, spender: Spender, scopes: Sequence[Scope]) -> None:
        insert = sqlite_insert if self.db.is_sqlite else postgresql_insert
        for scope in scopes:  # one at a time and in order: concurrent inserts of one new row wait, never deadlock
            session.execute(insert(SpendCounter).values(
                month=month, scope=scope.kind, key=spender.key(scope.kind), spent_usd=0.0, calls=0
            ).on_conflict_do_nothing(index_elements=["month", "scope", "key"]))

    def _counters(self, session: Session, month: str, spender: Spender, scopes: Sequence[Scope], *,
                  lock: bool = False) -> dict[str, float]:
        spent: dict[str, float] = {}
        for scope in sorted(scopes):
            query = select(SpendCounter.spent_usd).where(SpendCounter.month == month, SpendCounter.scope == scope.kind,
                                                         SpendCounter.key == spender.key(scope.kind))
            value = session.scalar(query.with_for_update() if lock else query)
            spent[scope.kind] = float(value or 0.0)
        return spent

    # Reports

    def report(self, month: str | None = None, by: Dimension = "repo", policy: Policy | None = None) -> SpendReport:
        """Spending in `month` (this month by default) by one dimension, with its days and every month's total."""
        column = _column(by)
        with self.db.session() as session:
            month = month or month_of(self.db.now(session))
            in_month = true() if by == "month" else SpendCall.month == month  # by month: every month
            rows = session.execute(
                select(column, func.count(), *[func.sum(getattr(SpendCall, k)) for k in TOKEN_KEYS],
                       func.sum(SpendCall.cost_usd)).where(in_month).group_by(column)).all()
            days = dict(session.execute(select(SpendCall.day, func.sum(SpendCall.cost_usd))
                                        .where(SpendCall.month == month).group_by(SpendCall.day)).all())
            months = session.execute(select(SpendCall.month, func.sum(SpendCall.cost_usd), func.count())
                                     .group_by(SpendCall.month).order_by(SpendCall.month.desc())).all()
        lines = [ReportLine(key="—" if key is None else str(key), calls=calls,
                            tokens=dict(zip(TOKEN_KEYS, (int(t or 0) for t in tokens), strict=True)),
                            cost_usd=float(cost or 0.0), cap=_cap(policy, by, key))
                 for key, calls, *tokens, cost in rows]
        if by == "month":
            lines.sort(key=lambda line: line.key, reverse=True)  # newest first
        else:
            lines.sort(key=lambda line: (-line.cost_usd, line.key))  # dearest first
        return SpendReport(month=month, by=by, lines=lines,
                           days=[(day, float(days.get(day.isoformat(), 0.0))) for day in days_of(month)],
                           months=[(m, float(cost or 0.0), count) for m, cost, count in months])


def _column(by: Dimension) -> Any:
    return {"month": SpendCall.month, "installation": SpendCall.installation_id, "org": SpendCall.organization,
            "repo": SpendCall.repository, "requester": SpendCall.requester, "model": SpendCall.model}[by]


def _cap(policy: Policy | None, by: Dimension, key: object) -> float | None:
    kind = DIMENSION_NAMES[by]
    if policy is None or key is None or kind not in SCOPE_KINDS:
        return None
    return policy.caps.of(Scope(kind, str(key)))  # type: ignore[arg-type]


@dataclass
class ReportLine:
    key: str
    calls: int
    tokens: dict[str, int]
    cost_usd: float
    cap: float | None = None  # this month's cap, for installations, organizations, repositories and requesters

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens.values())

    @property
    def used(self) -> float | None:
        """The part of the cap spent, 0 to 1 and beyond; None without a cap (or a cap of 0)."""
        return self.cost_usd / self.cap if self.cap else None


@dataclass
class SpendReport:
    month: str
    by: Dimension
    lines: list[ReportLine]
    days: list[tuple[date, float]]  # every day of the month, with what it cost
    months: list[tuple[str, float, int]]  # every month with spending, newest first: (month, cost, calls)

    @property
    def total_usd(self) -> float:
        return sum(line.cost_usd for line in self.lines)

    @property
    def calls(self) -> int:
        return sum(line.calls for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        return {"month": self.month, "by": self.by, "dimension": DIMENSION_NAMES[self.by],
                "total_usd": round(self.total_usd, 6), "calls": self.calls,
                "rows": [{**asdict(line), "cost_usd": round(line.cost_usd, 6), "total_tokens": line.total_tokens}
                         for line in self.lines],
                "days": [{"day": day.isoformat(), "cost_usd": round(cost, 6)} for day, cost in self.days],
                "months": [{"month": m, "cost_usd": round(cost, 6), "calls": count} for m, cost, count in self.months]}

    def text(self) -> str:
        """A plain table for `honk spend`."""
        name = DIMENSION_NAMES[self.by]
        title = "Spending by month" if self.by == "month" else f"Spending in {self.month} (UTC) by {name}"
        capped = any(line.cap is not None for line in self.lines)
        header = [name, "calls", "tokens", "cost", *(["cap", "used"] if capped else [])]
        rows = [[line.key, f"{line.calls:,}", f"{line.total_tokens:,}", f"${line.cost_usd:,.2f}",
                 *([usd(line.cap) if line.cap is not None else "—",
                    f"{line.used:.0%}" if line.used is not None else "—"] if capped else [])]
                for line in self.lines]
        rows.append(["total", f"{self.calls:,}", f"{sum(line.total_tokens for line in self.lines):,}",
                     f"${self.total_usd:,.2f}", *(["", ""] if capped else [])])
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = [title, ""]
        for number, row in enumerate([header, *rows]):
            if number == len(rows):  # the total, under a rule
                lines.append("  ".join("-" * w for w in widths))
            lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                                   for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if not self.lines:
            lines.append("(no model calls)")
        return "\n".join(lines)


OVERVIEW: tuple[Dimension, ...] = ("org", "repo", "requester", "model")  # `honk spend` without --by


def overview(ledger: SpendLedger, month: str | None, by: Dimension | None, policy: Policy | None
             ) -> tuple[str, dict[str, Any]]:
    """`honk spend`: one dimension, or the month by organization, repository, requester and model; as text and
    as JSON."""
    if by is not None:
        report = ledger.report(month, by, policy)
        return report.text(), report.to_dict()
    reports = [ledger.report(month, dimension, policy) for dimension in OVERVIEW]
    first = reports[0].to_dict()
    text = f"Spending in {first['month']} (UTC): ${first['total_usd']:,.2f} in {first['calls']:,} model calls"
    body = {key: first[key] for key in ("month", "total_usd", "calls", "days", "months")}
    body["by"] = {report.by: report.to_dict()["rows"] for report in reports}
    return "\n\n".join([text, *(report.text() for report in reports)]), body
