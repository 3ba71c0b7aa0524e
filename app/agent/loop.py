"""The agent: Claude in a tool loop until the task is done, a budget runs out, or the model stops.

The loop is the small `_loop` method below; policy lives in named pieces around it: tools.py and
editor.py (what a tool call does), prompts.py (what the model is told), budget.py and pricing.py
(when to stop), context.py (caching and clearing old tool results), api.py (retries), providers.py
(which provider serves the model, and the fallback that takes over when it keeps failing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from app.agent import prompts, providers
from app.agent.api import ContextTooLong, ModelCallError, RetryPolicy, call_model
from app.agent.budget import Budget, BudgetName, Meter, SpendGate
from app.agent.context import ContextPolicy, clear_old_tool_results, context_tokens, with_breakpoints
from app.agent.editor import Editor
from app.agent.pricing import ModelInfo, model_info, usage_dict
from app.agent.prompts import DataBlock, Task
from app.agent.providers import Client, Route
from app.agent.tools import Toolbox, tool_definitions
from app.audit import AuditLog
from app.checkout.sandbox import Sandbox
from app.checkout.verify import Verifier
from app.redact import Redactor
from app.settings import Settings

log = logging.getLogger("honk.agent")

StopKind = Literal["completed", "budget", "refusal", "context_exhausted", "api_error"]
DEFAULT_MAX_TOKENS = 32_000
CUT_STOPS = ("max_tokens", "model_context_window_exceeded")
CUT_BLOCKS = {"tool_use", "thinking", "redacted_thinking", "server_tool_use"}  # unusable when cut off


@dataclass
class AgentResult:
    stop: StopKind
    summary: str
    turns: int
    usage: dict[str, int]  # input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens
    cost_usd: float
    duration_s: float
    tool_calls: int = 0
    budget: BudgetName | None = None  # which budget stopped the run, when stop == "budget"
    refusal_category: str | None = None  # when stop == "refusal" (None if the API named no category)
    error: str | None = None  # when stop == "api_error" or "context_exhausted"
    provider: str = "anthropic"  # the provider that served the run's last model call
    model: str = ""  # the model that served it (Honk's name)
    fallback: str | None = None  # when the fallback took over: from what, to what, and why, in one sentence

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Outcome:
    stop: StopKind
    budget: BudgetName | None = None
    category: str | None = None
    error: str | None = None


class Agent:
    """One conversation with the model about one workspace. `run` once, then `resume` as needed."""

    def __init__(self, settings: Settings, workspace: Path, audit: AuditLog,
                 client: Client | None = None, budget: Budget | None = None, *,
                 secrets: list[str] | tuple[str, ...] = (), sandbox: Sandbox | None = None,
                 retry: RetryPolicy | None = None, stream: bool = True, context: ContextPolicy | None = None,
                 max_tokens: int | None = None, verifiers: Sequence[Verifier] = (), no_verifiers: str = "",
                 verify_timeout: float = 900.0, spend: SpendGate | None = None) -> None:
        self.settings = settings
        self.root = Path(workspace).resolve()
        self.audit = audit
        # The primary route: HONK_PROVIDER's client (or `client`, whose provider it is) for HONK_MODEL.
        self.route = providers.route(settings.honk_provider, settings.honk_model, settings, client)
        self._made: list[Client] = [] if client is not None else [self.route.client]  # closed with the agent
        self.info = _info(self.route)
        self.meter = Meter(budget or Budget.from_settings(settings))
        self.spend = spend
        # Extra secrets are values such as the installation token that settings do not hold.
        self.redactor = Redactor([*settings.secrets(), *providers.secrets(), *secrets])
        self.sandbox = sandbox or Sandbox(self.root, settings)
        self.shell = self.sandbox.shell()
        self.verifiers = list(verifiers)
        self.tools = Toolbox(Editor(self.root), self.shell, settings.honk_command_timeout, verifiers=verifiers,
                             sandbox=self.sandbox, verify_timeout=verify_timeout, no_verifiers=no_verifiers)
        self.tool_defs = tool_definitions(settings.honk_tool_style)
        self.retry = retry or RetryPolicy()
        self.stream = stream
        self._own_context = context is None  # the default policy follows the model's window, also on a fallback
        self.context = context or ContextPolicy(self.info.context_window)
        self.max_tokens = min(max_tokens or DEFAULT_MAX_TOKENS, self.info.max_output)
        self.fallback: str | None = None  # set once the fallback has taken over (AgentResult.fallback)
        self.system = ""
        self.messages: list[dict[str, Any]] = []
        self._last_usage: dict[str, int] = {}

    @property
    def model(self) -> str:
        return self.route.model

    @property
    def api(self) -> Client:
        return self.route.client  # retries are Honk's own (api.py): the SDK's are off

    # Public API

    async def run(self, task: Task) -> AgentResult:
        if self.messages:
            raise RuntimeError("Agent.run was already called; use resume() to continue")
        await self.sandbox.check()  # SandboxError: a configuration problem, not a run outcome
        self.system = prompts.system_prompt(self.root, task.repository, self.settings.honk_command_timeout,
                                            [v.name for v in self.verifiers])
        await self._record("agent.start", model=self.model, provider=self.route.provider,
                           model_id=self.route.model_id, root=str(self.root), repository=task.repository,
                           sandbox=self.sandbox.mode, tool_style=self.settings.honk_tool_style,
                           budget=asdict(self.meter.budget), max_tokens=self.max_tokens, system=self.system,
                           tools=self.tool_defs, priced=self.info.known)
        if self.sandbox.mode == "none":
            await self._record("sandbox.unsafe", message="HONK_SANDBOX=none: commands run without a sandbox")
        await self._say([{"type": "text", "text": self.redactor.redact(prompts.task_message(task))}])
        return await self._drive()

    async def resume(self, message: str, data: list[DataBlock] | None = None) -> AgentResult:
        """Continue the same conversation with more input, e.g. failing test output as `data`."""
        if not self.messages:
            raise RuntimeError("Agent.resume needs a run() first")
        await self._say([{"type": "text", "text": self.redactor.redact(prompts.resume_message(message, data))}])
        return await self._drive()

    async def end_sandbox(self) -> None:
        """End the shell's sandbox and everything started in it (background processes included), so that the
        tree holds still while Honk reads it. A later `resume` starts a fresh shell."""
        await self.shell.close()

    async def close(self) -> None:
        await self.shell.close()
        for client in self._made:
            await client.close()

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # The loop

    async def _drive(self) -> AgentResult:
        self.meter.start()
        try:
            outcome = await self._loop()
        finally:
            self.meter.pause()
        result = AgentResult(
            stop=outcome.stop, summary=self._summary(), turns=self.meter.turns, usage=dict(self.meter.usage),
            cost_usd=round(self.meter.cost_usd, 6), duration_s=round(self.meter.elapsed, 3),
            tool_calls=self.meter.tool_calls, budget=outcome.budget, refusal_category=outcome.category,
            error=outcome.error, provider=self.route.provider, model=self.model, fallback=self.fallback)
        await self._record("agent.stop", **result.to_dict())
        return result

    async def _loop(self) -> _Outcome:
        while True:
            if (spent := self.meter.exhausted()) is not None:
                return _Outcome("budget", budget=spent)
            if self.spend is not None and (cap := await self.spend.admit(self.model)) is not None:
                return _Outcome("budget", budget="spend_cap", error=cap)
            await self._fit_context()
            try:
                reply = await self._call()
            except ContextTooLong as exc:
                if await self._clear(keep=1, reason="request too long"):
                    continue
                return _Outcome("context_exhausted", error=str(exc))
            except ModelCallError as exc:
                return _Outcome("api_error", error=str(exc))
            except TimeoutError:
                return _Outcome("budget", budget="wall_time")
            stop, content = reply.stop_reason, [block_param(block) for block in reply.content]
            cut = stop in CUT_STOPS
            if cut and content and content[-1]["type"] in CUT_BLOCKS:
                # Cut inside a tool call or thinking: the reply can be neither used nor sent back.
                self._last_usage["output_tokens"] = 0  # and it takes no room in the context
                if await self._cut_mid_block(stop):
                    continue
                return _Outcome("context_exhausted", error="the conversation fills the context window")
            self.messages.append({"role": "assistant", "content": content})
            calls = [block for block in content if block["type"] == "tool_use"]
            follow_up = await self._run_tools(calls)
            if cut:
                follow_up.append({"type": "text", "text": prompts.CONTINUE_AFTER_CUT})
            if follow_up:
                await self._say(follow_up)
            if stop == "model_context_window_exceeded" and not await self._clear(keep=1, reason=stop):
                return _Outcome("context_exhausted", error="the conversation fills the context window")
            if stop == "refusal":
                return _Outcome("refusal", category=getattr(reply.stop_details, "category", None))
            if not calls and stop not in ("pause_turn", *CUT_STOPS):
                return _Outcome("completed")  # end_turn (or stop_sequence): the model is done
            # Tool results to send, a paused turn to send back as it is, or a cut-off reply: go on.

    # Pieces of the loop

    async def _call(self) -> Any:
        turn = self.meter.turns + 1
        await self._record("model.request", turn=turn, max_tokens=self.max_tokens, messages=len(self.messages),
                           context_tokens=context_tokens(self._last_usage), stream=self.stream,
                           provider=self.route.provider, model=self.model, model_id=self.route.model_id)
        remaining = self.meter.remaining_seconds()
        started = time.monotonic()
        async with asyncio.timeout(remaining):
            try:
                reply = await self._ask(deadline=started + remaining)
            except ModelCallError as exc:
                if not await self._fall_back(exc, turn):
                    raise
                reply = await self._ask(deadline=started + remaining)  # the same request, from the same state
        usage = usage_dict(reply.usage)
        cost = self.info.cost(usage)  # at the prices of the provider and model that answered
        self.meter.add_turn(usage, cost)
        if self.spend is not None:
            await self.spend.spent(self.model, usage, cost, provider=self.route.provider)
        self._last_usage = usage
        await self._record("model.response", turn=turn, provider=self.route.provider, model=self.model,
                           stop_reason=reply.stop_reason,
                           stop_details=reply.stop_details.to_dict() if reply.stop_details else None,
                           content=[block_param(block) for block in reply.content], usage=usage,
                           cost_usd=round(cost, 6), total_usage=dict(self.meter.usage),
                           total_cost_usd=round(self.meter.cost_usd, 6),
                           duration_s=round(time.monotonic() - started, 3))
        return reply

    async def _ask(self, deadline: float) -> Any:
        params = {"model": self.route.model_id, "max_tokens": self.max_tokens, "tool_choice": {"type": "auto"},
                  **with_breakpoints(self.system, self.tool_defs, self.messages)}
        return await call_model(self.api, params, stream=self.stream, policy=self.retry, deadline=deadline,
                                on_retry=self._on_retry)

    async def _fall_back(self, exc: ModelCallError, turn: int) -> bool:
        """Move the run to the fallback provider when its provider kept failing (not when it refused the request);
        once only: the run stays there. False when there is nothing to move to."""
        target = providers.fallback_target(self.settings, self.route.provider, self.model)
        if not exc.transient or self.fallback is not None or target is None:
            return False
        if self.spend is not None and (refused := await self.spend.admit(target[1])) is not None:
            await self._record("model.fallback_refused", provider=target[0], model=target[1], error=str(exc),
                               reason=refused)
            return False
        try:
            to = providers.route(*target, self.settings)
        except providers.ProviderError as problem:
            await self._record("model.fallback_refused", provider=target[0], model=target[1], error=str(exc),
                               reason=str(problem))
            return False
        was, self.route = self.route, to
        self._made.append(to.client)
        self.info = _info(to)
        self.max_tokens = min(self.max_tokens, self.info.max_output)
        if self._own_context:
            self.context = ContextPolicy(self.info.context_window)
        self.fallback = (f"{was.describe()} kept failing ({exc}); from turn {turn} the run went on with "
                         f"{to.describe()}")
        log.warning("%s", self.fallback)
        await self._record("model.fallback", turn=turn, error=str(exc), **{"from": was.to_dict(), "to": to.to_dict()})
        return True

    async def _run_tools(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run the calls in order; their results, in the same order, open the next user turn."""
        results = []
        for call in calls:
            await self._record("tool.call", id=call["id"], name=call["name"], input=call["input"])
            remaining = self.meter.remaining_seconds()
            if remaining <= 0:
                content, is_error, duration = "Not run: the run's time budget is used up.", True, 0.0
            else:
                result = await self.tools.run(call["name"], call["input"], remaining=remaining)
                content, is_error, duration = result.content, result.is_error, result.duration
            content = self.redactor.redact(content)  # the model never sees a secret either
            self.meter.tool_calls += 1
            await self._record("tool.result", id=call["id"], name=call["name"], is_error=is_error,
                               content=content, duration_s=round(duration, 4))
            results.append({"type": "tool_result", "tool_use_id": call["id"], "content": content,
                            "is_error": is_error})
        return results

    async def _cut_mid_block(self, stop: str) -> bool:
        """Retry with more room, clear context, or ask for smaller calls; False when nothing can help."""
        if stop == "model_context_window_exceeded":
            return await self._clear(keep=1, reason=stop) > 0
        if self.max_tokens < self.info.max_output:
            self.max_tokens = min(self.max_tokens * 2, self.info.max_output)
            await self._record("model.more_room", max_tokens=self.max_tokens)
        else:
            await self._say([{"type": "text", "text": prompts.TOOL_CALL_TOO_LONG}])
        return True

    async def _fit_context(self) -> None:
        assert self.context is not None
        if context_tokens(self._last_usage) >= self.context.threshold:
            await self._clear(keep=self.context.keep, reason="near the context window")

    async def _clear(self, keep: int, reason: str) -> int:
        cleared = clear_old_tool_results(self.messages, keep)
        await self._record("context.cleared", cleared=cleared, kept=keep, reason=reason,
                           context_tokens=context_tokens(self._last_usage))
        self._last_usage = {}  # the next response measures the context afresh
        return cleared

    async def _on_retry(self, attempt: int, error: str, wait: float) -> None:
        log.warning("model call failed (%s); retry %d in %.1f s", error, attempt, wait)
        await self._record("model.retry", attempt=attempt, error=error, wait_s=round(wait, 3))

    # Helpers

    async def _say(self, blocks: list[dict[str, Any]]) -> None:
        """Append a user turn, merged into the last one when the conversation already ends with one."""
        if self.messages and self.messages[-1]["role"] == "user":
            self.messages[-1]["content"].extend(blocks)
        else:
            self.messages.append({"role": "user", "content": list(blocks)})
        # Tool results are already recorded as tool.result; this records everything else the model is told.
        if texts := [b for b in blocks if b["type"] == "text"]:
            await self._record("message.user", content=texts)

    def _summary(self) -> str:
        for message in reversed(self.messages):
            if message["role"] == "assistant":
                texts = [b["text"] for b in message["content"] if b["type"] == "text" and b["text"].strip()]
                if texts:  # it will be published (pull request, status comment): redact it too
                    return self.redactor.redact("\n\n".join(texts).strip())
        return ""

    async def _record(self, kind: str, **data: Any) -> None:
        await self.audit.record(kind, **self.redactor.redact_data(data))


def _info(route: Route) -> ModelInfo:
    return model_info(route.model, route.provider, regional=route.regional)


def block_param(block: Any) -> dict[str, Any]:
    """A response block as it goes back to the API: thinking and its signature exactly as received."""
    kind = block.type
    if kind == "text":
        return {"type": "text", "text": block.text}
    if kind == "thinking":
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    if kind == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return block.to_dict()
