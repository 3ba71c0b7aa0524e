"""Tests of the agent engine (issue #3): loop, tools, sandbox, budgets, transcript."""
