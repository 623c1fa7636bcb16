"""The query history: one row per Trino query, from Trino's HTTP event listener.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "query_history",
        sa.Column("query_id", sa.String(100), primary_key=True),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("workspace", sa.String(64)),
        sa.Column("workspaces", postgresql.ARRAY(sa.String(64)), nullable=False, server_default="{}"),
        sa.Column("query", sa.Text),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error_code", sa.Integer),
        sa.Column("error_name", sa.String(255)),
        sa.Column("error_type", sa.String(64)),
        sa.Column("error_message", sa.Text),
        sa.Column("error_line", sa.Integer),
        sa.Column("error_column", sa.Integer),
        sa.Column("created", sa.DateTime(timezone=True)),
        sa.Column("started", sa.DateTime(timezone=True)),
        sa.Column("ended", sa.DateTime(timezone=True)),
        sa.Column("elapsed_ms", sa.BigInteger),
        sa.Column("queued_ms", sa.BigInteger),
        sa.Column("cpu_ms", sa.BigInteger),
        sa.Column("rows", sa.BigInteger),
        sa.Column("bytes", sa.BigInteger),
        sa.Column("read_rows", sa.BigInteger),
        sa.Column("read_bytes", sa.BigInteger),
        sa.Column("tables_read", sa.JSON, nullable=False, server_default="[]"),
        sa.Column("tables_written", sa.JSON, nullable=False, server_default="[]"),
        sa.Column("source", sa.String(255)),
        sa.Column("client_tags", sa.JSON, nullable=False, server_default="[]"),
        sa.Column("session_catalog", sa.String(255)),
        sa.Column("session_schema", sa.String(255)),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_query_history_user", "query_history", ["user"])
    op.create_index("ix_query_history_workspace", "query_history", ["workspace"])
    op.create_index("ix_query_history_state", "query_history", ["state"])
    op.create_index("ix_query_history_created", "query_history", ["created"])
    # Listing a workspace's history: WHERE workspaces @> ARRAY[slug].
    op.create_index("ix_query_history_workspaces", "query_history", ["workspaces"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_table("query_history")
