"""Durable jobs: models, the database and its migrations, the store, the worker, and the context a job runs with."""
