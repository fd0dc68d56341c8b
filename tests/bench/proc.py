"""This process's resident memory, read from /proc (no extra dependency; the bench runs on Linux)."""

from __future__ import annotations

from pathlib import Path


def rss_kb(field: str = "VmRSS") -> int:
    """Resident memory in KiB: `VmRSS` now, `VmHWM` the peak so far."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")
