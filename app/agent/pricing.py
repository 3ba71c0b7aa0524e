"""The one table of what each model costs and how much it holds, per provider. USD per million tokens.

The table holds Anthropic's list prices. Amazon Bedrock and Google Vertex AI charge the same at their global
endpoints (Bedrock's `global.` inference profiles, Vertex's `global` region) and `REGIONAL_PREMIUM` more at
regional ones (Bedrock's in-region and geographic profiles, every other Vertex region), for every model in the
table. A model is found under any provider's id for it (providers.MODEL_IDS). Cache writes are priced at the
5-minute TTL, the only one Honk uses. A model missing from the table is priced like the dearest known model, so a
budget in dollars errs on the side of stopping early.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from app.agent.providers import canonical

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

    def scaled(self, factor: float) -> ModelInfo:
        return replace(self, input=self.input * factor, output=self.output * factor,
                       cache_write=self.cache_write * factor, cache_read=self.cache_read * factor)


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


REGIONAL_PREMIUM = 1.10  # Bedrock's and Vertex's regional endpoints, over their global ones
REGIONAL_PROVIDERS = ("bedrock", "vertex")


def model_info(model: str, provider: str = "anthropic", *, regional: bool = False) -> ModelInfo:
    """Prices and limits for `model` at `provider` (from a regional endpoint or not). `model` may be Honk's name or
    any provider's id for it: claude-haiku-4-5-20251001, global.anthropic.claude-opus-5-5, claude-opus-4-5@20251101,
    claude-opus-5-5[1m]."""
    name = canonical(model)
    info = MODELS.get(name or "") or ModelInfo(_DEAREST.input, _DEAREST.output, _DEAREST.cache_write,
                                               _DEAREST.cache_read, 200 * _K, 32 * _K, known=False)
    return info.scaled(REGIONAL_PREMIUM) if regional and provider in REGIONAL_PROVIDERS else info


def usage_dict(usage: Any) -> Usage:
    """The four token counts of an SDK `Usage`, missing ones as 0."""
    return {key: int(getattr(usage, key, None) or 0)
            for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}
