"""Times on screen: in the operator's zone, always with the zone's name, so a time is never ambiguous.

Exports, the audit trail and the database keep UTC; only what is drawn is converted. The zone comes from the
config's `display_timezone`: "local" (the `TZ` environment variable, else the system's zone), "UTC", or an IANA name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOCAL = "local"


def display_zone(setting: str = LOCAL, environ: Mapping[str, str] = os.environ) -> tzinfo | None:
    """The zone to draw times in; None means the system's local zone (the C library's, correct for each moment).

    Raises ValueError for a name that is not a known zone (config loading checks it first).
    """
    if setting.upper() == "UTC":
        return UTC
    if setting != LOCAL:
        try:
            return ZoneInfo(setting)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {setting!r}") from exc
    # Read at each call, not only at process start: `TZ=Asia/Tokyo approval-console` shows Tokyo time.
    name = environ.get("TZ", "").removeprefix(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass  # a POSIX rule such as "EST5EDT,M3.2.0,M11.1.0": the C library reads it
    return None


def zoned_time(moment: datetime, zone: tzinfo | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """`moment` in `zone` (None: local), then the zone's abbreviation (CET, JST, UTC, or an offset such as +03)."""
    shown = moment.astimezone(zone) if moment.tzinfo is not None else moment.replace(tzinfo=UTC).astimezone(zone)
    return f"{shown.strftime(fmt)} {shown.strftime('%Z') or shown.strftime('%z')}"
