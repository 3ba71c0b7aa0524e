"""The sandbox tests share the agent tests' scratch repository, settings and scripted model."""

from tests.agent.conftest import fake, make_agent, repo, settings

__all__ = ["fake", "make_agent", "repo", "settings"]
