"""The deep link to one item: `approval-console://open/SOURCE/ITEM`, and the command line that does the same.

A page carries both: the link for a phone or desktop that has the scheme registered, the exact command for everyone
else. `approval-console open` takes either form.
"""

from __future__ import annotations

import re
import shlex
from typing import Final
from urllib.parse import quote, unquote

from console.engine.config import APP_NAME

SCHEME: Final = f"{APP_NAME}://open/"
_SOURCE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # a source's name (config.py: a short name)


class BadTarget(ValueError):
    """Not SOURCE/ITEM nor a link to one; the message says what was expected."""


def item_link(source: str, item_id: str) -> str:
    """The link to the item: each part percent-encoded, so any item id stays one ASCII path segment."""
    return f"{SCHEME}{quote(source, safe='')}/{quote(item_id, safe='')}"


def printable_ascii(text: str) -> bool:
    """Only printable ASCII (space to '~'): safe to hand to a terminal's clipboard escape, or to paste anywhere."""
    return all(" " <= char <= "~" for char in text)


def copyable(source: str, item_id: str, *, link: bool) -> str | None:
    """What `y` copies: the item's link, or its id as it is when that is printable ASCII and percent-encoded when not.

    None when even the encoded form cannot be made (an id with a lone surrogate cannot be UTF-8 encoded).
    """
    try:
        text = item_link(source, item_id) if link else item_id if printable_ascii(item_id) else quote(item_id, safe="")
    except UnicodeEncodeError:
        return None
    return text if printable_ascii(text) else None


def open_command(source: str, item_id: str) -> str:
    """The command line that opens the console on the item, quoted for a POSIX shell (an item id is the agent's)."""
    return f"{APP_NAME} open {shlex.quote(f'{source}/{item_id}')}"


def parse_target(text: str) -> tuple[str, str]:
    """(source, item id) from `SOURCE/ITEM` or from a link `approval-console://open/SOURCE/ITEM`."""
    link = text.startswith(SCHEME)
    body = text[len(SCHEME) :] if link else text
    source, slash, item_id = body.partition("/")
    if link:
        source, item_id = unquote(source), unquote(item_id)
    if not slash or not item_id.strip() or not _SOURCE.match(source):
        raise BadTarget(f"{text!r} is not SOURCE/ITEM (a source's name, '/', an item id) nor {SCHEME}SOURCE/ITEM")
    return source, item_id
