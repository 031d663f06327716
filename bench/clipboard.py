"""What the clipboard's safety costs: daemon/clipboard.py next to plain pyperclip, in one run.

    .venv/bin/python bench/clipboard.py [--runs 30]

Starts a private Xvfb and measures, per copy:
- baseline: pyperclip.copy + pyperclip.paste in this process (what a naive daemon does; it
  caches the backend, can hang in wl-copy and hangs captured output through xclip);
- copy(): ours, a short child process that copies and reads back, on a DISPLAY;
- copy() without a display: the helper plus asking the user manager (`systemctl --user
  show-environment`) for one, the path of a service started before the session;
- round_trip(): `fadelink doctor`'s check, which also puts back what the clipboard held.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyperclip  # noqa: E402

from daemon import clipboard  # noqa: E402
from tests.desktop import start_desktop  # noqa: E402

LINK = "http://192.168.1.20:8787/fypS0REmzMu0xqNWFNSFYmE8X-dP7927"


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def row(name: str, ms: list[float]) -> str:
    p95 = sorted(ms)[max(0, int(len(ms) * 0.95) - 1)]
    return f"| {name:<38} | {statistics.median(ms):8.1f} | {p95:8.1f} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    runs = ap.parse_args().runs
    with start_desktop(dunst=False) as desktop:
        os.environ["DISPLAY"] = desktop.display
        os.environ.pop("WAYLAND_DISPLAY", None)

        def naive() -> None:
            pyperclip.copy(LINK)
            assert pyperclip.paste() == LINK

        def ours() -> None:
            assert clipboard.copy(LINK).ok

        def check() -> None:
            assert clipboard.round_trip().ok

        results = [
            ("baseline: pyperclip in-process", timed(naive, runs)),
            ("copy() with read-back", timed(ours, runs)),
            ("round_trip() (doctor)", timed(check, runs)),
        ]
        del os.environ["DISPLAY"]
        results.append(
            ("copy() without DISPLAY (asks systemd)", timed(lambda: clipboard.copy(LINK), runs))
        )
    print(f"{runs} runs each, milliseconds")
    print(f"| {'what':<38} | {'median':>8} | {'p95':>8} |")
    print(f"|{'-' * 40}|{'-' * 10}|{'-' * 10}|")
    for name, ms in results:
        print(row(name, ms))


if __name__ == "__main__":
    main()
