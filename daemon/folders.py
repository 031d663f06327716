"""What a file's place in the share folder means: pure logic.

A subfolder named like a duration (`10m/`, `1h/`, `2d/`) sets the lifetime of what lands in it;
`once/` makes view-once links. The nearest such folder above the file decides; any other
subfolder keeps the default lifetime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath

from daemon.durations import is_duration, parse_duration

ONCE = "once"
# Created on the first run so users discover them.
STARTER_FOLDERS = ("10m", "1h", "1d")


@dataclass(frozen=True)
class Placement:
    folder: str  # the deciding subfolder's path relative to the share folder; "" for none
    lifetime_s: int
    once: bool


def placement(root: PurePath, path: PurePath, default_lifetime_s: int) -> Placement:
    """Lifetime and kind of link for `path` (a file below `root`)."""
    rel = path.relative_to(root)
    parents = rel.parts[:-1]
    for depth in range(len(parents), 0, -1):
        name = parents[depth - 1].lower()
        if name == ONCE:
            # A view-once link still keeps the default lifetime as an upper bound, or the
            # duration of a folder above once/ (e.g. 1d/once/).
            outer = placement(root, root.joinpath(*parents[: depth - 1], "x"), default_lifetime_s)
            return Placement("/".join(parents[:depth]), outer.lifetime_s, True)
        if is_duration(name):
            return Placement("/".join(parents[:depth]), parse_duration(name), False)
    return Placement("", default_lifetime_s, False)


def make_starter_folders(root: Path, names: tuple[str, ...] = STARTER_FOLDERS) -> None:
    for name in names:
        (root / name).mkdir(exist_ok=True)
