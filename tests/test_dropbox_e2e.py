"""A user's day with the Dropbox backend: the daemon runs as a subprocess under the test desktop
and reaches the fake Dropbox only through DROPBOX_API_HOST, DROPBOX_API_CONTENT_HOST and
REQUESTS_CA_BUNDLE, as it would reach the real one. What is checked is what the user sees (the
clipboard, the notifications) and what Dropbox holds (files, live links)."""

from __future__ import annotations

import io
import json
import os
import ssl
import stat
import subprocess
import sys
import time
import urllib.request

import pytest
from PIL import Image

from daemon.crashpoint import STAGES
from tests.daemon_proc import DaemonProcess, Home, wait_for
from tests.fake_dropbox import ROUTES, FakeDropbox
from tests.images import make_jpeg
from tests.photos import shared_photo
from tests.test_end_to_end import save

GPS_IFD = 0x8825
DROPBOX_URL = "https://www.dropbox.com/scl/fi/"
REVOKED = "Dropbox access was revoked — run fadelink auth dropbox"
NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


@pytest.fixture
def home(tmp_path, desktop) -> Home:
    return Home(tmp_path, desktop.env)


def dropbox_env(fake: FakeDropbox, *, token: bool = True, **extra: str) -> dict[str, str]:
    env = {
        **fake.env,
        **NO_KEYRING,
        "FADELINK_BACKEND": "dropbox",
        "FADELINK_DROPBOX_APP_KEY": fake.app_key,
        "BROWSER": "true",  # `fadelink auth dropbox` opens nothing
    }
    if token:
        env["FADELINK_DROPBOX_REFRESH_TOKEN"] = fake.grant()
    env.update(extra)
    return env


def shares(home: Home) -> list[dict]:
    out = home.cli("list", "--all", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def nothing_left(fake: FakeDropbox) -> bool:
    return not fake.live_links() and not fake.stored()


def summaries(desktop) -> list[str]:
    return [n["summary"] for n in desktop.history()]


def test_gps_photo_shared_through_dropbox_and_vanishes(home, desktop, fake_dropbox):
    photo = shared_photo("jpg_gps_DSCN0010.jpg")
    with Image.open(photo) as original:
        assert GPS_IFD in original.getexif(), "the test photo must carry GPS"
    env = dropbox_env(fake_dropbox, FADELINK_LIFETIME="3s")
    daemon = DaemonProcess(home, **env)
    try:
        ready = daemon.wait_ready()
        assert "dropbox" in ready and "127.0.0.1:" + str(home.port) not in ready
        save(photo, home.share_dir / "beach.jpg")

        url = desktop.wait_clipboard(lambda t: t.startswith(DROPBOX_URL), timeout=20)
        (link,) = fake_dropbox.live_links()
        assert url == link.url  # the very URL Dropbox issued
        assert link.expires is not None  # the server-side backstop
        ((remote, data),) = fake_dropbox.stored().items()
        assert "beach" not in remote  # the original name stays home
        with Image.open(io.BytesIO(data)) as uploaded:
            assert GPS_IFD not in uploaded.getexif()
        desktop.wait_notifications(1, timeout=10)

        # After its 3-second lifetime the link is revoked and the file deleted, on Dropbox.
        wait_for(lambda: nothing_left(fake_dropbox), 15, "link revoked and file deleted")
        assert [ln.revoked for ln in fake_dropbox.links] == [True]
        wait_for(lambda: shares(home)[0]["state"] == "gone", 10, "state gone")
        assert url not in daemon.output()
        assert env["FADELINK_DROPBOX_REFRESH_TOKEN"] not in daemon.output()
        assert "Link ready: beach.jpg" in summaries(desktop)
    finally:
        assert daemon.stop() == 0
    # No link server runs with this backend.
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{home.port}/", timeout=2)


def test_outage_across_the_deadline_revokes_when_dropbox_is_back(home, desktop, fake_dropbox):
    daemon = DaemonProcess(home, **dropbox_env(fake_dropbox, FADELINK_LIFETIME="4s"))
    try:
        daemon.wait_ready()
        make_jpeg(home.share_dir / "p.jpg", (400, 300))
        desktop.wait_clipboard(lambda t: t.startswith(DROPBOX_URL), timeout=20)
        with fake_dropbox.outage():
            # The deadline passes while Dropbox is unreachable: the revocation waits…
            wait_for(
                lambda: shares(home)[0]["state"] == "revoking" and shares(home)[0]["reason"],
                20,
                "a failed revocation attempt",
            )
            assert len(fake_dropbox.live_links()) == 1
            # …across more than one backoff step.
            wait_for(lambda: "attempt 3" in daemon.output(), 20, "third attempt")
        back = time.monotonic()
        wait_for(lambda: nothing_left(fake_dropbox), 15, "revocation after the outage")
        assert time.monotonic() - back < 5, "revoked within seconds of Dropbox coming back"
        wait_for(lambda: shares(home)[0]["state"] == "gone", 10, "state gone")
    finally:
        assert daemon.stop() == 0


def test_burst_of_429s_5xx_and_drops_still_shares_each_photo_once(home, desktop, fake_dropbox):
    for route in [*ROUTES, "oauth2/token"]:
        fake_dropbox.inject("429", route, times=1, retry_after=1)
        fake_dropbox.inject("5xx", route, times=2)
        fake_dropbox.inject("429_header", route, times=1, retry_after=1)
        # Dropbox acted, the answer was lost: a link or an upload made twice must not count.
        fake_dropbox.inject("drop_after", route, times=1)
    daemon = DaemonProcess(home, **dropbox_env(fake_dropbox, FADELINK_LIFETIME="6s"))
    try:
        daemon.wait_ready()
        for i in range(4):
            make_jpeg(home.share_dir / f"burst{i}.jpg", (300 + 10 * i, 200))
        wait_for(lambda: len(fake_dropbox.links) >= 4, 90, "four links")
        wait_for(
            lambda: len(shares(home)) == 4 and all(s["state"] == "gone" for s in shares(home)),
            90,
            "every link revoked",
        )
        assert nothing_left(fake_dropbox)
        # One link per photo: made once, found again after a lost answer, never doubled.
        assert len(fake_dropbox.links) == 4
        assert len({ln.path_lower for ln in fake_dropbox.links}) == 4
        assert all(ln.revoked or ln.dead for ln in fake_dropbox.links)
        injected = sum(1 for r, s in fake_dropbox.calls if s in (0, 429, 503))
        assert injected >= 4 * 4, "the faults were really served"
    finally:
        assert daemon.stop() == 0


def sign_in_with_cli(home: Home, fake: FakeDropbox, **env: str) -> subprocess.CompletedProcess:
    """`fadelink auth dropbox` as a user runs it: open the printed page, paste the code."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "auth", "dropbox"],
        env=home.env(**dropbox_env(fake, token=False), **env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    printed = []
    try:
        while not (printed and printed[-1].strip().startswith("https://")):
            line = proc.stdout.readline()
            assert line, f"no sign-in URL printed: {printed}"
            printed.append(line)
        ctx = ssl.create_default_context(cafile=str(fake.ca_file))
        page = urllib.request.urlopen(printed[-1].strip(), context=ctx, timeout=10).read().decode()
        code = page.rsplit(" ", 1)[1].strip()  # "Enter this code into fadelink: CODE"
        out, err = proc.communicate(code + "\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(printed) + out, err)


def test_sign_in_stores_a_token_and_a_restart_uses_it(home, desktop, fake_dropbox):
    done = sign_in_with_cli(home, fake_dropbox)
    assert done.returncode == 0, done.stderr
    assert "Signed in to Dropbox as Fay Tester <fay@example.org>" in done.stdout
    token_file = home.root / "config" / "fadelink" / "dropbox-token.json"
    assert str(token_file) in done.stdout and "no system keyring" in done.stdout
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    stored = json.loads(token_file.read_text())
    assert stored["refresh_token"] in fake_dropbox.refresh_tokens
    secret = stored["refresh_token"]

    env = dropbox_env(fake_dropbox, token=False)
    status = home.cli("auth", "status", **env)
    assert status.returncode == 0, status.stderr
    assert "Fay Tester" in status.stdout and str(token_file) in status.stdout
    config = home.cli("config", **env, FADELINK_DROPBOX_REFRESH_TOKEN=secret)
    assert "FADELINK_DROPBOX_REFRESH_TOKEN=(set, hidden)" in config.stdout
    for out in (done, status, config):
        assert secret not in out.stdout + out.stderr

    for run in range(2):  # and again after a restart, with the token from the file
        daemon = DaemonProcess(home, **env)
        try:
            daemon.wait_ready()
            before = desktop.clipboard()
            make_jpeg(home.share_dir / f"run{run}.jpg", (320 + run, 240))
            desktop.wait_clipboard(lambda t, b=before: t.startswith(DROPBOX_URL) and t != b, 20)
            wait_for(lambda n=run + 1: len(fake_dropbox.links) == n, 20, f"link {run + 1}")
            assert secret not in daemon.output()
        finally:
            assert daemon.stop() == 0

    # Sign out: live links block it, --revoke-all revokes them first.
    refused = home.cli("auth", "logout", **env)
    assert refused.returncode == 1 and "--revoke-all" in refused.stderr
    out = home.cli("auth", "logout", "--revoke-all", **env)
    assert out.returncode == 0, out.stderr
    assert nothing_left(fake_dropbox) and not token_file.exists()
    assert secret not in fake_dropbox.refresh_tokens  # revoked at Dropbox too
    assert home.cli("auth", "status", **env).returncode == 1


def test_revoked_access_stops_uploads_notifies_once_and_resumes_after_sign_in(
    home, desktop, fake_dropbox
):
    assert sign_in_with_cli(home, fake_dropbox).returncode == 0
    env = dropbox_env(fake_dropbox, token=False)
    daemon = DaemonProcess(home, **env)
    try:
        daemon.wait_ready()
        make_jpeg(home.share_dir / "before.jpg", (300, 200))
        desktop.wait_clipboard(lambda t: t.startswith(DROPBOX_URL), timeout=20)
        desktop.close_all()

        fake_dropbox.revoke_refresh_tokens()  # the user disconnected the app on dropbox.com
        make_jpeg(home.share_dir / "waits1.jpg", (310, 200))
        make_jpeg(home.share_dir / "waits2.jpg", (320, 200))
        wait_for(lambda: REVOKED in summaries(desktop), 20, "the sign-in notification")
        wait_for(
            lambda: sum(1 for s in shares(home) if s["state"] == "uploading") == 2,
            20,
            "both photos waiting",
        )
        assert summaries(desktop).count(REVOKED) == 1  # once, not per photo
        assert len(fake_dropbox.links) == 1

        assert sign_in_with_cli(home, fake_dropbox).returncode == 0
        wait_for(lambda: len(fake_dropbox.links) == 3, 20, "the waiting photos shared")
        wait_for(lambda: sorted(s["state"] for s in shares(home)) == ["live"] * 3, 10, "all live")
    finally:
        assert daemon.stop() == 0
    assert summaries(desktop).count(REVOKED) == 1


def test_not_signed_in_is_told_at_start_and_photos_wait_for_sign_in(home, desktop, fake_dropbox):
    daemon = DaemonProcess(home, **dropbox_env(fake_dropbox, token=False))
    try:
        daemon.wait_ready()
        wait_for(
            lambda: any("not signed in to Dropbox" in s for s in summaries(desktop)),
            20,
            "the notification at start",
        )
        make_jpeg(home.share_dir / "early.jpg", (300, 200))
        wait_for(lambda: [s["state"] for s in shares(home)] == ["uploading"], 20, "waiting")
        assert sign_in_with_cli(home, fake_dropbox).returncode == 0
        url = desktop.wait_clipboard(lambda t: t.startswith(DROPBOX_URL), timeout=20)
        assert [ln.url for ln in fake_dropbox.live_links()] == [url]
    finally:
        assert daemon.stop() == 0


def test_view_once_folder_is_refused_with_dropbox(home, desktop, fake_dropbox):
    daemon = DaemonProcess(home, **dropbox_env(fake_dropbox))
    try:
        daemon.wait_ready()
        (home.share_dir / "once").mkdir(exist_ok=True)
        make_jpeg(home.share_dir / "once" / "secret.jpg", (300, 200))
        wait_for(lambda: shares(home) and shares(home)[0]["state"] == "failed", 20, "refusal")
        assert "local backend" in shares(home)[0]["reason"]
        desktop.wait_notifications(1, timeout=10)
        (note,) = [n for n in desktop.history() if "local backend" in n["body"]]
        assert "secret.jpg" in note["body"]
        assert fake_dropbox.stored() == {} and fake_dropbox.links == []
    finally:
        assert daemon.stop() == 0


def test_account_quirks_basic_plan_expired_token_unverified_email(home, desktop, fake_dropbox):
    fake_dropbox.basic_account = True  # links may not expire: a plain link, asked once
    daemon = DaemonProcess(home, **dropbox_env(fake_dropbox))
    try:
        daemon.wait_ready()
        make_jpeg(home.share_dir / "a.jpg", (300, 200))
        wait_for(lambda: len(fake_dropbox.live_links()) == 1, 20, "first link")
        fake_dropbox.expire_access_tokens()  # refreshed without anyone noticing
        make_jpeg(home.share_dir / "b.jpg", (310, 200))
        wait_for(lambda: len(fake_dropbox.live_links()) == 2, 20, "second link")
        assert all(ln.expires is None for ln in fake_dropbox.live_links())
        assert fake_dropbox.count("sharing/create_shared_link_with_settings", 409) == 1

        fake_dropbox.email_verified = False
        make_jpeg(home.share_dir / "c.jpg", (320, 200))
        wait_for(lambda: any(s["state"] == "failed" for s in shares(home)), 20, "the failed share")
        (failed,) = [s for s in shares(home) if s["state"] == "failed"]
        assert failed["source"].endswith("c.jpg") and "verify your email" in failed["reason"]
        assert len(fake_dropbox.stored()) == 2  # its upload was cleaned up
        wait_for(
            lambda: any("verify your email" in n["body"] for n in desktop.history()),
            10,
            "the notification",
        )
    finally:
        assert daemon.stop() == 0


def headless_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS")
    }


CRASH_STAGES = [s for s in STAGES if s not in ("after_pending", "after_prepare")]


@pytest.mark.parametrize("stage", CRASH_STAGES)
def test_sigkill_at_each_step_leaves_nothing_on_dropbox(tmp_path, fake_dropbox, stage):
    home = Home(tmp_path, headless_env())
    env = dropbox_env(fake_dropbox, FADELINK_LIFETIME="3s")
    first = DaemonProcess(home, **env)  # creates the journal: the next start is no first run
    first.wait_ready()
    assert first.stop() == 0

    crashing = DaemonProcess(home, **env, FADELINK_CRASH_AT=stage)
    crashing.wait_ready()
    make_jpeg(home.share_dir / "photo.jpg", (400, 300))
    assert crashing.wait_killed() == -9, crashing.output()

    daemon = DaemonProcess(home, **env)
    try:
        daemon.wait_ready()
        wait_for(lambda: [s["state"] for s in shares(home)] == ["gone"], 30, "the share gone")
        wait_for(lambda: nothing_left(fake_dropbox), 10, "nothing left on Dropbox")
        # Exactly one link was ever made for the photo (a crash never makes a second).
        assert len(fake_dropbox.links) <= 1
    finally:
        assert daemon.stop() == 0
