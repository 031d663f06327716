"""The journal: exactly-once takes, only legal transitions, and the CLI↔daemon channel."""

import sqlite3
import threading

import pytest

from daemon.journal import (
    SCHEMA_VERSION,
    TRANSITIONS,
    InvalidTransition,
    Journal,
    State,
    check_transition,
)


@pytest.fixture
def journal(tmp_path):
    return Journal(tmp_path / "j.sqlite3")


def add(journal, path="/share/a.jpg", size=10, mtime=1, now=1000.0, content_hash=None, folder=""):
    """The new share, or None when this file version was already taken (or is a duplicate)."""
    result = journal.add_pending(
        path,
        size,
        mtime,
        backend="local",
        lifetime_s=60,
        now=now,
        content_hash=content_hash,
        folder=folder,
    )
    if result is None or result[1]:
        return None
    return result[0]


def test_new_journal_is_wal_and_versioned(tmp_path):
    j = Journal(tmp_path / "j.sqlite3")
    assert j.created
    conn = sqlite3.connect(tmp_path / "j.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert not Journal(tmp_path / "j.sqlite3").created


def test_journal_is_private_to_the_user(tmp_path):
    Journal(tmp_path / "state" / "j.sqlite3")
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "state" / "j.sqlite3").stat().st_mode & 0o777 == 0o600


def test_journal_from_a_newer_fadelink_is_refused(tmp_path):
    Journal(tmp_path / "j.sqlite3")
    conn = sqlite3.connect(tmp_path / "j.sqlite3")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer fadelink"):
        Journal(tmp_path / "j.sqlite3")


def test_same_file_version_is_taken_once(journal):
    first = add(journal)
    assert first is not None and first.state is State.PENDING
    assert add(journal) is None
    changed = add(journal, mtime=2)  # new content at the same path is a new share
    assert changed is not None and changed.id != first.id


def test_files_present_on_first_run_are_not_shares(journal):
    journal.mark_present([("/share/old.jpg", 5, 7)], now=1.0)
    assert add(journal, "/share/old.jpg", 5, 7) is None
    assert journal.count() == 0


def test_full_life_of_a_share(journal):
    s = add(journal)
    assert journal.set_prepared(s.id, "/state/prepared/x.jpg", "hash", 1001)
    assert journal.to_uploading(s.id, "abc.jpg", 1002)
    assert journal.to_live(s.id, "http://h/t", "key", 1003, 1063)
    live = journal.get(s.id)
    assert live.state is State.LIVE and live.expires_at == 1063 and live.remote_path == "abc.jpg"
    assert journal.by_link_key("key").id == s.id
    assert journal.due(1062) == []
    assert [d.id for d in journal.due(1063)] == [s.id]
    assert journal.next_deadline() == 1063
    assert journal.to_revoking(s.id, "its lifetime ended", 1063)
    assert journal.to_gone(s.id, 1064)
    gone = journal.get(s.id)
    assert gone.state is State.GONE and gone.revoked_at == 1064
    assert journal.next_deadline() is None
    as_json = gone.to_json()
    assert as_json["state"] == "gone" and as_json["expires_at"] == "1970-01-01T00:17:43Z"


def test_illegal_moves_do_not_happen(journal):
    s = add(journal)
    assert not journal.to_live(s.id, "u", "k", 1, 2)  # pending cannot skip uploading
    assert not journal.to_gone(s.id, 1)  # nor vanish without a revocation
    assert journal.get(s.id).state is State.PENDING
    journal.to_uploading(s.id, "r", 1)
    journal.to_live(s.id, "u", "k", 1, 2)
    journal.to_revoking(s.id, "x", 3)
    journal.to_gone(s.id, 4)
    assert not journal.to_revoking(s.id, "again", 5)  # a gone share stays gone
    assert journal.get(s.id).state is State.GONE


def test_transition_table_is_closed():
    for src, targets in TRANSITIONS.items():
        for dst in State:
            if dst in targets:
                check_transition(src, dst)
            else:
                with pytest.raises(InvalidTransition):
                    check_transition(src, dst)
    assert TRANSITIONS[State.GONE] == frozenset() and TRANSITIONS[State.FAILED] == frozenset()


def test_failed_revocations_back_off_and_are_due_again(journal):
    s = add(journal)
    journal.to_uploading(s.id, "r", 1)
    journal.to_live(s.id, "u", "k", 1, 2)
    journal.to_revoking(s.id, "deadline", 2)
    assert journal.revoke_failed(s.id, "disk on fire", next_attempt_at=10, now=2) == 1
    assert journal.due(9) == []
    assert [d.id for d in journal.due(10)] == [s.id]
    assert journal.get(s.id).last_error == "disk on fire"
    assert journal.next_deadline() == 10


def test_same_content_in_the_same_folder_reuses_the_live_share(journal):
    first = add(journal, "/share/a.jpg", content_hash="h")
    journal.to_uploading(first.id, "r", 1000)
    journal.to_live(first.id, "u", "k", 1000, 1060)
    again, duplicate = journal.add_pending(
        "/share/b.jpg", 10, 2, backend="local", lifetime_s=60, now=1010, content_hash="h"
    )
    assert duplicate and again.id == first.id
    assert journal.count() == 1
    # Another folder, or after the link died, it is a share of its own.
    assert add(journal, "/share/10m/a.jpg", mtime=3, content_hash="h", folder="10m") is not None
    assert add(journal, "/share/c.jpg", mtime=4, content_hash="h", now=1061) is not None


def test_forget_missing_drops_files_removed_while_stopped(journal):
    add(journal, "/share/kept.jpg")
    add(journal, "/share/gone.jpg")
    assert journal.forget_missing({"/share/kept.jpg"}, now=2000) == 1
    assert journal.seen("/share/gone.jpg") is None and journal.seen("/share/kept.jpg")


def test_discard_lets_the_file_be_taken_again(journal):
    s = add(journal)
    journal.discard(s.id)
    assert journal.get(s.id) is None
    assert add(journal) is not None


def test_data_version_shows_writes_from_another_connection(tmp_path):
    daemon_side = Journal(tmp_path / "j.sqlite3")
    before = daemon_side.data_version()
    cli_side = Journal(tmp_path / "j.sqlite3")
    add(cli_side)
    assert daemon_side.data_version() != before


def test_connections_are_per_thread(journal):
    ids = []

    def worker(n):
        ids.append(add(journal, f"/share/{n}.jpg").id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 8 and journal.count() == 8
