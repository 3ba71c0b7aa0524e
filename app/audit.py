"""The audit trail's interface: where a run writes what it saw and did.

A job's trail lives in the database (`queue.JobQueue.append_event`); `honk run` and tests keep it in
memory. Producers (the worker, the agent) only see `AuditLog`, so they never know which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class AuditLog(Protocol):
    async def record(self, kind: str, /, **data: Any) -> None:
        """Append one event. `kind` is a short dotted name such as `model.response` or `tool.result`."""
        ...


@dataclass
class MemoryAudit:
    """An in-memory trail, with an optional callback for live display (`honk run`)."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    on_event: Callable[[str, dict[str, Any]], None] | None = None

    async def record(self, kind: str, /, **data: Any) -> None:
        self.events.append((kind, data))
        if self.on_event is not None:
            self.on_event(kind, data)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [data for k, data in self.events if k == kind]
