"""Who may use a `serve` queue: its token file, one entry per agent and per operator, each token kept as its SHA-256.

    [[agents]]
    name = "billing-agent"
    token_sha256 = "5f0c..."

    [[operators]]
    name = "alice"
    token_sha256 = "9a1e..."

A token is 256 random bits (`approval-console serve token add` makes one, prints it once and appends its hash here), so
its SHA-256 is enough to recognise it and useless to guess it from: the file holds no secret. The file is read again
when it changes, so a token added while `serve` runs is accepted at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

from console.servers.protocol.handlers import Caller

CONFIG_NAME = "serve.toml"
TOKEN_PREFIX = "acs_"  # noqa: S105 - not a secret: a prefix that says what the token is for when it turns up somewhere it should not
ROLES = {"agents": "agent", "operators": "operator"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,199}")
_HASH = re.compile(r"[0-9a-f]{64}")


class TokenFileError(ValueError):
    """The token file cannot be used; the message says where and what to fix."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    role: str  # "agent" or "operator"
    name: str
    token_sha256: str


def parse(text: str, path: Path) -> list[Entry]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TokenFileError(f"{path}: not TOML ({exc})") from None
    entries: list[Entry] = []
    for table, role in ROLES.items():
        rows = data.get(table, [])
        if not isinstance(rows, list):
            raise TokenFileError(f"{path}: '{table}' must be a list of [[{table}]] tables")
        for n, row in enumerate(rows, 1):
            name, digest = (row.get("name"), row.get("token_sha256")) if isinstance(row, dict) else (None, None)
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise TokenFileError(f"{path}: [[{table}]] number {n} needs a name (letters, digits, _ . @ -)")
            if not isinstance(digest, str) or not _HASH.fullmatch(digest):
                raise TokenFileError(f"{path}: {role} {name!r} needs token_sha256, 64 lowercase hex digits")
            entries.append(Entry(role, name, digest))
    unknown = set(data) - set(ROLES)
    if unknown:
        raise TokenFileError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}: only [[agents]] and [[operators]]")
    return entries


def add_token(path: Path, role: str, name: str) -> str:
    """A new token for `name` as `role` ("agent" or "operator"): its hash appended to the file, the token returned."""
    if not _NAME.fullmatch(name):
        raise TokenFileError(f"{name!r} is not a usable name: letters, digits, _ . @ -, at most 200")
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    if any(e.role == role and e.name == name for e in parse(existing, path)):
        raise TokenFileError(f"{path} already has a token for {role} {name!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    table = next(t for t, r in ROLES.items() if r == role)
    block = f'\n[[{table}]]\nname = "{name}"\ntoken_sha256 = "{token_hash(token)}"\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return token


class TokenFile:
    """The callers a token file names, read again when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._callers: dict[str, Caller] = {}
        self.reload()

    def reload(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            stamp, text = (0, 0), ""
        else:
            stamp, text = (stat.st_mtime_ns, stat.st_size), self.path.read_text(encoding="utf-8")
        if stamp == self._stamp:
            return
        callers: dict[str, Caller] = {}
        for entry in parse(text, self.path):
            if (
                entry.token_sha256 in callers
            ):  # one token, one role: an operator never posts items, nor an agent decides
                raise TokenFileError(f"{self.path}: the token of {entry.role} {entry.name!r} is listed twice")
            role = entry.role
            callers[entry.token_sha256] = Caller(entry.name, operator=role == "operator", agent=role == "agent")
        self._callers, self._stamp = callers, stamp

    def caller(self, token: str) -> Caller | None:
        with self._lock:
            with contextlib.suppress(OSError, TokenFileError):  # a file being edited or broken keeps its callers
                self.reload()
            return self._callers.get(token_hash(token))

    def __len__(self) -> int:
        return len(self._callers)
