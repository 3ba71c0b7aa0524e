"""Limits on one run, and the meter that counts against them.

A run (with its resumes) stops cleanly at the first limit reached; its work stays on disk. Tokens
are everything the API processed: input, output, cache writes and cache reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from app.agent.pricing import Usage

if TYPE_CHECKING:
    from app.settings import Settings

BudgetName = Literal["turns", "tokens", "cost", "wall_time", "spend_cap"]
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class SpendGate(Protocol):
    """Spending beyond one run: the operator's monthly caps, shared by every worker (the jobs layer implements
    it over the database). The loop asks before every model call and reports what each call cost."""

    async def admit(self, model: str) -> str | None:
        """None to go on; else the cap that is reached, in words for the status comment."""
        ...

    async def spent(self, model: str, usage: Usage, cost_usd: float, kind: str = "agent",
                    provider: str | None = None) -> None:
        """Record one call: `kind` "agent" or "judge"; `provider` the one that answered (a fallback's, say)."""
        ...


@dataclass(frozen=True)
class Budget:
    max_turns: int = 80
    max_tokens: int = 4_000_000
    max_cost_usd: float = 10.0
    max_wall_seconds: float = 1800.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: float) -> Budget:
        """The operator's limits, optionally overridden (e.g. by a repository's own configuration)."""
        values = {"max_turns": settings.honk_max_turns, "max_tokens": settings.honk_max_tokens,
                  "max_cost_usd": settings.honk_max_cost_usd, "max_wall_seconds": settings.honk_max_wall_seconds}
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass
class Meter:
    """What a run has spent so far; it accumulates across `run` and `resume`."""

    budget: Budget
    turns: int = 0
    usage: Usage = field(default_factory=lambda: dict.fromkeys(USAGE_KEYS, 0))
    cost_usd: float = 0.0
    tool_calls: int = 0
    _elapsed: float = 0.0  # wall time of finished segments (a run, each resume)
    _segment_start: float | None = None

    def start(self) -> None:
        self._segment_start = time.monotonic()

    def pause(self) -> None:
        if self._segment_start is not None:
            self._elapsed += time.monotonic() - self._segment_start
            self._segment_start = None

    @property
    def elapsed(self) -> float:
        running = time.monotonic() - self._segment_start if self._segment_start is not None else 0.0
        return self._elapsed + running

    @property
    def tokens(self) -> int:
        return sum(self.usage.values())

    def add_turn(self, usage: Usage, cost: float) -> None:
        self.turns += 1
        for key in USAGE_KEYS:
            self.usage[key] += usage.get(key, 0)
        self.cost_usd += cost

    def remaining_seconds(self) -> float:
        return self.budget.max_wall_seconds - self.elapsed

    def exhausted(self) -> BudgetName | None:
        """The first limit reached, if any; checked before every model call."""
        if self.turns >= self.budget.max_turns:
            return "turns"
        if self.tokens >= self.budget.max_tokens:
            return "tokens"
        if self.cost_usd >= self.budget.max_cost_usd:
            return "cost"
        if self.remaining_seconds() <= 0:
            return "wall_time"
        return None
