"""The one table of what each model costs and how much it holds. USD per million tokens.

Cache writes are priced at the 5-minute TTL, the only one Honk uses. A model missing from the table
is priced like the dearest known model, so a budget in dollars errs on the side of stopping early.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

Usage = dict[str, int]  # input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens


@dataclass(frozen=True)
class ModelInfo:
    input: float
    output: float
    cache_write: float
    cache_read: float
    context_window: int
    max_output: int
    known: bool = True

    def cost(self, usage: Usage) -> float:
        return (usage.get("input_tokens", 0) * self.input
                + usage.get("output_tokens", 0) * self.output
                + usage.get("cache_creation_input_tokens", 0) * self.cache_write
                + usage.get("cache_read_input_tokens", 0) * self.cache_read) / 1_000_000


_M = 1_000_000
_K = 1_000
MODELS: dict[str, ModelInfo] = {
    "claude-fable-5-2": ModelInfo(10, 50, 12.5, 0.25, _M, 128 * _K),
    "claude-mythos-5-2": ModelInfo(10, 50, 12.5, 0.25, _M, 128 * _K),
    "claude-fable-5-1": ModelInfo(10, 50, 12.5, 0.25, _M, 128 * _K),
    "claude-mythos-5-1": ModelInfo(10, 50, 12.5, 0.25, _M, 128 * _K),
    "claude-fable-5": ModelInfo(10, 50, 12.5, 1.0, _M, 128 * _K),
    "claude-mythos-5": ModelInfo(10, 50, 12.5, 1.0, _M, 128 * _K),
    "claude-opus-5-5": ModelInfo(4, 20, 5, 0.20, _M, 128 * _K),
    "claude-opus-5": ModelInfo(5, 25, 6.25, 0.50, _M, 128 * _K),
    "claude-sonnet-5-5": ModelInfo(2, 10, 2.5, 0.20, _M, 128 * _K),
    "claude-sonnet-5": ModelInfo(2, 10, 2.5, 0.20, _M, 128 * _K),
    "claude-opus-4-8": ModelInfo(5, 25, 6.25, 0.50, _M, 128 * _K),
    "claude-opus-4-7": ModelInfo(5, 25, 6.25, 0.50, _M, 128 * _K),
    "claude-opus-4-6": ModelInfo(5, 25, 6.25, 0.50, 200 * _K, 128 * _K),
    "claude-opus-4-5": ModelInfo(5, 25, 6.25, 0.50, 200 * _K, 64 * _K),
    "claude-sonnet-4-6": ModelInfo(3, 15, 3.75, 0.30, 200 * _K, 64 * _K),
    "claude-sonnet-4-5": ModelInfo(3, 15, 3.75, 0.30, 200 * _K, 64 * _K),
    "claude-haiku-4-5": ModelInfo(1, 5, 1.25, 0.10, 200 * _K, 64 * _K),
}
_DEAREST = max(MODELS.values(), key=lambda m: (m.output, m.input))


def model_info(model: str) -> ModelInfo:
    """Prices and limits for `model`, matching dated ids (claude-haiku-4-5-20251001) by prefix."""
    if model in MODELS:
        return MODELS[model]
    # A dated or decorated id of a known model: claude-haiku-4-5-20251001, claude-opus-5-5[1m].
    if (match := re.fullmatch(r"(.+?)(?:-\d{8}|\[\w+\]|@\w+)+", model)) and match.group(1) in MODELS:
        return MODELS[match.group(1)]
    return ModelInfo(_DEAREST.input, _DEAREST.output, _DEAREST.cache_write, _DEAREST.cache_read,
                     200 * _K, 32 * _K, known=False)


def usage_dict(usage: Any) -> Usage:
    """The four token counts of an SDK `Usage`, missing ones as 0."""
    return {key: int(getattr(usage, key, None) or 0)
            for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}
