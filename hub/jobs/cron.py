"""When a schedule fires (pure): cron expressions in a time zone, with croniter.

Five fields are standard cron (minute hour day month weekday); six put seconds first, as Quartz (and Databricks'
schedules) do: ``*/15 * * * * *`` fires every 15 seconds. Times are computed in the schedule's zone, so ``0 6 * * *``
in Europe/Zurich fires at 06:00 local time in winter and summer alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter


class InvalidSchedule(ValueError):
    """The schedule or its time zone cannot be read; ``str()`` says why in one sentence."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise InvalidSchedule(
            f"{name[:64]!r} is not a time zone; use an IANA name such as Europe/Zurich or UTC."
        ) from e


def check(expression: str, timezone: str = "UTC") -> None:
    """Raise :class:`InvalidSchedule` unless ``expression`` is a 5- or 6-field cron expression and ``timezone`` a
    zone."""
    zone(timezone)
    _iter(expression, datetime.now(UTC))


def _iter(expression: str, start: datetime) -> croniter:
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise InvalidSchedule(
            f"{expression[:120]!r} is not a cron expression: give 5 fields (minute hour day month weekday) or 6 with "
            "seconds first."
        )
    try:
        return croniter(" ".join(fields), start, second_at_beginning=len(fields) == 6)
    except (CroniterError, ValueError, KeyError) as e:
        raise InvalidSchedule(f"{expression[:120]!r} is not a valid cron expression ({e}).") from e


def next_fire(expression: str, timezone: str, after: datetime) -> datetime:
    """The first fire time strictly after ``after`` (aware), in UTC."""
    local = after.astimezone(zone(timezone))
    return _iter(expression, local).get_next(datetime).astimezone(UTC)
