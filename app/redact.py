"""Redaction of secrets from anything Honk records or shows the model.

A `Redactor` knows two things: exact secret values Honk holds (the webhook secret, the App key, the
Anthropic key, installation tokens) and patterns for text that merely looks like a credential, so a
token the model dug up somewhere is hidden too. It is applied to every event before it is stored.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any

MIN_SECRET_LENGTH = 6  # shorter "secrets" would blank out ordinary words

# (label, pattern, group to keep before the redaction mark, hints). A pattern runs only when one of
# its lower-case hints occurs in the text, which keeps scanning large tool outputs cheap; patterns
# start with a literal where they can, for the same reason. PEM blocks come first so their base64
# body is not chewed up by narrower patterns.
SECRET_PATTERNS: list[tuple[str, re.Pattern[str], int, tuple[str, ...]]] = [
    ("private-key", re.compile(
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S), 0, ()),
    ("url-credentials", re.compile(r"(://[^/\s:@'\"]+:)[^@\s/'\"]+(?=@)"), 1, ()),
    ("github-token", re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"), 0, ()),
    ("github-token", re.compile(r"github_pat_[A-Za-z0-9_]{20,}"), 0, ()),
    ("anthropic-key", re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"), 0, ()),
    ("api-key", re.compile(r"sk-(?:proj-|live_|test_)?[A-Za-z0-9_\-]{24,}"), 0, ()),
    ("api-key", re.compile(r"[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"), 0, ("k_live_", "k_test_")),
    ("aws-key", re.compile(r"(?:AKIA|ASIA)[0-9A-Z]{16}\b"), 0, ()),
    ("aws-secret", re.compile(r"(?i)(aws_secret_access_key\s*[=:]\s*[\"']?)[A-Za-z0-9/+=]{30,}"), 1,
     ("aws_secret_access_key",)),
    ("slack-token", re.compile(r"xox[abposr]-[A-Za-z0-9\-]{10,}"), 0, ()),
    ("slack-webhook", re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]+"), 0, ()),
    ("google-key", re.compile(r"AIza[0-9A-Za-z_\-]{35}"), 0, ()),
    ("jwt", re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"), 0, ()),
    ("bearer-token", re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]{8,}=*"), 1, ("bearer",)),
    ("auth-header", re.compile(r"(?i)(\bauthorization\s*[:=]\s*[\"']?(?:token|basic)\s+)[A-Za-z0-9\-._~+/]{8,}=*"),
     1, ("authorization",)),
]


class Redactor:
    """Replaces known secret values and secret-looking strings with `[REDACTED:<kind>]`."""

    def __init__(self, secrets: Iterable[str | None] = (), *, patterns: bool = True) -> None:
        self._values: set[str] = set()
        self._literal: re.Pattern[str] | None = None
        self._patterns = SECRET_PATTERNS if patterns else []
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Learn more secret values, e.g. an installation token minted for one job."""
        for secret in secrets:
            if secret:
                self._values.update(_variants(secret))
        values = sorted((v for v in self._values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)
        self._literal = re.compile("|".join(map(re.escape, values))) if values else None

    def redact(self, text: str) -> str:
        if not text:
            return text
        if self._literal is not None:
            text = self._literal.sub("[REDACTED:secret]", text)
        lowered = text.lower()
        for label, pattern, keep, hints in self._patterns:
            if hints and not any(hint in lowered for hint in hints):
                continue
            mark = f"[REDACTED:{label}]"
            if keep:
                text = pattern.sub(lambda m, mark=mark, keep=keep: m.group(keep) + mark, text)
            else:
                text = pattern.sub(mark, text)
        return text

    def redact_data(self, value: Any) -> Any:
        """Redact every string inside nested dicts, lists and tuples; other values pass through."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self.redact_data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_data(v) for v in value]
        return value


def _variants(secret: str) -> set[str]:
    """The forms a secret takes when printed: as is, JSON-escaped, line by line, as git's basic auth."""
    secret = secret.strip()
    found = {secret}
    if "\n" in secret:
        found.add(secret.replace("\n", "\\n"))
        found.add(secret.replace("\n", "\r\n"))
        # A PEM key printed partly, or re-wrapped, still shows its long base64 lines.
        found.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= 20)
    else:
        found.add(base64.b64encode(f"x-access-token:{secret}".encode()).decode())
    return found
