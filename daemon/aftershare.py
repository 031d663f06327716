"""What happens to the original once it is shared: keep (default), move into .shared/, delete."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

SHARED_DIR = ".shared"  # hidden, so the watcher never takes what was moved there


def after_share(policy: str, root: Path, source: Path) -> Path | None:
    """Apply the policy; returns the new path when moved. Never raises for a vanished file."""
    if policy == "keep":
        return None
    try:
        if policy == "delete":
            source.unlink()
            return None
        dest = root / SHARED_DIR / source.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        stem, suffix, n = dest.stem, dest.suffix, 1
        while dest.exists():  # never overwrite an earlier original
            n += 1
            dest = dest.with_name(f"{stem} ({n}){suffix}")
        os.rename(source, dest)
        return dest
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("could not %s %s after sharing: %s", policy, source, exc.strerror)
        return None
