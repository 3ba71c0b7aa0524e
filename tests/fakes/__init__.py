"""Fakes of the services Honk talks to, for tests and benchmarks."""
