"""The observer itself, in-process on a real directory: failures in the handler path and a
dead observer thread never end watching."""

from __future__ import annotations

import queue
from pathlib import Path

from daemon.watcher import FolderWatcher, is_temporary
from tests.daemon_proc import wait_for


def collect() -> tuple[queue.Queue, callable]:
    q: queue.Queue = queue.Queue()
    calls = {"n": 0}

    def emit(path: Path, kind: str) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected failure in the handler path")
        q.put((path.name, kind))

    return q, emit


def drain_until(q: queue.Queue, name: str, timeout: float = 10) -> None:
    seen: list[str] = []

    def got() -> bool:
        while not q.empty():
            seen.append(q.get_nowait()[0])
        return name in seen

    wait_for(got, timeout, f"an event for {name}")


def test_exception_in_handler_path_does_not_stop_watching(tmp_path):
    q, emit = collect()
    w = FolderWatcher(tmp_path, emit)
    w.start()
    try:
        (tmp_path / "first.jpg").write_bytes(b"x")  # its first event raises
        (tmp_path / "second.jpg").write_bytes(b"y")
        drain_until(q, "second.jpg")
        assert w.alive()
    finally:
        w.stop()


def test_dead_observer_is_restarted_and_asks_for_a_rescan(tmp_path):
    doubts: list[int] = []
    q: queue.Queue = queue.Queue()
    w = FolderWatcher(tmp_path, lambda p, k: q.put((p.name, k)), on_doubt=lambda: doubts.append(1))
    w.start()
    try:
        w._observer.stop()  # the thread dies as if an exception had killed it
        w._observer.join(5)
        assert not w.alive()
        w.restart()
        assert w.alive() and doubts == [1]
        (tmp_path / "after.jpg").write_bytes(b"z")
        drain_until(q, "after.jpg")
    finally:
        w.stop()


def test_polling_observer_sees_new_files(tmp_path):
    q: queue.Queue = queue.Queue()
    w = FolderWatcher(tmp_path, lambda p, k: q.put((p.name, k)), polling=True)
    w.start()
    try:
        (tmp_path / "polled.jpg").write_bytes(b"x")
        drain_until(q, "polled.jpg", timeout=15)
    finally:
        w.stop()


def test_temporary_names():
    for name in (
        "x.jpg.part",
        "x.jpg.crdownload",
        "x.jpg.download",
        "x.tmp",
        "x.jpg~",
        ".x.jpg.swp",
        ".Screenshot 2026.png",
        "X.JPG.PART",
    ):
        assert is_temporary(name), name
    for name in ("x.jpg", "photo.png", "part.jpg", "tmp.jpeg"):
        assert not is_temporary(name), name


def test_hidden_folders_are_never_looked_into(tmp_path):
    q: queue.Queue = queue.Queue()
    w = FolderWatcher(tmp_path, lambda p, k: q.put((str(p), k)))
    w.start()
    try:
        (tmp_path / ".shared" / "1h").mkdir(parents=True)
        (tmp_path / ".shared" / "1h" / "x.jpg").write_bytes(b"x")
        (tmp_path / "visible").mkdir()  # barrier: its event comes after the hidden ones
        seen: list[str] = []

        def got() -> bool:
            while not q.empty():
                seen.append(q.get_nowait()[0])
            return any(s.endswith("visible") for s in seen)

        wait_for(got, 10, "the visible folder's event")
        assert not [s for s in seen if ".shared" in s], seen
    finally:
        w.stop()
