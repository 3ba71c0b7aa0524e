"""Alembic environment: Honk runs migrations itself (`Database.migrate`), handing over its connection."""

from alembic import context

from app.queue.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through app.queue.db.Database.migrate(), which supplies the connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
