"""Reading QR codes back, for tests: zbar's zbarimg (no code shared with the encoder) on the
notification's picture, or on a picture rebuilt from what the terminal shows."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

from tests.desktop import require_binaries

SCALE = 8  # pixels per module in a rebuilt picture: a comfortable size for the reader


def scan(image: Path) -> str:
    """The text of the one QR code in `image`."""
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


def colour_modules(text: str) -> list[list[bool]]:
    """Modules of a colour terminal code: upper half blocks, black foreground = dark above,
    black background = dark below."""
    rows: list[list[bool]] = []
    for line in text.splitlines():
        top: list[bool] = []
        bottom: list[bool] = []
        fg = bg = 0
        for escape, char in re.findall(r"\x1b\[(\d+;\d+)m|(▀)", line):
            if escape:
                fg, bg = (int(n) for n in escape.split(";"))
            elif char:
                top.append(fg == 30)
                bottom.append(bg == 40)
        rows += [top, bottom]
    return rows


def plain_modules(text: str) -> list[list[bool]]:
    """Modules of a plain terminal code: blocks draw the light modules (for dark terminals)."""
    light = {"█": (True, True), "▀": (True, False), "▄": (False, True), " ": (False, False)}
    rows: list[list[bool]] = []
    for line in text.splitlines():
        cells = [light[c] for c in line]
        rows += [[not t for t, _ in cells], [not b for _, b in cells]]
    return rows


def read_terminal(text: str) -> str:
    """The link a terminal QR code (colour or plain) stands for."""
    rows = colour_modules(text) if "\x1b[" in text else plain_modules(text)
    with tempfile.TemporaryDirectory() as tmp:
        return scan(save_modules(rows, Path(tmp) / "terminal.png"))
