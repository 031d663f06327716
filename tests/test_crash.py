"""SIGKILL at every stage of a share: after restart nothing is lost and nothing is doubled."""

import json
import os

import pytest

from daemon.crashpoint import STAGES
from tests.daemon_proc import DaemonProcess, Home, wait_for
from tests.images import make_jpeg

SHARE_STAGES = [s for s in STAGES if s not in ("after_revoking", "after_remote_revoked")]
REVOKE_STAGES = ["after_revoking", "after_remote_revoked"]


def headless_env() -> dict[str, str]:
    # No desktop: these tests are about the journal, not the clipboard.
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS")
    }


def shares(home: Home) -> list[dict]:
    out = home.cli("list", "--all", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def served_files(home: Home) -> list[str]:
    d = home.state_dir / "served"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def prepared_files(home: Home) -> list[str]:
    d = home.state_dir / "prepared"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def first_run(home: Home) -> None:
    """Create the journal with an empty folder, so the crash run is not a first run."""
    d = DaemonProcess(home)
    d.wait_ready()
    assert d.stop() == 0


@pytest.mark.parametrize("stage", SHARE_STAGES)
def test_crash_while_sharing_resumes_once(tmp_path, stage):
    home = Home(tmp_path, headless_env())
    first_run(home)
    crashing = DaemonProcess(home, FADELINK_CRASH_AT=stage, FADELINK_LIFETIME="4s")
    crashing.wait_ready()
    make_jpeg(home.share_dir / "photo.jpg", (640, 480))
    assert crashing.wait_killed() == -9, crashing.output()

    daemon = DaemonProcess(home, FADELINK_LIFETIME="4s")
    daemon.wait_ready()
    try:
        # Exactly one share for the photo, whatever the stage: resumed, never doubled.
        live = wait_for(
            lambda: [s for s in shares(home) if s["state"] == "live"], 30, "the resumed link"
        )
        assert len(shares(home)) == 1, shares(home)
        assert live[0]["source"].endswith("photo.jpg")
        assert len(served_files(home)) == 1
        # And it still dies on time.
        wait_for(lambda: shares(home)[0]["state"] == "gone", 30, "the link to vanish")
        assert served_files(home) == [] and prepared_files(home) == []
        assert len(shares(home)) == 1
    finally:
        daemon.stop()


@pytest.mark.parametrize("stage", REVOKE_STAGES)
def test_crash_while_revoking_finishes_the_revocation(tmp_path, stage):
    home = Home(tmp_path, headless_env())
    first_run(home)
    crashing = DaemonProcess(home, FADELINK_CRASH_AT=stage, FADELINK_LIFETIME="2s")
    crashing.wait_ready()
    make_jpeg(home.share_dir / "photo.jpg", (640, 480))
    assert crashing.wait_killed() == -9, crashing.output()
    assert shares(home)[0]["state"] == "revoking"

    daemon = DaemonProcess(home)
    daemon.wait_ready()
    try:
        # Revoked before the daemon even says it is ready.
        assert [s["state"] for s in shares(home)] == ["gone"]
        assert served_files(home) == []
    finally:
        daemon.stop()
