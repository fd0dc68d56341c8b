"""What the command line prints: counts in plain English, errors as one line, server and agent text made safe."""

from __future__ import annotations

import sys

from storage.safe_text import clean

PROG = "approval-console"
ADD_SOURCE_FIX = f"add a source with '{PROG} sources add NAME URL'"  # where there is none yet, or no config at all


class CliError(Exception):
    """A problem the user can fix: printed as one line on stderr, then the command exits with `status`."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 label', '19 labels', '0 entries' (with many='entries')."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def safe_line(text: str) -> str:
    """`text` as one line with every control, escape and bidi character shown, never obeyed by the terminal.

    Error texts can carry what a server or an agent sent (a redirect's Location, an item id, an exception message).
    """
    return clean(" ".join(part.strip() for part in text.splitlines()), multiline=False)


def unreadable_database(path: object, exc: Exception) -> str:
    """The error for a database file SQLite cannot read: `doctor` looks at it further."""
    return f"{path} cannot be read as a database ({exc}): '{PROG} doctor' says more"


def fail(message: str, status: int = 2) -> int:
    """Print `message` as one line on stderr; return the exit status for it."""
    print(f"{PROG}: {safe_line(message)}", file=sys.stderr)
    return status
