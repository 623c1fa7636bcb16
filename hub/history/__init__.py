"""Query history: every Trino query of the platform, as Trino's HTTP event listener reports it.

- :mod:`.events`: a Trino query event (created or completed) as a row, and the workspaces it belongs to (pure).
- :mod:`.models`: the ``query_history`` table (migration 0003).
- :mod:`.store`: idempotent upserts of events; listing and reading entries as a caller may see them.
- :mod:`.routes`: the ingest door Trino posts to (its bearer token only), the REST API and the pages.

Who sees an entry (attribution, decided once in :func:`.events.attribute`): the members of every workspace whose
Iceberg namespace the query read or wrote a table of (the tables come from Trino's analysis, not from anything the
client sends), and of the workspace whose schema the query ran in (the session schema) when its user is a member
there; platform admins see all. Nothing a client sets freely (source, client tags, session properties) decides it.
"""
