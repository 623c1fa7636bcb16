"""Alembic environment of the workspace service: online migrations on the connection it is handed."""

from alembic import context

from agp.core.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
