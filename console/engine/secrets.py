"""Source tokens: from the environment or the system keyring, never from the config, the database or the logs."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from console.engine.config import APP_NAME, no_keyring_fix, token_env_var

T = TypeVar("T")
KEYRING_TIMEOUT = 5.0  # a Secret Service over D-Bus can hang; the console must not


class KeyringUnavailable(Exception):
    """No usable keyring backend on this machine."""


@dataclass(frozen=True)
class Token:
    value: str
    origin: str  # "environment" or "keyring": safe to show, the value is not

    def __repr__(self) -> str:
        return f"Token(origin={self.origin!r}, value=<hidden>)"

    __str__ = __repr__


def _in_thread(call: Callable[[], T], what: str) -> T:
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # reported to the caller below
            box["error"] = exc

    worker = threading.Thread(target=run, name=f"keyring-{what}", daemon=True)
    worker.start()
    worker.join(KEYRING_TIMEOUT)
    if worker.is_alive():
        raise KeyringUnavailable(f"the system keyring did not answer within {KEYRING_TIMEOUT:g} s")
    if "error" in box:
        error = box["error"]
        assert isinstance(error, BaseException)
        raise error
    return box["value"]  # type: ignore[return-value]


def _keyring_backend_usable() -> bool:
    import keyring
    from keyring.backends import fail

    return not isinstance(keyring.get_keyring(), fail.Keyring)


def get_token(source_name: str) -> Token | None:
    """The environment variable wins over the keyring, so a deployment can override a desktop setting."""
    env = os.environ.get(token_env_var(source_name))
    if env:
        return Token(env, "environment")
    try:
        import keyring
        from keyring.errors import KeyringError

        if not _in_thread(_keyring_backend_usable, "probe"):
            return None
        value = _in_thread(lambda: keyring.get_password(APP_NAME, source_name), "get")
    except (KeyringUnavailable, KeyringError, RuntimeError):
        return None
    return Token(value, "keyring") if value else None


def store_token(source_name: str, value: str) -> None:
    """Save a token in the keyring; KeyringUnavailable names the environment variable to use instead."""
    import keyring
    from keyring.errors import KeyringError

    hint = no_keyring_fix(source_name)
    try:
        if not _in_thread(_keyring_backend_usable, "probe"):
            raise KeyringUnavailable(hint)
        _in_thread(lambda: keyring.set_password(APP_NAME, source_name, value), "set")
    except KeyringError as exc:
        raise KeyringUnavailable(f"{hint} ({type(exc).__name__})") from exc


def keyring_backend() -> str | None:
    """The name of the usable keyring backend, or None: asked before a token is, so none is typed in vain."""
    try:
        if not _in_thread(_keyring_backend_usable, "probe"):
            return None
        import keyring
    except (KeyringUnavailable, RuntimeError, ImportError):
        return None
    return type(keyring.get_keyring()).__name__


def delete_token(source_name: str) -> bool:
    """Remove a source's token from the keyring; False when there was none there (or no usable keyring)."""
    try:
        import keyring
        from keyring.errors import KeyringError  # PasswordDeleteError (nothing stored) is one

        if not _in_thread(_keyring_backend_usable, "probe"):
            return False
        _in_thread(lambda: keyring.delete_password(APP_NAME, source_name), "delete")
    except (KeyringUnavailable, KeyringError, RuntimeError):
        return False
    return True
