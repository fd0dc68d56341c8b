"""`approval-console doctor`: is everything the console needs in order, and if not, what to fix.

Checks the config, the keyring, each source (reachable, our token accepted, a listing readable), each feedback sink
and pager (its key or secret found), and the database (readable, intact, schema, audit chain, decisions waiting,
whether a console is running on it). Read-only: it never migrates, writes or sends anything (no test page either), and
never prints a token.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from console.cli.text import ADD_SOURCE_FIX, plural
from console.engine import config as config_module
from console.engine import views
from console.engine.config import (
    Config,
    ConfigError,
    FeedbackConfig,
    PagerConfig,
    SourceConfig,
    public_url,
    token_env_var,
    token_fix,
)
from console.engine.secrets import Token, get_token
from console.engine.sources import build_source
from console.engine.sources.base import SourceError
from storage.db import DatabaseDamaged, StorageError, Store
from storage.lock import DataDirBusy, DataDirLock
from storage.schema import SCHEMA_VERSION

OK, WARN, FAIL = "ok", "warn", "FAIL"
SOURCE_CHECK_SECONDS = 15.0
_ADD_SOURCE = f"{ADD_SOURCE_FIX} (or look around with 'approval-console demo')"


@dataclass(frozen=True)
class Check:
    status: str  # ok | warn | FAIL
    subject: str
    detail: str
    fix: str = ""


def _refused(subject: str, exc: ConfigError) -> Check:
    return Check(FAIL, subject, f"{exc.path}: {exc.problem}" + (f" (line {exc.line})" if exc.line else ""), exc.fix)


def check_config(path: Path) -> tuple[Config | None, Check]:
    if not path.exists():
        return None, Check(FAIL, "config", f"{path} does not exist yet", _ADD_SOURCE)
    try:
        config = config_module.load(path)
    except ConfigError as exc:
        return None, _refused("config", exc)
    if not config.sources:
        return config, Check(FAIL, "config", f"{path} lists no sources", _ADD_SOURCE)
    return config, Check(OK, "config", f"{path}: {plural(len(config.sources), 'source')}, operator {config.operator}")


def check_views(config: Config) -> Check:
    """The saved views' filters, as the console checks them when it starts (a bad one stops it)."""
    try:
        views.check_views(config)
    except ConfigError as exc:
        return _refused("views", exc)
    named = [saved.name for saved in config.saved_views()]
    return Check(OK, "views", f"{plural(len(named), 'saved view')}: {', '.join(named)}")


def check_keyring() -> Check:
    from console.engine.secrets import KeyringUnavailable, _in_thread, _keyring_backend_usable

    try:
        usable = _in_thread(_keyring_backend_usable, "probe")
    except (KeyringUnavailable, RuntimeError) as exc:
        usable, reason = False, str(exc)
    else:
        reason = "no usable backend on this machine"
    if usable:
        import keyring

        return Check(OK, "keyring", f"backend {type(keyring.get_keyring()).__name__}")
    return Check(WARN, "keyring", reason, "give each source its token in its environment variable instead")


async def check_source(source: SourceConfig, token: Token | None) -> Check:
    subject, url = f"source {source.name}", public_url(source.url)
    adapter = build_source(source, token)
    try:
        page = await asyncio.wait_for(adapter.fetch(None), SOURCE_CHECK_SECONDS)
    except SourceError as exc:
        if exc.throttled:  # reachable and answering: it asks us to slow down (PROTOCOL.md section 6)
            later = f"in {exc.retry_after:g} s" if exc.retry_after is not None else "later"
            return Check(WARN, subject, f"reachable, but throttling: {exc}", f"the console asks again {later}")
        if exc.auth:
            held = f"the {token.origin} token" if token else "no token"
            return Check(FAIL, subject, f"{url} refused {held}: {exc}", token_fix(source.name))
        return Check(
            FAIL,
            subject,
            f"{url}: {exc}",
            "check that the service runs and the url (and port) in the config are right",
        )
    except TimeoutError:
        return Check(FAIL, subject, f"{url}: no answer within {SOURCE_CHECK_SECONDS:g} s", "check the network")
    finally:
        await adapter.aclose()
    origin = (
        f"token from the {token.origin}" if token else f"no token (none in the keyring or {token_env_var(source.name)})"
    )
    listed = f"{plural(len(page.items), 'item')} listed" + (
        f", {len(page.rejected)} malformed" if page.rejected else ""
    )
    return Check(OK, subject, f"{url} reachable, {origin}, {listed}")


def check_sink(sink: FeedbackConfig, key: Token | None) -> Check:
    """A [[feedback]] sink: its SDK installed and its key found (the tool itself is only reached when labels go)."""
    subject = f"feedback {sink.name}"
    module = "langsmith" if sink.kind == "langsmith" else "langfuse"
    if importlib.util.find_spec(module) is None:
        return Check(FAIL, subject, f"the {module} SDK is not installed", "pip install 'approval-console[feedback]'")
    if key is None:
        return Check(
            FAIL,
            subject,
            f"no API key (none in the keyring or {token_env_var(sink.name)}): labels wait here until it has one",
            token_fix(sink.name),
        )
    return Check(OK, subject, f"{sink.kind} at {public_url(sink.endpoint)}, key from the {key.origin}")


def _ahead(pager: PagerConfig) -> str:
    return "deadline_warning" if pager.deadline_seconds is None else f"{pager.deadline_seconds:g} s"


def check_pager(pager: PagerConfig, secret: Token | None) -> Check:
    """A [[pager]]: where it posts and whether it has a secret (none is fine for a webhook that needs none; doctor
    sends no page)."""
    host = urlsplit(pager.url).netloc  # not the path: an ntfy topic is as good as a password to whoever reads it
    risks = ", ".join(pager.risks) or "no risks"
    what = f"{pager.kind} at {host}: new {risks} items, deadlines {_ahead(pager)} ahead"
    if secret is None:
        return Check(OK, f"pager {pager.name}", f"{what}; no secret, posted without Authorization")
    return Check(OK, f"pager {pager.name}", f"{what}; secret from the {secret.origin}")


def check_database(data_dir: Path, db_name: str) -> list[Check]:
    path = data_dir / db_name
    if not path.exists():
        return [Check(OK, "database", f"none yet at {path}; it is made on the first run")]
    checks: list[Check] = []
    try:
        store = Store(path, readonly=True, check=True)
    except DatabaseDamaged as exc:
        return [Check(FAIL, "database", f"{path} is damaged: {exc.problem}", "start the console with --start-clean")]
    except StorageError as exc:
        return [Check(FAIL, "database", str(exc), "check the permissions of the data dir")]
    try:
        version = store.schema_version()
        verification = store.audit.verify()
        waiting = store.outbox.waiting_count() if version else 0
    finally:
        store.close()
    if version > SCHEMA_VERSION:
        checks.append(
            Check(FAIL, "database", f"schema {version} is newer than this console's {SCHEMA_VERSION}", "upgrade")
        )
    else:
        later = "" if version == SCHEMA_VERSION else f" (schema {version}: migrated on the next start)"
        checks.append(Check(OK, "database", f"{path} intact{later}; {plural(waiting, 'decision')} waiting to sync"))
    if verification.ok:
        checks.append(Check(OK, "audit", f"{plural(verification.records, 'record')}, chain intact"))
    else:
        checks.append(
            Check(
                FAIL,
                "audit",
                f"broken at record {verification.first_bad}: {verification.problem}",
                "keep a copy of the database as evidence; see 'approval-console audit verify'",
            )
        )
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except DataDirBusy:
        checks.append(Check(OK, "console", "a console is running on this data dir"))
    else:
        lock.release()
    return checks


def run(
    config_path: Path, data_dir: Path, db_name: str, token_for: Callable[[str], Token | None] = get_token
) -> list[Check]:
    config, config_check = check_config(config_path)
    checks = [config_check, check_keyring()]
    if config is not None:
        checks.append(check_views(config))

        async def sources() -> list[Check]:
            return list(await asyncio.gather(*(check_source(s, token_for(s.name)) for s in config.sources)))

        checks += asyncio.run(sources())
        checks += [check_sink(sink, token_for(sink.name)) for sink in config.feedback]
        checks += [check_pager(pager, token_for(pager.name)) for pager in config.pager]
    checks += check_database(data_dir, db_name)
    return checks


def report(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"{check.status:<5} {check.subject:<20} {check.detail}")
        if check.fix and check.status != OK:
            lines.append(f"{'':<5} {'':<20} fix: {check.fix}")
    failed = sum(1 for c in checks if c.status == FAIL)
    lines.append("all good" if not failed else f"{plural(failed, 'problem')} to fix")
    return "\n".join(lines)
