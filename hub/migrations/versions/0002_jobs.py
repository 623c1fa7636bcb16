"""Jobs and their runs; a workspace's quota of concurrent runs.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workspaces", sa.Column("max_concurrent_runs", sa.Integer, nullable=False, server_default="4"))
    op.create_check_constraint("ck_workspaces_max_concurrent_runs", "workspaces", "max_concurrent_runs >= 0")
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workspace_id", sa.Integer, sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("timeout_seconds", sa.Integer, nullable=False),
        sa.Column("max_retries", sa.Integer, nullable=False),
        sa.Column("schedule", sa.String(120)),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("next_fire_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("kind IN ('notebook', 'script')", name="ck_jobs_kind"),
        sa.CheckConstraint("timeout_seconds > 0 AND max_retries >= 0", name="ck_jobs_limits"),
    )
    op.create_index("ix_jobs_workspace_id", "jobs", ["workspace_id"])
    op.create_index("ix_jobs_owner", "jobs", ["owner"])
    op.create_index("ix_jobs_next_fire_at", "jobs", ["next_fire_at"])
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("workspace_id", sa.Integer, sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True)),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("attempt_started_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("executor", sa.String(32)),
        sa.Column("runner_ref", sa.Text),
        sa.Column("token_id", sa.String(64)),
        sa.Column("output_key", sa.String(512)),
        sa.Column("log_key", sa.String(512)),
        sa.UniqueConstraint("job_id", "scheduled_for", name="uq_job_runs_period"),
    )
    op.create_index("ix_job_runs_job_id", "job_runs", ["job_id"])
    op.create_index("ix_job_runs_workspace_id", "job_runs", ["workspace_id"])
    op.create_index("ix_job_runs_state", "job_runs", ["state"])
    op.create_index("ix_job_runs_ended_at", "job_runs", ["ended_at"])


def downgrade() -> None:
    op.drop_table("job_runs")
    op.drop_table("jobs")
    op.drop_constraint("ck_workspaces_max_concurrent_runs", "workspaces")
    op.drop_column("workspaces", "max_concurrent_runs")
