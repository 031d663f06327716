"""Save→clipboard latency through Dropbox (the fake, on loopback), next to the floor, in one run.

    .venv/bin/python bench/dropbox_latency.py [--photos 20]

Starts the fake Dropbox (HTTPS, tests/fake_dropbox.py), a private desktop (Xvfb, D-Bus, dunst,
xclip) and `fadelink run` with FADELINK_BACKEND=dropbox, saves photos that need no resize (GPS
to strip, 1600x1200) into the share folder as a photo app does, and measures until the Dropbox
link is on the clipboard. Photos are spaced beyond the burst window, so each one is announced
on its own as a single save is.

The floor is the raw SDK in this process, with no daemon: upload the same photo, create the
link. A second floor adds fadelink's own preparation (metadata stripping) in front of it; the
difference to the daemon is what watching, the journal and the clipboard cost.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# First: it points the SDK at the fake before anything imports the SDK.
from tests.fake_dropbox import FakeDropbox  # noqa: E402  # isort: skip

from PIL import Image  # noqa: E402

from bench.saving import pct, save_and_time  # noqa: E402
from daemon import clipboard  # noqa: E402
from tests.daemon_proc import DaemonProcess, Home  # noqa: E402
from tests.desktop import start_desktop  # noqa: E402
from tests.images import make_jpeg  # noqa: E402

SIZE = (1600, 1200)  # under FADELINK_MAX_DIMENSION: no resize


def make_photos(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n + 1):  # one more: the warm-up
        noise = Image.effect_noise(SIZE, 20 + i).convert("RGB")
        out.append(make_jpeg(folder / f"photo{i:02d}.jpg", SIZE, gps=True, image=noise))
    return out


def measure_daemon(
    fake: FakeDropbox, photos: list[Path], work: Path
) -> tuple[float, list[float], list[float], list[float]]:
    """Save → clipboard; and split at the moment the journal recorded the link."""
    times: list[float] = []
    to_link: list[float] = []
    to_clip: list[float] = []
    first = 0.0
    with start_desktop() as desktop:
        home = Home(work / "home", desktop.env)
        env = {
            **fake.env,
            "FADELINK_BACKEND": "dropbox",
            "FADELINK_DROPBOX_APP_KEY": fake.app_key,
            "FADELINK_DROPBOX_REFRESH_TOKEN": fake.grant(),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "FADELINK_LIFETIME": "1h",
        }
        daemon = DaemonProcess(home, **env)
        try:
            daemon.wait_ready()
            last = ""
            for i, photo in enumerate(photos):
                ms, last = save_and_time(photo, home.share_dir, desktop, daemon, last, "https://")
                if i == 0:
                    first = ms  # SDK import and the first token refresh
                    continue
                times.append(ms)
                saved_at = time.time() - ms / 1000
                with sqlite3.connect(home.state_dir / "journal.sqlite3") as db:
                    (shared_at,) = db.execute(
                        "SELECT shared_at FROM shares ORDER BY created_at DESC LIMIT 1"
                    ).fetchone()
                to_link.append((shared_at - saved_at) * 1000)
                to_clip.append(ms - to_link[-1])
        finally:
            daemon.stop()
    return first, times, to_link, to_clip


FLOOR = """
import json, sys, time
from pathlib import Path
import dropbox
from dropbox import files
from daemon import prepare

app_key, token, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
photos = [Path(p) for p in sys.argv[4:]]
dbx = dropbox.Dropbox(oauth2_refresh_token=token, app_key=app_key)
dbx.users_get_current_account()  # warm: token refreshed, connection open
raw, prepared = [], []
for i, photo in enumerate(photos):
    t0 = time.perf_counter()
    dbx.files_upload(photo.read_bytes(), f"/floor{i}.jpg", mode=files.WriteMode.add)
    dbx.sharing_create_shared_link_with_settings(f"/floor{i}.jpg")
    raw.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    result = prepare.prepare(photo, out, f"p{i}", max_dimension=2560)
    dbx.files_upload(result.path.read_bytes(), f"/prep{i}.jpg", mode=files.WriteMode.add)
    dbx.sharing_create_shared_link_with_settings(f"/prep{i}.jpg")
    prepared.append((time.perf_counter() - t0) * 1000)
print(json.dumps([raw, prepared]))
"""


def measure_floor(
    fake: FakeDropbox, photos: list[Path], work: Path
) -> tuple[list[float], list[float]]:
    """In a process of its own, like the daemon: the fake's threads must not share its GIL."""
    out = work / "prepared"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", FLOOR, fake.app_key, fake.grant(), str(out)]
        + [str(p) for p in photos[1:]],
        env={**os.environ, **fake.env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    raw, prepared = json.loads(done.stdout)
    return raw, prepared


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=20)
    args = ap.parse_args()
    fake = FakeDropbox()
    fake.start()
    try:
        with tempfile.TemporaryDirectory(prefix="fl-dbx-bench-") as tmp:
            work = Path(tmp)
            photos = make_photos(work / "src", args.photos)
            size = photos[1].stat().st_size // 1024
            first, daemon, to_link, to_clip = measure_daemon(fake, photos, work)
            raw, prepared = measure_floor(fake, photos, work)
            with start_desktop() as desktop:
                os.environ.update(desktop.env)
                clip = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    clipboard.copy("https://www.dropbox.com/scl/fi/x/y.jpg?rlkey=z&dl=0")
                    clip.append((time.perf_counter() - t0) * 1000)
    finally:
        fake.stop()
    print(
        f"save→clipboard through Dropbox (fake, HTTPS on loopback), {args.photos} photos "
        f"{SIZE[0]}x{SIZE[1]} JPEG with GPS, {size} KiB, no resize (ms)"
    )
    print(f"{'case':<44}{'n':>4}{'p50':>9}{'p95':>9}")
    rows = [
        ("daemon: save → Dropbox link on clipboard", daemon),
        ("  of which save → link recorded (journal)", to_link),
        ("  of which link recorded → on clipboard", to_clip),
        ("floor: raw SDK upload + create link", raw),
        ("floor: prepare + SDK upload + create link", prepared),
        ("clipboard copy + read-back", clip),
    ]
    for label, values in rows:
        print(f"{label:<44}{len(values):>4}{pct(values, 50):>9.1f}{pct(values, 95):>9.1f}")
    print(f"{'daemon: first photo after start':<44}{1:>4}{first:>9.1f}")
    p50 = statistics.median(daemon)
    print(f"daemon overhead over the raw SDK floor at p50: {p50 - statistics.median(raw):.1f} ms")
    print(
        f"daemon overhead over prepare + SDK at p50:     {p50 - statistics.median(prepared):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
