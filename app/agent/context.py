"""Prompt caching and the size of the conversation.

Caching: breakpoints on the tools, the system prompt and the last two user turns (the API allows
four). The previous request's newest breakpoint is this request's second newest, so each request
reads everything up to there from the cache and writes only the newest turn: a long run pays for
each token about once.

Size: when the context nears the model's window, the contents of old tool results are replaced by
a short note, keeping the newest few, so the run can go on. Clearing is done in bulk, rarely,
because it invalidates the cache from the first cleared block on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]
CACHE = {"type": "ephemeral"}
CLEARED = "[tool result cleared to save context; run the tool again if you need it]"


@dataclass(frozen=True)
class ContextPolicy:
    window: int  # the model's context window, in tokens
    clear_at: float = 0.75  # share of the window at which old tool results are cleared
    keep: int = 5  # newest tool results left intact

    @property
    def threshold(self) -> int:
        return int(self.window * self.clear_at)


def with_breakpoints(system: str, tools: list[dict[str, Any]], messages: list[Message]) -> dict[str, Any]:
    """The `system`, `tools` and `messages` request fields with cache breakpoints, leaving inputs intact."""
    cached_tools = [dict(t) for t in tools]
    if cached_tools:
        cached_tools[-1]["cache_control"] = CACHE
    out = list(messages)
    marked = 0
    for index in range(len(out) - 1, -1, -1):
        if marked == 2:
            break
        message = out[index]
        content = message["content"]
        if message["role"] != "user" or not content:
            continue
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        else:
            content = [dict(block) for block in content]
        content[-1]["cache_control"] = CACHE
        out[index] = {**message, "content": content}
        marked += 1
    return {"system": [{"type": "text", "text": system, "cache_control": CACHE}],
            "tools": cached_tools, "messages": out}


def context_tokens(usage: dict[str, int]) -> int:
    """The size of the conversation as of the last response: all its input plus what it wrote."""
    return (usage.get("input_tokens", 0) + usage.get("cache_creation_input_tokens", 0)
            + usage.get("cache_read_input_tokens", 0) + usage.get("output_tokens", 0))


def clear_old_tool_results(messages: list[Message], keep: int) -> int:
    """Blank all but the newest `keep` tool results in place; returns how many were cleared."""
    results = [block for message in messages if message["role"] == "user" and isinstance(message["content"], list)
               for block in message["content"] if block.get("type") == "tool_result"]
    cleared = 0
    for block in results[: max(len(results) - keep, 0)]:
        if block.get("content") != CLEARED:
            block["content"] = CLEARED
            cleared += 1
    return cleared
