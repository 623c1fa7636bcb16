"""The lab's demo: workspace ``demo`` owned by the demo admin, with alice and bob, and one small Iceberg table."""

from __future__ import annotations

import logging

from rich.console import Console
from sqlalchemy.orm import Session

from agp.core import clients
from agp.core.settings import Settings

log = logging.getLogger(__name__)

DEMO = "demo"
MEMBERS = {"alice": "editor", "bob": "editor"}


def seed(settings: Settings, console: Console) -> None:
    from agp.core.models import State
    from agp.core.permissions import Caller
    from agp.hub import db, store
    from agp.hub.provision import Provisioner

    engine = db.make_engine(settings.db_url)
    db.upgrade(engine)
    lab = Caller("agp-lab", admin=True)
    with Session(engine) as s:
        try:
            ws = store.get(s, lab, DEMO)
        except store.Refused:
            console.print("Seeding the demo workspace...")
            ws = store.create(
                s,
                lab,
                Provisioner(settings),
                DEMO,
                display_name="Demo workspace",
                owner="admin",
                description="Seeded by `agp lab up`: a small table to try %sql and Spark on.",
            )
        if ws.state == State.failed:
            ws = store.provision(s, lab, Provisioner(settings), ws)
        if ws.state != State.ready:
            raise RuntimeError(f"the demo workspace is {ws.state}: {ws.failure_reason}")
        have = {m.username for m in ws.members}
        for user, role in MEMBERS.items():
            if user not in have:
                store.set_member(s, lab, DEMO, user, role)
    engine.dispose()
    _demo_table(settings)


def _demo_table(settings: Settings) -> None:
    import pyarrow as pa
    from pyiceberg.exceptions import NoSuchTableError

    catalog = clients.load_catalog(settings)
    try:
        catalog.load_table(f"{DEMO}.meter_readings")
        return
    except NoSuchTableError:
        pass
    rows = pa.table(
        {
            "meter_id": pa.array([101, 101, 102, 102, 103], pa.int64()),
            "city": ["Bern", "Bern", "Oslo", "Oslo", "Lima"],
            "reading_kwh": [12.5, 13.1, 7.25, 7.4, 3.0],
            "day": pa.array(["2026-11-01", "2026-11-02", "2026-11-01", "2026-11-02", "2026-11-01"]).cast(pa.date32()),
        }
    )
    table = catalog.create_table(f"{DEMO}.meter_readings", schema=rows.schema)
    table.append(rows)
