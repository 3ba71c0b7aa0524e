"""Budgets stop a run at the right point, keep its work, and say which budget it was."""

from __future__ import annotations

from pathlib import Path

from app.agent import Budget, Task
from app.agent.pricing import model_info
from app.settings import Settings
from tests.agent.conftest import AgentFactory, run
from tests.fakes.messages_api import FakeMessagesAPI, bash, end, reply

NO_CACHE = {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}


def forever(n: int = 10, **usage: int) -> list[dict[str, object]]:
    """A model that never stops calling tools, each call leaving a file behind."""
    return [reply(bash(f"echo {i} > step{i}.txt"), usage={**NO_CACHE, **usage} if usage else None)
            for i in range(n)]


def go(factory: AgentFactory, budget: Budget) -> object:
    agent, _ = factory(budget=budget)

    async def main() -> object:
        async with agent:
            return await agent.run(Task("loop"))
    return run(main())


def test_max_turns(make_agent: AgentFactory, fake: FakeMessagesAPI, repo: Path) -> None:
    fake.script(*forever())
    result = go(make_agent, Budget(max_turns=3))
    assert (result.stop, result.budget, result.turns) == ("budget", "turns", 3)
    assert len(fake.bodies) == 3
    assert sorted(p.name for p in repo.glob("step*.txt")) == ["step0.txt", "step1.txt", "step2.txt"]


def test_max_tokens(make_agent: AgentFactory, fake: FakeMessagesAPI) -> None:
    fake.script(*forever(input_tokens=1000))
    result = go(make_agent, Budget(max_tokens=2500))
    assert (result.stop, result.budget, result.turns) == ("budget", "tokens", 3)
    assert result.usage["input_tokens"] == 3000 and len(fake.bodies) == 3


def test_max_cost(make_agent: AgentFactory, fake: FakeMessagesAPI, settings: Settings) -> None:
    per_turn = model_info(settings.honk_model).cost({"input_tokens": 100_000})
    fake.script(*forever(input_tokens=100_000))
    result = go(make_agent, Budget(max_cost_usd=per_turn * 2.5))
    assert (result.stop, result.budget, result.turns) == ("budget", "cost", 3)
    assert abs(result.cost_usd - 3 * per_turn) < 1e-6


def test_max_wall_time_bounds_a_running_command(make_agent: AgentFactory, fake: FakeMessagesAPI, repo: Path) -> None:
    fake.script(reply(bash("echo before > kept.txt; sleep 30")), end("never reached"))
    result = go(make_agent, Budget(max_wall_seconds=1.0))
    assert (result.stop, result.budget, result.turns) == ("budget", "wall_time", 1)
    assert result.duration_s < 20  # the command was cut at the budget, not at its own 20 s timeout
    assert (repo / "kept.txt").read_text() == "before\n"


def test_budgets_accumulate_across_resume(make_agent: AgentFactory, fake: FakeMessagesAPI) -> None:
    fake.script(end("first"), *forever())
    agent, _ = make_agent(budget=Budget(max_turns=3))

    async def main() -> tuple[object, object, object]:
        async with agent:
            first = await agent.run(Task("one"))
            second = await agent.resume("more")
            third = await agent.resume("even more")
            return first, second, third

    first, second, third = run(main())
    assert (first.stop, first.turns) == ("completed", 1)
    assert (second.stop, second.budget, second.turns) == ("budget", "turns", 3)
    assert (third.stop, third.turns) == ("budget", 3) and len(fake.bodies) == 3
    assert third.duration_s >= second.duration_s >= first.duration_s


def test_budget_from_settings(settings: Settings) -> None:
    budget = Budget.from_settings(settings.model_copy(update={"honk_max_turns": 7}), max_cost_usd=1.5)
    assert (budget.max_turns, budget.max_cost_usd) == (7, 1.5)
    assert budget.max_tokens == settings.honk_max_tokens
