"""Honk: a GitHub App that hands issues and review comments to Claude and answers with tested pull requests."""

__version__ = "0.1.0"
