"""`fadelink doctor` on a real desktop (Xvfb, D-Bus, dunst, xclip) with the daemon running:
everything reported working; then broken parts, each reported with a fix and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.backends.local import META_BASE_URL
from daemon.journal import Journal
from daemon.lock import DaemonLock
from tests.daemon_proc import DaemonProcess, Home, free_port
from tests.images import make_jpeg


def lines_of(report: str) -> dict[str, str]:
    """Check name → its line, for the lines that start with a status."""
    out = {}
    for line in report.splitlines():
        status, _, rest = line.partition("  ")
        if status.strip() in ("ok", "warn", "FAIL"):
            name = rest.strip().split("  ")[0]
            out[name] = line
    return out


@pytest.fixture
def home(tmp_path: Path, desktop) -> Home:
    return Home(tmp_path, desktop.env)


def test_all_good_with_a_running_daemon(home: Home, desktop) -> None:
    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready()
        make_jpeg(home.share_dir / "a.jpg", (400, 300))
        url = desktop.wait_clipboard(lambda text: text.startswith("http://"), timeout=15)

        done = home.cli("doctor")  # output captured: the clipboard check must not hang it
        assert done.returncode == 0, done.stdout + done.stderr
        checks = lines_of(done.stdout)
        assert not [line for line in checks.values() if line.startswith("FAIL")]
        assert checks["share folder"].startswith("ok")
        assert checks["state dir"].startswith("ok")
        assert checks["journal"].startswith("ok") and "1 live" in checks["journal"]
        assert f"pid {daemon.proc.pid}" in checks["daemon"]
        assert checks["link server"].startswith("ok")
        assert f"answers at http://127.0.0.1:{home.port}" in checks["link server"]
        assert checks["clipboard"].startswith("ok")
        assert checks["notifications"].startswith("ok") and "buttons" in checks["notifications"]
        assert checks["service"].startswith("warn") and "fadelink service install" in done.stdout
        assert done.stdout.rstrip().endswith("everything works")
        # The clipboard check gave back what the clipboard held: the link.
        desktop.wait_clipboard(lambda text: text == url)
    finally:
        assert daemon.stop() == 0


def test_state_dir_that_is_a_file_is_broken_with_a_fix(home: Home, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("oops")
    done = home.cli("doctor", FADELINK_STATE_DIR=str(blocker))
    assert done.returncode == 1
    checks = lines_of(done.stdout)
    assert checks["state dir"].startswith("FAIL") and "is not a folder" in checks["state dir"]
    assert f"fix: move that file away (mv '{blocker}'" in done.stdout
    assert checks["daemon"].startswith("FAIL")  # and nothing runs


def test_damaged_journal_is_broken_with_a_fix(home: Home) -> None:
    home.state_dir.mkdir(mode=0o700)
    (home.state_dir / "journal.sqlite3").write_bytes(b"this is not a database" * 100)
    done = home.cli("doctor")
    assert done.returncode == 1
    journal = lines_of(done.stdout)["journal"]
    assert journal.startswith("FAIL") and "cannot be read" in journal
    assert "move it aside" in done.stdout


def test_links_pointing_where_nothing_answers_are_broken(home: Home) -> None:
    # The daemon's lock is held (it "runs"), but the address its links carry is dead: as
    # when the network address changed under a running daemon.
    journal = Journal(home.state_dir / "journal.sqlite3")
    dead = f"http://127.0.0.1:{free_port()}"
    journal.set_meta(META_BASE_URL, dead)
    journal.close()
    lock = DaemonLock(home.state_dir)
    lock.acquire()
    try:
        done = home.cli("doctor")
    finally:
        lock.release()
    assert done.returncode == 1
    checks = lines_of(done.stdout)
    assert checks["daemon"].startswith("ok")
    assert (
        checks["link server"].startswith("FAIL")
        and f"nothing answers at {dead}" in (checks["link server"])
    )


def test_dropbox_not_signed_in_is_broken_with_a_fix(home: Home) -> None:
    done = home.cli("doctor", FADELINK_BACKEND="dropbox")
    assert done.returncode == 1
    backend = lines_of(done.stdout)["backend dropbox"]
    assert backend.startswith("FAIL") and "not signed in" in backend
    assert "fix: `fadelink auth dropbox`" in done.stdout
    assert "link server" not in lines_of(done.stdout)  # Dropbox serves the links
