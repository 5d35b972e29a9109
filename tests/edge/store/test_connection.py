"""The store's connection against real SQLite files: settings, a closed store, migrations."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.store.helpers import device, pragma, raw, tables, twin
from twinplane.edge.store import DEVICE, EdgeStore, StoreError, StoreVersionError, migrations
from twinplane.errors import TwinplaneError


def test_open_creates_parents_and_configures_sqlite(tmp_path: Path) -> None:
    """Opening creates parent folders and sets WAL, FULL sync, foreign keys and busy_timeout."""
    path = tmp_path / "a" / "b" / "edge.db"
    with EdgeStore.open(path, busy_timeout_ms=1234) as s:
        assert s.path == path
        assert s.pragmas() == {
            "journal_mode": "wal",
            "synchronous": 2,
            "foreign_keys": 1,
            "busy_timeout": 1234,
            "user_version": migrations.LATEST,
        }
    assert pragma(path, "application_id") == migrations.APPLICATION_ID
    assert tables(path) == {
        "objects",
        "mappers",
        "twins",
        "device_states",
        "events_outbox",
        "write_errors",
        "cloud_outbox",
        "device_events",
        "calls",
        "alarms",
        "firmware",
    }


def test_closed_store_raises_store_error(store: EdgeStore) -> None:
    """A call on a closed store raises StoreError, a TwinplaneError, not a sqlite3 error."""
    store.close()
    with pytest.raises(StoreError, match="list_objects") as info:
        store.list_objects(DEVICE)
    assert isinstance(info.value, TwinplaneError)
    assert info.value.db_path == str(store.path)


# -- migrations -----------------------------------------------------------------------------

# Schema version 1 as it was released: registry only, no twins, states or outbox.
V1_SCHEMA = """
PRAGMA application_id = 1953984112;
CREATE TABLE objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    generation INTEGER NOT NULL CHECK (generation >= 1), updated_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE mappers (
    name TEXT NOT NULL PRIMARY KEY, protocol TEXT NOT NULL, address TEXT NOT NULL,
    version TEXT NOT NULL, api_version TEXT NOT NULL, state TEXT NOT NULL,
    registered_ms INTEGER NOT NULL
);
INSERT INTO objects VALUES ('Device', 'default', 'a', '{"spec":{}}', 4, 100);
INSERT INTO mappers VALUES ('m', 'modbus', '/run/m.sock', 'v1', 'v1beta1', 'ok', 7);
PRAGMA user_version = 1;
"""


def test_migrations_are_numbered_one_by_one() -> None:
    """Migration steps are versions 1..N in order, and LATEST is the last one."""
    assert [m.version for m in migrations.MIGRATIONS] == list(
        range(1, len(migrations.MIGRATIONS) + 1)
    )
    assert migrations.MIGRATIONS[-1].version == migrations.LATEST
    assert migrations.APPLICATION_ID == 1953984112  # V1_SCHEMA below spells it out


@pytest.mark.parametrize("kind", ["zero-byte file", "empty database"])
def test_version_zero_database_is_migrated_to_latest(tmp_path: Path, kind: str) -> None:
    """A new or empty database (version 0, no tables) gets the whole schema."""
    path = tmp_path / "edge.db"
    path.touch()
    if kind == "empty database":
        with raw(path) as conn:
            conn.execute("CREATE TABLE t (x)")
            conn.execute("DROP TABLE t")
        assert path.stat().st_size > 0
    with EdgeStore.open(path) as s:
        assert s.pragmas()["user_version"] == migrations.LATEST
        s.save_twins([("default/a", "temp", twin("1"))])
    assert "events_outbox" in tables(path)


def test_v1_database_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    """A version-1 database gains the later tables and keeps its manifests and mappers."""
    path = tmp_path / "edge.db"
    with raw(path) as conn:
        conn.executescript(V1_SCHEMA)
    assert tables(path) == {"objects", "mappers"}
    with EdgeStore.open(path) as s:
        assert s.pragmas()["user_version"] == migrations.LATEST
        obj = s.get_object(DEVICE, "default", "a")
        assert obj is not None
        assert (obj.body, obj.generation, obj.updated_ms) == ({"spec": {}}, 4, 100)
        assert [m.address for m in s.list_mappers()] == ["/run/m.sock"]
        s.save_twins([("default/a", "temp", twin("1"))])
        s.put_state("default/a", "online", "t")
        assert s.append_outbox("x", b"y") == 1
        assert s.delete_object(DEVICE, "default", "a")
        assert s.load_twins() == {}
        assert s.list_states() == []
    assert tables(path) == {
        "objects",
        "mappers",
        "twins",
        "device_states",
        "events_outbox",
        "write_errors",
        "cloud_outbox",
        "device_events",
        "calls",
        "alarms",
        "firmware",
    }


def test_reopening_a_current_database_changes_nothing(tmp_path: Path) -> None:
    """Reopening an up-to-date database applies no step and keeps the data."""
    path = tmp_path / "edge.db"
    with EdgeStore.open(path) as s:
        s.put_object(DEVICE, "default", "a", device("a"))
    with raw(path) as conn:
        assert migrations.migrate(conn) == []
    with EdgeStore.open(path) as s:
        assert s.pragmas()["user_version"] == migrations.LATEST
        assert s.get_object(DEVICE, "default", "a") is not None


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_future_schema_is_refused_untouched(tmp_path: Path, journal: str) -> None:
    """A database from a newer release raises StoreVersionError and keeps every byte."""
    path = tmp_path / "edge.db"
    EdgeStore.open(path).close()
    with raw(path) as conn:
        conn.execute(f"PRAGMA journal_mode = {journal}")
        conn.execute("CREATE TABLE from_the_future (x)")
        conn.execute(f"PRAGMA user_version = {migrations.LATEST + 1}")
    before = path.read_bytes()
    with pytest.raises(StoreVersionError, match="newer") as info:
        EdgeStore.open(path)
    assert (info.value.found, info.value.supported) == (migrations.LATEST + 1, migrations.LATEST)
    assert isinstance(info.value, StoreError)
    assert path.read_bytes() == before
    assert pragma(path, "journal_mode") == journal


def test_foreign_database_is_refused_untouched(tmp_path: Path) -> None:
    """Another program's SQLite file (EdgeCore's edgecore.db, say) is refused and left as is."""
    path = tmp_path / "edgecore.db"
    with raw(path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, type TEXT, value TEXT)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a twinplane edge database"):
        EdgeStore.open(path)
    assert path.read_bytes() == before
    assert tables(path) == {"meta"}


def test_non_database_file_is_refused_untouched(tmp_path: Path) -> None:
    """A file that is not SQLite at all raises StoreError and is not modified."""
    path = tmp_path / "edge.db"
    path.write_bytes(b"not a database, " * 512)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="cannot open"):
        EdgeStore.open(path)
    assert path.read_bytes() == before


def test_failed_migration_step_is_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that fails leaves the database at the previous version with no partial change."""
    path = tmp_path / "edge.db"
    EdgeStore.open(path).close()
    broken = migrations.Migration(
        migrations.LATEST + 1, "broken", ("CREATE TABLE half_done (x)", "NOT SQL AT ALL")
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, broken))
    monkeypatch.setattr(migrations, "LATEST", broken.version)
    with pytest.raises(StoreError, match="syntax error"):
        EdgeStore.open(path)
    assert pragma(path, "user_version") == broken.version - 1
    assert "half_done" not in tables(path)
