"""Reading untyped JSON (webhook payloads, stored job data) without trusting its shape: a field that is not
what it should be reads as empty, never as an exception."""

from __future__ import annotations

import re
from typing import Any

# GitHub's ids are 64-bit, and so are Honk's id columns (SQLite's INTEGER, PostgreSQL's BIGINT): 63 bits and a sign.
MAX_ID = 2**63 - 1

# What no database column or HTTP answer can hold: NUL (PostgreSQL text refuses it) and the lone UTF-16
# surrogates that a JSON `\ud800` escape gives Python (UTF-8 cannot encode them).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_id(value: Any, maximum: int = MAX_ID) -> int | None:
    """A whole number from 1 to `maximum`, else None. Not a bool (True is an int to Python, not to JSON), a
    float, a string of digits, zero, a negative number, or one too big for a 64-bit column."""
    if type(value) is not int:
        return None
    return value if 1 <= value <= maximum else None


def as_text(value: Any, limit: int | None = None) -> str:
    """`as_str`, safe to store and to send: NUL and lone surrogates become U+FFFD, and the text is cut to
    `limit` characters when one is given."""
    text = as_str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit]
    if text.isascii() and "\x00" not in text:
        return text
    return _UNSTORABLE.sub("\ufffd", text)
