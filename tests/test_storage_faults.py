"""Storage fails safe: one console per data dir, damaged files detected and kept aside, full and read-only disks refuse
decisions out loud, every earlier schema migrates, and `audit verify` catches edited, deleted and reordered records.

Disks are real: a tiny tmpfs filled to the last byte and an immutable file when the tests run as root (they can
mount and chattr); otherwise SQLite's own page limit (a real "database or disk is full") and file permissions.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlite_utils

from console.cli import main
from console.engine.config import Config
from console.engine.session import DB_NAME, Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from storage import audit
from storage.db import DAMAGED_SUFFIX, DatabaseDamaged, DecisionSyncUpdate, StorageError, Store
from storage.lock import DataDirBusy
from storage.records import Risk, SyncState, Verdict
from storage.schema import MIGRATIONS, SCHEMA_VERSION
from tests.conftest import eventually, make_config, screen_text
from tests.factories import decision as decision_for
from tests.factories import item

_ROOT = Path(__file__).resolve().parent.parent


def _python() -> str:
    return sys.executable


def _quiet_config(fleet: Fleet) -> Config:
    """The fleet config with no undo window, so a recorded decision is due at once."""
    config = make_config(fleet)
    return Config(operator=config.operator, sources=config.sources, undo_seconds=0.0)


def _write_config(path: Path, fleet: Fleet) -> Path:
    path.write_text(f'operator = "alice"\n\n[[sources]]\nname = "fleet"\nurl = "{fleet.url}"\n', encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------------- lock


async def test_a_second_console_on_the_same_data_dir_is_told_who_holds_it(
    fleet: Fleet, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = Session(_quiet_config(fleet), data_dir, token_for=lambda _n: None)
    with pytest.raises(DataDirBusy, match="another approval-console is using") as caught:
        Session(_quiet_config(fleet), data_dir, token_for=lambda _n: None)
    assert f"pid {os.getpid()}" in str(caught.value) and "--data-dir" in str(caught.value)

    config = _write_config(tmp_path / "config.toml", fleet)
    assert main(["--config", str(config), "--data-dir", str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert "another approval-console is using" in err and "fix:" in err

    await first.aclose()
    again = Session(_quiet_config(fleet), data_dir, token_for=lambda _n: None)  # released with the session
    await again.aclose()


def test_the_lock_is_held_across_processes_and_freed_when_the_holder_is_killed(fleet: Fleet, data_dir: Path) -> None:
    holder = subprocess.Popen(
        [
            _python(),
            "-c",
            "import sys, time; from pathlib import Path; from storage.lock import DataDirLock;"
            "lock = DataDirLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True); time.sleep(60)",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=_ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DataDirBusy, match=f"pid {holder.pid}"):
            Session(_quiet_config(fleet), data_dir, token_for=lambda _n: None)
    finally:
        holder.kill()
        holder.wait()
    session = Session(_quiet_config(fleet), data_dir, token_for=lambda _n: None)  # SIGKILL left no stale lock
    session.lock.release()
    session.store.close()
    session.background_store.close()


# ------------------------------------------------------------------------------------------------- corruption


def _damage_pages(path: Path) -> None:
    """Overwrite the middle of a checkpointed database file: real on-disk damage, as a bad sector leaves."""
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(size // 2)
        handle.write(b"\xa5" * 8192)


def _damaged(path: Path, damage: str) -> bytes:
    """A damaged database at `path`; returns its bytes, to show nothing touched them."""
    path.parent.mkdir(parents=True)
    if damage == "not a database":
        path.write_bytes(b"this was a database until a bad copy\n" * 200)
    else:
        _populated(path)
        _damage_pages(path)
    return path.read_bytes()


def _populated(path: Path, count: int = 300) -> None:
    store = Store(path)
    store.items.apply_changes("billing", [item(f"itm_{i}", policy="p" * 200) for i in range(count)], [], "1")
    store.close()  # the last connection checkpoints the WAL into the file


@pytest.mark.parametrize("damage", ["not a database", "damaged pages"])
async def test_a_damaged_database_is_reported_and_kept_aside_only_when_asked(
    fleet: Fleet, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    path = data_dir / DB_NAME
    before = _damaged(path, damage)

    with pytest.raises(DatabaseDamaged) as caught:
        Session(_quiet_config(fleet), data_dir, token_for=lambda _n: None)
    assert "--start-clean" in str(caught.value) and ".recover" in str(caught.value)
    assert path.read_bytes() == before, "nothing is changed until the operator asks"
    assert not list(data_dir.glob(f"*{DAMAGED_SUFFIX}*"))  # noqa: ASYNC240 - a test, reading its own temp dir

    # The command line refuses a file that is no database before starting; damage that only the integrity check
    # finds is shown, and every decision refused, right after the first frame (tests/test_database_check.py).
    if damage == "not a database":
        config = _write_config(tmp_path / "config.toml", fleet)
        assert main(["--config", str(config), "--data-dir", str(data_dir)]) == 1
        err = capsys.readouterr().err
        assert "is damaged" in err and "fix: run approval-console with --start-clean" in err
        assert path.read_bytes() == before

    session = Session(_quiet_config(fleet), data_dir, token_for=lambda _n: None, start_clean=True)
    try:
        assert session.set_aside_as is not None and session.set_aside_as.read_bytes() == before
        assert session.set_aside_as.name.startswith(DB_NAME + DAMAGED_SUFFIX)
        assert session.store.integrity_check() == "ok" and session.store.queue.count() == 0
        await session.poll_once()
        assert session.store.queue.count() == 6, "the clean database fills from the sources again"
    finally:
        await session.aclose()


def test_an_unreadable_database_file_is_a_clear_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    path.mkdir()  # a directory where the file should be: SQLite cannot open it
    with pytest.raises(StorageError, match="cannot be opened"):
        Store(path)


# ------------------------------------------------------------------------------------------ full and read-only


class Disk:
    """A data dir on a disk the test can fill or make read-only, for real where the privileges allow."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.mounted = False
        self.privileged = hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None
        self._filler = root / "filler"
        self._immutable: list[Path] = []

    def mount(self) -> None:
        if not self.privileged:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(self.root)], check=False)
        self.mounted = done.returncode == 0

    def fill(self, store: Store) -> None:
        """Leave no room for another write: every byte of the tmpfs, or SQLite's page limit on `store`."""
        if self.mounted:
            fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                for chunk in (65536, 1):
                    try:
                        while True:
                            os.write(fd, b"\0" * chunk)
                    except OSError:
                        pass
            finally:
                os.close(fd)
            return
        # No mount here: cap the database at its current size, then use up the room its pages still have with
        # decisions (on items of a source nobody syncs), so the next decision needs a page it cannot get.
        fillers = [item(f"filler-{n}", source="filler") for n in range(3000)]
        store.items.apply_changes("filler", fillers, [], None)
        conn = store._conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StorageError, match="full"):  # noqa: PT012 - the write that no longer fits raises
            for filler in fillers:
                store.outbox.record(decision_for(filler))

    def free(self, store: Store) -> None:
        if self.mounted:
            self._filler.unlink()
        else:
            store._conn.execute("PRAGMA max_page_count = 1073741823")

    def make_read_only(self) -> Callable[[], None]:
        """Make the database refuse writes; returns how to undo it."""
        files = [self.data_dir / DB_NAME, self.data_dir / (DB_NAME + "-wal")]  # not -shm: SIGBUS on its mmap
        chattr = self.privileged and shutil.which("chattr") is not None
        if chattr and subprocess.run(["chattr", "+i", *map(str, files)], check=False).returncode == 0:
            self._immutable = files
            return self._undo_immutable
        for path in files:
            path.chmod(0o444)

        def writable_again() -> None:
            for path in files:
                path.chmod(0o644)

        return writable_again

    def _undo_immutable(self) -> None:
        subprocess.run(["chattr", "-i", *map(str, self._immutable)], check=True)
        self._immutable = []

    def unmount(self) -> None:
        if self._immutable:
            self._undo_immutable()
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], check=True)
            self.mounted = False


@contextmanager
def small_disk(tmp_path: Path) -> Iterator[Disk]:
    disk = Disk(tmp_path / "disk")
    disk.mount()
    try:
        yield disk
    finally:
        disk.unmount()


def _decided(session: Session, item_id: str) -> bool:
    return any(row.decision.item_id == item_id for row in session.store.outbox.decisions(limit=10_000))


async def test_on_a_full_disk_a_decision_is_refused_on_screen_and_never_shown_recorded(
    fleet: Fleet, tmp_path: Path
) -> None:
    with small_disk(tmp_path) as disk:
        session = Session(_quiet_config(fleet), disk.data_dir, token_for=lambda _n: None)
        app = ApprovalApp(session, background=False)
        async with app.run_test(size=(140, 40), notifications=True) as pilot:
            await session.poll_once()
            app.main.queue_changed()
            await eventually(lambda: app.main.shown is not None, what="an item shown")
            while app.main.shown is not None and app.main.shown.risk is Risk.critical:
                await pilot.press("j")  # one key approves a non-critical item; a critical one asks for typing
            shown = app.main.shown
            assert shown is not None
            disk.fill(session.store)
            await pilot.pause(1.6)  # past the settle guard of a freshly shown item
            app.clear_notifications()  # the new-item alerts: only what the key press says is on screen now
            await pilot.press("a")
            await pilot.pause(0.1)
            text = screen_text(app)
            assert "Not recorded" in text and "full" in text, text
            assert "Approved:" not in text
            assert not _decided(session, shown.id), "nothing half-written"
            found = session.store.items.get(shown.source, shown.id)
            assert found is not None and found[1] == "pending", "the item is still waiting for a decision"

            disk.free(session.store)
            await pilot.pause(0.5)
            await pilot.press("a")
            await eventually(lambda: _decided(session, shown.id), what="the decision recorded once there is room")
            assert session.store.integrity_check() == "ok" and session.store.audit.verify().ok


def test_on_a_full_database_a_big_decision_is_refused_and_rolled_back(tmp_path: Path) -> None:
    """SQLite's page limit is the same SQLITE_FULL a full disk gives, on any machine."""
    store = Store(tmp_path / "console.db")
    it = item("a")
    store.items.apply_changes("billing", [it], [], "1")
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StorageError, match="is full"):
        store.outbox.record(decision_for(it, Verdict.reject, reason_code="unsafe", comment="why " * 5000))
    assert store.outbox.waiting_count() == 0 and store.queue.count() == 1
    assert store.audit.verify().records == 0
    store.close()


async def test_on_a_read_only_disk_a_decision_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    disk = Disk(tmp_path / "disk")  # the test's own disk (tmpfs ignores the immutable flag for open files)
    try:
        session = Session(_quiet_config(fleet), disk.data_dir, token_for=lambda _n: None)
        await session.poll_once()
        row = session.store.queue.rows(0, 1)[0]
        shown = session.store.items.get(row.source, row.id)
        assert shown is not None
        restore = disk.make_read_only()
        try:
            if disk._immutable:  # the disk went read-only under an open console
                with pytest.raises(StorageError, match=r"disk failed|cannot be written"):
                    session.decide(shown[0], Verdict.approve)
            else:  # a read-only file: SQLite opens it read-only and refuses the write
                reopened = Store(disk.data_dir / DB_NAME)
                with pytest.raises(StorageError, match="cannot be written"):
                    reopened.outbox.record(decision_for(shown[0]))
                reopened.close()
        finally:
            restore()
        assert session.store.outbox.waiting_count() == 0
        assert session.store.integrity_check() == "ok"
        session.decide(shown[0], Verdict.approve)  # writable again: the same decision goes through
        assert session.store.outbox.waiting_count() == 1
        await session.aclose()
    finally:
        disk.unmount()


# ------------------------------------------------------------------------------------------------- migrations


def _fill_at_version(db: sqlite_utils.Database) -> dict[str, str]:
    """Representative rows written with only the columns this version has (migrations add, never remove)."""
    pending, decided = item("itm_pending", source="billing"), item("itm_decided", source="billing", risk="critical")
    decision = decision_for(decided)

    def row(table: str, values: dict[str, object]) -> None:
        columns = set(db.table(table).columns_dict)
        db.table(table).insert({k: v for k, v in values.items() if k in columns})

    for it, state in ((pending, "pending"), (decided, "decided")):
        row(
            "items",
            {
                "source": "billing",
                "id": it.id,
                "state": state,
                "kind": it.kind,
                "agent": it.agent,
                "workflow": it.workflow,
                "action_name": it.action_name,
                "risk": it.risk.value,
                "risk_order": 3 - it.risk.rank,
                "confidence": it.confidence,
                "created_at": it.created_at.timestamp(),
                "expires_at": None if it.expires_at is None else it.expires_at.timestamp(),
                "expires_sort": 1e18 if it.expires_at is None else it.expires_at.timestamp(),
                "digest": it.digest,
                "payload": it.model_dump_json(),
                "first_seen_at": 1.0,
                "updated_at": 1.0,
            },
        )
    row(
        "decisions",
        {
            "id": decision.id,
            "source": "billing",
            "item_id": decided.id,
            "item_digest": decided.digest,
            "verdict": "approve",
            "operator": "alice",
            "decided_at": decision.decided_at.isoformat(),
            "sync_state": "pending",
            "attempts": 0,
            "next_attempt_at": 0.0,
            "detail": "",
            "updated_at": 1.0,
            "seen": 0,
        },
    )
    row(
        "quarantine",
        {
            "source": "billing",
            "item_id": "?bad",
            "reason": "agent: Field required",
            "excerpt": "{}",
            "seen_at": 1.0,
            "times": 1,
        },
    )
    row("cursors", {"source": "billing", "cursor": "c-41"})
    audit.append(
        db.conn,
        kind="decision",
        operator="alice",
        source="billing",
        item_id=decided.id,
        decision_id=decision.id,
        item_digest=decided.digest,
        body=decision.wire_body(),
    )
    return {"pending": pending.id, "decided": decided.id, "decision": decision.id}


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
def test_every_earlier_schema_migrates_with_its_data(tmp_path: Path, version: int) -> None:
    path = tmp_path / "console.db"
    conn = sqlite3.connect(path, isolation_level=None)
    db = sqlite_utils.Database(conn)
    for migration in MIGRATIONS[:version]:
        migration(db)
    conn.execute(f"PRAGMA user_version = {version}")
    ids = _fill_at_version(db) if version > 0 else {}
    conn.close()

    store = Store(path, check=True)
    assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.integrity_check() == "ok"
    verification = store.audit.verify()
    assert verification.ok, verification.problem
    if version > 0:
        assert [r.id for r in store.queue.rows(0, 10)] == [ids["pending"]]
        found = store.items.get("billing", ids["decided"])
        assert found is not None and found[1] == "decided"
        assert [d.id for d in store.outbox.due(10, ["billing"])] == [ids["decision"]]
        assert [q.item_id for q in store.quarantine.rows()] == ["?bad"]
        assert store.items.cursor("billing") == "c-41" and verification.records == 1
        pending = store.items.get("billing", ids["pending"])
        assert pending is not None
        store.outbox.record(decision_for(pending[0], Verdict.reject, reason_code="unsafe"))
        store.outbox.record_results([DecisionSyncUpdate(ids["decision"], SyncState.applied, "applied", "")])
        assert store.outbox.waiting_count() == 1 and store.audit.verify().records == 3
    store.close()


# ------------------------------------------------------------------------------------------------------ audit


def _audited(data_dir: Path) -> Path:
    """A database with five audit records: three decisions, two outcomes."""
    path = data_dir / DB_NAME
    store = Store(path)
    items = [item(f"itm_{n}") for n in range(3)]
    store.items.apply_changes("billing", items, [], "1")
    decisions = [decision_for(it) for it in items]
    for decision in decisions:
        store.outbox.record(decision)
    store.outbox.record_results(
        [
            DecisionSyncUpdate(decisions[0].id, SyncState.applied, "applied", ""),
            DecisionSyncUpdate(decisions[1].id, SyncState.conflict, "conflict", "already decided elsewhere by bob"),
        ]
    )
    store.close()
    return path


def _tamper(path: Path, *statements: str) -> None:
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("DROP TRIGGER audit_no_delete")
    for statement in statements:
        raw.execute(statement)
    raw.close()


@pytest.mark.parametrize(
    ("tampering", "first_bad", "problem"),
    [
        ("edited", 2, "record 2 was changed after it was written"),
        ("deleted", 3, "record 3 follows 1: a record is missing"),
        ("reordered", 2, "record 2 does not link to the record before it"),
        ("cut from the end", 5, "has no audit record: records after 4 were removed"),
    ],
)
def test_audit_verify_reports_the_first_broken_record(
    data_dir: Path, capsys: pytest.CaptureFixture[str], tampering: str, first_bad: int, problem: str
) -> None:
    path = _audited(data_dir)
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.startswith("OK: 5 audit records, chain intact")
    statements = {
        "edited": ["UPDATE audit SET operator = 'mallory' WHERE seq = 2"],
        "deleted": ["DELETE FROM audit WHERE seq = 2"],
        # Swap records 2 and 3 through a free number: each keeps its own hashes, in the other's place.
        "reordered": [
            "UPDATE audit SET seq = 1000 WHERE seq = 2",
            "UPDATE audit SET seq = 2 WHERE seq = 3",
            "UPDATE audit SET seq = 3 WHERE seq = 1000",
        ],
        "cut from the end": ["DELETE FROM audit WHERE seq = 5"],
    }[tampering]
    _tamper(path, *statements)
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"BROKEN at record {first_bad}: ") and problem in out, out


def test_audit_verify_changes_nothing(data_dir: Path) -> None:
    path = _audited(data_dir)
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 0")  # an old schema: verify must not migrate it
    raw.commit()
    raw.close()
    before = path.read_bytes()
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0
    assert path.read_bytes() == before
