"""The journal: one SQLite database (WAL) that is the single source of truth for every share.

Every step of a share is a state transition recorded here before or after the side effect it
guards, so a crash at any instant resumes without losing or duplicating anything. The daemon and
the CLI both open it; `data_version` tells one that the other wrote.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any


class State(StrEnum):
    PENDING = "pending"  # seen, settling or preparing
    UPLOADING = "uploading"  # remote path recorded, transfer under way
    LIVE = "live"  # link created and handed out
    REVOKING = "revoking"  # deadline passed or revocation asked, not yet confirmed
    GONE = "gone"  # revoked and deleted: the photo vanished
    FAILED = "failed"  # with a reason


ACTIVE = (State.PENDING, State.UPLOADING, State.LIVE, State.REVOKING)

# The only moves a share may make. Anything else is a bug, caught by InvalidTransition.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.PENDING, State.UPLOADING, State.REVOKING, State.FAILED}),
    State.UPLOADING: frozenset({State.LIVE, State.REVOKING, State.FAILED}),
    State.LIVE: frozenset({State.REVOKING}),
    State.REVOKING: frozenset({State.GONE}),
    State.GONE: frozenset(),
    State.FAILED: frozenset(),
}


class InvalidTransition(Exception):
    pass


def check_transition(src: State, dst: State) -> None:
    if dst not in TRANSITIONS[src]:
        raise InvalidTransition(f"a share cannot go from {src} to {dst}")


SCHEMA_VERSION = 2

# Migrations: index i takes the schema from version i to i + 1. Append only.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE shares (
        id              TEXT PRIMARY KEY,
        source          TEXT NOT NULL,
        source_size     INTEGER NOT NULL,
        source_mtime_ns INTEGER NOT NULL,
        content_hash    TEXT,
        backend         TEXT NOT NULL,
        prepared_path   TEXT,
        remote_path     TEXT,
        url             TEXT,
        link_key        TEXT,
        lifetime_s      INTEGER NOT NULL,
        state           TEXT NOT NULL,
        reason          TEXT,
        created_at      REAL NOT NULL,
        updated_at      REAL NOT NULL,
        shared_at       REAL,
        expires_at      REAL,
        revoked_at      REAL,
        revoke_reason   TEXT,
        announced       INTEGER NOT NULL DEFAULT 0,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL,
        last_error      TEXT
    );
    CREATE INDEX shares_state ON shares(state, expires_at);
    CREATE UNIQUE INDEX shares_link_key ON shares(link_key) WHERE link_key IS NOT NULL;
    -- What the watcher has already handled, so a rescan never shares a file twice.
    -- share_id NULL: the file was there on the first run (present, not a share).
    CREATE TABLE seen (
        path      TEXT PRIMARY KEY,
        size      INTEGER NOT NULL,
        mtime_ns  INTEGER NOT NULL,
        share_id  TEXT,
        seen_at   REAL NOT NULL
    );
    -- Small facts the daemon publishes for the CLI (e.g. the link server's base URL).
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    """
    -- folder: the share folder's subfolder the file landed in ("" for the top), which may set
    -- the lifetime ("10m") or the kind of link ("once").
    ALTER TABLE shares ADD COLUMN folder TEXT NOT NULL DEFAULT '';
    -- View-once links and view receipts (local backend).
    ALTER TABLE shares ADD COLUMN once INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shares ADD COLUMN views INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shares ADD COLUMN first_view_at REAL;
    ALTER TABLE shares ADD COLUMN revealed_at REAL;
    ALTER TABLE shares ADD COLUMN viewer_net TEXT;
    ALTER TABLE shares ADD COLUMN sender_key TEXT;
    -- Backend-specific facts about this share, as JSON (e.g. a server-side expiry was set).
    ALTER TABLE shares ADD COLUMN extra TEXT;
    """,
]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Share:
    id: str
    source: str
    source_size: int
    source_mtime_ns: int
    content_hash: str | None
    backend: str
    prepared_path: str | None
    remote_path: str | None
    url: str | None
    link_key: str | None
    lifetime_s: int
    state: State
    reason: str | None
    created_at: float
    updated_at: float
    shared_at: float | None
    expires_at: float | None
    revoked_at: float | None
    revoke_reason: str | None
    announced: int
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    folder: str = ""
    once: int = 0
    views: int = 0
    first_view_at: float | None = None
    revealed_at: float | None = None
    viewer_net: str | None = None
    sender_key: str | None = None
    extra: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Share:
        data = dict(row)
        data["state"] = State(data["state"])
        return cls(**data)

    @property
    def name(self) -> str:
        return Path(self.source).name

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "url": self.url,
            "state": str(self.state),
            "backend": self.backend,
            "created_at": iso(self.created_at),
            "shared_at": iso(self.shared_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "lifetime_s": self.lifetime_s,
            "reason": self.reason or self.last_error,
            "once": bool(self.once),
            "views": self.views,
            "first_view_at": iso(self.first_view_at),
            "viewer_net": self.viewer_net,  # "same network" or "internet": nothing more
        }


class Journal:
    """Thread-safe: each thread gets its own connection to the same database file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The journal holds every link, and a link is a secret: keep it to this user.
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._local = threading.local()
        self.created = not path.exists()
        if self.created:
            path.touch(mode=0o600)
        self._migrate()

    # -- connection handling -------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a link recorded as handed out must survive a power cut, not only a crash.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _migrate(self) -> None:
        with self._tx() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"journal {self.path} is from a newer fadelink (schema {version}); upgrade"
                )
            for i in range(version, SCHEMA_VERSION):
                for stmt in MIGRATIONS[i].split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def data_version(self) -> int:
        """Changes whenever another connection (the CLI, another thread) commits."""
        return int(self._conn().execute("PRAGMA data_version").fetchone()[0])

    # -- reading -------------------------------------------------------------------------

    def get(self, share_id: str) -> Share | None:
        row = self._conn().execute("SELECT * FROM shares WHERE id=?", (share_id,)).fetchone()
        return Share.from_row(row) if row else None

    def shares(self, states: Iterable[State] | None = None) -> list[Share]:
        if states is None:
            rows = self._conn().execute("SELECT * FROM shares ORDER BY created_at, rowid")
        else:
            wanted = [str(s) for s in states]
            marks = ",".join("?" * len(wanted))
            rows = self._conn().execute(
                f"SELECT * FROM shares WHERE state IN ({marks}) ORDER BY created_at, rowid",
                wanted,
            )
        return [Share.from_row(r) for r in rows]

    def by_link_key(self, key: str) -> Share | None:
        row = self._conn().execute("SELECT * FROM shares WHERE link_key=?", (key,)).fetchone()
        return Share.from_row(row) if row else None

    def due(self, now: float) -> list[Share]:
        """Live links past their deadline, and revocations whose retry time has come."""
        rows = self._conn().execute(
            "SELECT * FROM shares WHERE (state='live' AND expires_at <= ?)"
            " OR (state='revoking' AND COALESCE(next_attempt_at, 0) <= ?)"
            " ORDER BY expires_at",
            (now, now),
        )
        return [Share.from_row(r) for r in rows]

    def next_deadline(self) -> float | None:
        row = (
            self._conn()
            .execute(
                "SELECT MIN(t) FROM ("
                " SELECT MIN(expires_at) AS t FROM shares WHERE state='live'"
                " UNION ALL"
                " SELECT MIN(COALESCE(next_attempt_at, 0)) FROM shares WHERE state='revoking')"
            )
            .fetchone()
        )
        return row[0]

    def seen(self, path: str) -> tuple[int, int] | None:
        row = (
            self._conn().execute("SELECT size, mtime_ns FROM seen WHERE path=?", (path,)).fetchone()
        )
        return (row[0], row[1]) if row else None

    def count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM shares").fetchone()[0])

    # -- writing -------------------------------------------------------------------------

    def mark_present(self, entries: Iterable[tuple[str, int, int]], now: float) -> None:
        """Files already in the folder on the first run: recorded, never shared."""
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO seen(path, size, mtime_ns, share_id, seen_at)"
                " VALUES (?, ?, ?, NULL, ?)",
                [(p, s, m, now) for p, s, m in entries],
            )

    def forget_seen(self, path: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM seen WHERE path=?", (path,))

    def add_pending(
        self,
        source: str,
        size: int,
        mtime_ns: int,
        *,
        backend: str,
        lifetime_s: int,
        now: float,
        remember: bool = True,
        content_hash: str | None = None,
        folder: str = "",
        once: bool = False,
    ) -> tuple[Share, bool] | None:
        """Record a new share: (share, False); None when this file version was already taken.

        With `content_hash`, the same content already shared from the same folder and still
        alive is reused: (that share, True). The seen-row and the share are written in one
        transaction: that is what makes a file shared exactly once however many events or
        rescans report it.
        """
        share_id = secrets.token_hex(4)
        duplicate = False
        with self._tx() as conn:
            if remember:
                row = conn.execute(
                    "SELECT size, mtime_ns FROM seen WHERE path=?", (source,)
                ).fetchone()
                if row is not None and (row[0], row[1]) == (size, mtime_ns):
                    return None
            if content_hash is not None and not once:
                row = conn.execute(
                    "SELECT id FROM shares WHERE content_hash=? AND folder=? AND once=0"
                    " AND backend=? AND state IN ('pending', 'uploading', 'live')"
                    " AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at DESC",
                    (content_hash, folder, backend, now),
                ).fetchone()
                if row is not None:
                    share_id, duplicate = row[0], True
            if remember:
                conn.execute(
                    "INSERT OR REPLACE INTO seen(path, size, mtime_ns, share_id, seen_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (source, size, mtime_ns, share_id, now),
                )
            if not duplicate:
                conn.execute(
                    "INSERT INTO shares(id, source, source_size, source_mtime_ns, backend,"
                    " lifetime_s, state, created_at, updated_at, content_hash, folder, once)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (share_id, source, size, mtime_ns, backend, lifetime_s, "pending", now, now,
                     content_hash, folder, int(once)),
                )
        share = self.get(share_id)
        assert share is not None
        return share, duplicate

    def forget_missing(self, present: set[str], now: float) -> int:
        """Drop seen-rows of files no longer in the folder (removed while stopped)."""
        with self._tx() as conn:
            rows = conn.execute("SELECT path FROM seen").fetchall()
            gone = [(r[0],) for r in rows if r[0] not in present]
            conn.executemany("DELETE FROM seen WHERE path=?", gone)
        return len(gone)

    def _move(self, share_id: str, dst: State, now: float, **fields: Any) -> bool:
        """Conditional transition: succeeds only from a state that may move to `dst`."""
        sources = [str(s) for s, targets in TRANSITIONS.items() if dst in targets]
        sets = ", ".join(f"{k}=?" for k in fields)
        sql = (
            f"UPDATE shares SET state=?, updated_at=?{', ' + sets if sets else ''}"
            f" WHERE id=? AND state IN ({','.join('?' * len(sources))})"
        )
        with self._tx() as conn:
            cur = conn.execute(sql, (str(dst), now, *fields.values(), share_id, *sources))
            return cur.rowcount == 1

    def set_prepared(
        self, share_id: str, prepared_path: str, content_hash: str, now: float
    ) -> bool:
        return self._move(
            share_id, State.PENDING, now, prepared_path=prepared_path, content_hash=content_hash
        )

    def to_uploading(self, share_id: str, remote_path: str, now: float) -> bool:
        return self._move(share_id, State.UPLOADING, now, remote_path=remote_path)

    def to_live(
        self, share_id: str, url: str, link_key: str | None, now: float, expires_at: float
    ) -> bool:
        return self._move(
            share_id,
            State.LIVE,
            now,
            url=url,
            link_key=link_key,
            shared_at=now,
            expires_at=expires_at,
        )

    def to_revoking(self, share_id: str, reason: str, now: float) -> bool:
        return self._move(share_id, State.REVOKING, now, revoke_reason=reason)

    def to_gone(self, share_id: str, now: float) -> bool:
        return self._move(share_id, State.GONE, now, revoked_at=now, last_error=None)

    def to_failed(self, share_id: str, reason: str, now: float) -> bool:
        return self._move(share_id, State.FAILED, now, reason=reason)

    def revoke_failed(self, share_id: str, error: str, next_attempt_at: float, now: float) -> int:
        """Record a failed revocation attempt; returns the number of attempts so far."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE shares SET attempts=attempts+1, last_error=?, next_attempt_at=?,"
                " updated_at=? WHERE id=? AND state='revoking'",
                (error, next_attempt_at, now, share_id),
            )
            row = conn.execute("SELECT attempts FROM shares WHERE id=?", (share_id,)).fetchone()
        return int(row[0]) if row else 0

    def retry_revocations_now(self, backend: str, now: float) -> int:
        """The backend is back (signed in again, reachable again): its waiting revocations
        are due at once instead of at their backoff time."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE shares SET next_attempt_at=NULL, updated_at=?"
                " WHERE state='revoking' AND backend=?",
                (now, backend),
            )
            return cur.rowcount

    def discard(self, share_id: str) -> None:
        """Undo add_pending for a file that turned out incomplete: it will be seen again."""
        with self._tx() as conn:
            conn.execute("DELETE FROM seen WHERE share_id=?", (share_id,))
            conn.execute("DELETE FROM shares WHERE id=? AND state='pending'", (share_id,))

    # -- view-once links and view receipts (local backend) ----------------------------------

    def set_sender_key(self, share_id: str, key_hash: str) -> None:
        """The hash of the sender's own key (the key itself stays in the notification)."""
        with self._tx() as conn:
            conn.execute("UPDATE shares SET sender_key=? WHERE id=?", (key_hash, share_id))

    def reveal(self, share_id: str, now: float, until: float, viewer_net: str | None) -> bool:
        """Spend a live view-once link: True exactly once. From then on it lives until `until`,
        or less if its lifetime ends sooner; the reveal is its first and only view."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE shares SET revealed_at=?, expires_at=MIN(expires_at, ?), views=views+1,"
                " first_view_at=COALESCE(first_view_at, ?), viewer_net=COALESCE(viewer_net, ?),"
                " updated_at=? WHERE id=? AND state='live' AND once=1 AND revealed_at IS NULL"
                " AND expires_at > ?",
                (now, until, now, viewer_net, now, share_id, now),
            )
            return cur.rowcount == 1

    def record_view(self, share_id: str, now: float, viewer_net: str | None) -> bool:
        """Count a view of a live link; True for its first (the one a receipt is sent for)."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT first_view_at FROM shares WHERE id=? AND state='live'", (share_id,)
            ).fetchone()
            if row is None:
                return False
            conn.execute(
                "UPDATE shares SET views=views+1, first_view_at=COALESCE(first_view_at, ?),"
                " viewer_net=COALESCE(viewer_net, ?), updated_at=? WHERE id=?",
                (now, viewer_net, now, share_id),
            )
            return row[0] is None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def mark_announced(self, share_id: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE shares SET announced=1 WHERE id=?", (share_id,))

    def extend(self, share_id: str, seconds: int, now: float) -> float | None:
        """Move a live link's deadline `seconds` later; the new deadline, or None when the
        share is no longer live (or its deadline already passed: it is being revoked), or is
        a view-once link already viewed (its deadline is the end of the viewing window)."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE shares SET expires_at=expires_at+?, lifetime_s=lifetime_s+?,"
                " updated_at=? WHERE id=? AND state='live' AND expires_at>?"
                " AND revealed_at IS NULL",
                (seconds, seconds, now, share_id, now),
            )
            if cur.rowcount != 1:
                return None
            row = conn.execute("SELECT expires_at FROM shares WHERE id=?", (share_id,)).fetchone()
        return float(row[0])
