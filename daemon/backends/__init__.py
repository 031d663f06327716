"""Backends: where a prepared photo goes and how its link is made and killed.

The interface is deliberately small, so that another service can be added by writing one module.
Every method is idempotent: after a crash the pipeline simply calls it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Link:
    url: str
    # What the embedded link server matches requests against (a hash of the URL's token);
    # None for backends whose links are served elsewhere.
    key: str | None = None


class Backend(Protocol):
    name: str

    def remote_path(self, prepared: Path) -> str:
        """Choose where the copy will live; recorded in the journal before the upload."""
        ...

    def upload(self, prepared: Path, remote_path: str) -> None:
        """Put the prepared file at remote_path (again, if it is already there)."""
        ...

    def create_link(self, remote_path: str, expires_at: float) -> Link:
        """Make the link; expires_at (epoch UTC) may be used as a server-side backstop."""
        ...

    def revoke(self, remote_path: str, url: str | None) -> None:
        """Kill the link and delete the remote copy; what is already gone counts as done."""
        ...
