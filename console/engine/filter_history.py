"""The filters an operator kept (enter in the filter), newest last, in the data directory: up in the filter brings
them back, across restarts. Best effort: a file that cannot be read or written only means no history."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

FILE_NAME = "filter-history.json"
KEPT = 50
log = logging.getLogger(__name__)


def load(data_dir: Path) -> list[str]:
    try:
        kept = json.loads((data_dir / FILE_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("filter history not read: %s", exc)
        return []
    if not isinstance(kept, list):
        return []
    return [text for text in kept if isinstance(text, str) and text.strip()][-KEPT:]


def save(data_dir: Path, history: list[str]) -> None:
    """Replaced whole (a new file renamed over the old), so a crash leaves the old list or the new one."""
    path = data_dir / FILE_NAME
    temporary = path.with_suffix(".tmp")
    try:
        temporary.write_text(json.dumps(history[-KEPT:], ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("filter history not kept: %s", exc)
