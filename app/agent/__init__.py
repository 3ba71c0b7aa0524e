"""The agent engine: Claude in a tool loop, sandboxed, on a budget, with a full transcript."""

from app.agent.api import RetryPolicy
from app.agent.budget import Budget
from app.agent.context import ContextPolicy
from app.agent.loop import Agent, AgentResult
from app.agent.prompts import DataBlock, Task

__all__ = ["Agent", "AgentResult", "Budget", "ContextPolicy", "DataBlock", "RetryPolicy", "Task"]
