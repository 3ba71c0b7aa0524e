"""Reading untyped JSON (webhook payloads, stored job data) without trusting its shape: a field that is not
what it should be reads as empty, never as an exception."""

from __future__ import annotations

from typing import Any


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""
