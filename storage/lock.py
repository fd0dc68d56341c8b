"""One console per data dir: an OS file lock held for a session's lifetime.

Two consoles writing one database would each believe its own queue; the second one is told who holds the data dir
instead. The kernel drops the lock when the holder exits, even by SIGKILL, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import IO

from storage.db import StorageError

LOCK_NAME = "console.lock"


class DataDirBusy(StorageError):
    """Another console (or another session in this process) holds the data dir."""


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        """Take the lock or raise DataDirBusy naming the holder; never waits."""
        if self._file is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A file object, not a bare descriptor: if the owner is dropped without release(), closing it frees the lock.
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise DataDirBusy(
                f"another approval-console is using {self.path.parent} ({holder}).\n"
                "  fix: switch to that console, or close it and start again; to run a second console at the same"
                " time, give it its own --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
