"""A real terminal for a console process: a pseudo-terminal (as tmux or an SSH session gives), read in a thread.

The console runs exactly as an operator starts it, keys are typed into the terminal, and everything it writes (the
screen, and what is printed after it closes) is kept for the test to read.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")


class Terminal:
    def __init__(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, size: tuple[int, int] = (100, 30)
    ) -> None:
        master, slave = pty.openpty()
        columns, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.process = subprocess.Popen(
            list(argv), stdin=slave, stdout=slave, stderr=slave, env=dict(env), cwd=cwd, start_new_session=True
        )
        os.close(slave)
        self._master = master
        self._output = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: every process holding the terminal is gone
                return
            if not data:
                return
            with self._lock:
                self._output += data

    def type(self, keys: str) -> None:
        os.write(self._master, keys.encode())

    def raw(self) -> str:
        """Everything written to the terminal so far, escapes and all."""
        with self._lock:
            return self._output.decode("utf-8", "replace")

    def text(self) -> str:
        """What was written, without the terminal's control sequences."""
        return _ESCAPES.sub("", self.raw())

    def wait(self, timeout: float = 60) -> int:
        try:
            code = self.process.wait(timeout)
        finally:
            self.close()
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(10)
        os.close(self._master)
