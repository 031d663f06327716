"""QR codes of links: what the terminal shows and the notification's picture must scan back to
the very link. Decoded by zbar's zbarimg, a reader that shares no code with the encoder."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from daemon import qr
from tests.desktop import require_binaries

LINK = "http://192.168.1.20:8787/9fJ2kQ-xv_3LrT0aZ8mNc4HbWqYe1sDu"
SCALE = 8  # pixels per module in the rebuilt image: a comfortable size for the reader


def scan(image: Path) -> str:
    require_binaries("zbarimg")
    done = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(image)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def save_modules(rows: list[list[bool]], dest: Path) -> Path:
    """Paint dark modules (True) black on white, SCALE pixels each."""
    width = max(len(r) for r in rows)
    img = Image.new("L", (width * SCALE, len(rows) * SCALE), 255)
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark:
                img.paste(0, (x * SCALE, y * SCALE, (x + 1) * SCALE, (y + 1) * SCALE))
    img.save(dest)
    return dest


def test_the_notification_picture_scans_to_the_link(tmp_path: Path) -> None:
    picture = qr.png(LINK, tmp_path / "qr.png")
    assert picture.stat().st_mode & 0o777 == 0o600  # it carries the link: a secret
    with Image.open(picture) as img:
        assert 200 <= img.width <= 300  # big enough for a notification to show
    assert scan(picture) == LINK


def test_the_terminal_code_in_colour_scans_to_the_link(tmp_path: Path) -> None:
    text = qr.terminal(LINK)
    rows: list[list[bool]] = []
    for line in text.splitlines():
        top: list[bool] = []
        bottom: list[bool] = []
        fg = bg = 0
        for escape, char in re.findall(r"\x1b\[(\d+;\d+)m|(▀)", line):
            if escape:
                fg, bg = (int(n) for n in escape.split(";"))
            elif char:
                top.append(fg == 30)  # black foreground: the upper module is dark
                bottom.append(bg == 40)
        rows += [top, bottom]
    width = len(rows[0])
    assert width <= 80 and len(text.splitlines()) <= 40  # fits a usual terminal
    assert scan(save_modules(rows, tmp_path / "terminal.png")) == LINK


def test_the_plain_terminal_code_scans_to_the_link(tmp_path: Path) -> None:
    # Plain blocks draw the light modules: on a dark terminal, what shows is a normal code.
    text = qr.terminal(LINK, colour=False)
    assert "\x1b" not in text
    light = {"█": (True, True), "▀": (True, False), "▄": (False, True), " ": (False, False)}
    rows: list[list[bool]] = []
    for line in text.splitlines():
        cells = [light[c] for c in line]
        rows += [[not t for t, _ in cells], [not b for _, b in cells]]
    assert scan(save_modules(rows, tmp_path / "plain.png")) == LINK


@pytest.mark.parametrize("link", [LINK, "https://photos.example.com/pics/" + "x" * 32])
def test_links_of_every_kind_fit(link: str, tmp_path: Path) -> None:
    assert scan(qr.png(link, tmp_path / "qr.png")) == link
