"""QR codes of links, so a phone opens one by camera: in the terminal and as a picture.

segno (pure Python) stays behind this module.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import segno

# Explicit colours, so the code reads right on light and dark terminals alike.
_DARK_FG, _DARK_BG, _LIGHT_FG, _LIGHT_BG = 30, 40, 97, 107
_HALF = "▀"  # upper half block: the top module in the foreground colour, the bottom in the back


def _code(url: str) -> segno.QRCode:
    # Medium error correction: still reads from a glossy screen, stays small for a long link.
    return segno.make(url, error="m", micro=False)


def terminal(url: str, *, colour: bool = True) -> str:
    """The code as text, two modules per character cell (rows of upper half blocks).

    colour=False gives plain block characters (light modules drawn, for dark backgrounds), for
    output that is not a terminal.
    """
    code = _code(url)
    if not colour:
        out = io.StringIO()
        code.terminal(out=out, compact=True)
        return out.getvalue()
    rows = [list(row) for row in code.matrix_iter(border=4)]
    if len(rows) % 2:
        rows.append([0] * len(rows[0]))  # light padding below the quiet zone
    lines = []
    for top, bottom in zip(rows[::2], rows[1::2], strict=True):
        line, last = [], None
        for t, b in zip(top, bottom, strict=True):
            colours = (_DARK_FG if t else _LIGHT_FG, _DARK_BG if b else _LIGHT_BG)
            if colours != last:  # an escape only where the colours change
                line.append("\x1b[{};{}m".format(*colours))
                last = colours
            line.append(_HALF)
        lines.append("".join(line) + "\x1b[0m")
    return "\n".join(lines) + "\n"


def png(url: str, dest: Path, *, size: int = 256) -> Path:
    """Write the code as a PNG about `size` pixels wide (for a notification), readable only by
    this user: it carries the link, a secret."""
    code = _code(url)
    width = code.symbol_size(border=4)[0]
    tmp = dest.with_name(dest.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        code.save(f, kind="png", scale=max(1, size // width), border=4)
    os.replace(tmp, dest)
    return dest
