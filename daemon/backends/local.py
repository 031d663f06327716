"""The embedded default: copies served by the link server inside the daemon, no account needed."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from daemon.backends import Link
from daemon.errors import PermanentError, TransientError
from daemon.server import new_token

META_BASE_URL = "local_base_url"  # journal meta key: where the running link server answers

MIME = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
}


def link_key(token: str) -> str:
    # Requests are matched on a hash of the token: the lookup's timing reveals nothing about it.
    return hashlib.sha256(token.encode()).hexdigest()


class LocalBackend:
    name = "local"

    def __init__(self, served_dir: Path, base_url: Callable[[], str | None]) -> None:
        self.served_dir = served_dir
        self._base_url = base_url

    def remote_path(self, prepared: Path) -> str:
        return secrets.token_urlsafe(16) + prepared.suffix.lower()

    def path_of(self, remote_path: str) -> Path:
        # remote_path comes from our own journal, but never let it name anything outside.
        if "/" in remote_path or remote_path.startswith("."):
            raise PermanentError(f"bad served name {remote_path!r}")
        return self.served_dir / remote_path

    def upload(self, prepared: Path, remote_path: str) -> None:
        dest = self.path_of(remote_path)
        self.served_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            os.replace(prepared, dest)
        except FileNotFoundError:
            if not dest.exists():  # moved there before a crash: done; else it is truly lost
                raise PermanentError(
                    f"the prepared copy {prepared} vanished before it was served"
                ) from None

    def create_link(self, remote_path: str, expires_at: float) -> Link:
        base = self._base_url()
        if not base:
            raise TransientError("the link server is not running (start `fadelink run`)")
        token = new_token()
        return Link(url=f"{base}/{token}", key=link_key(token))

    def revoke(self, remote_path: str, url: str | None) -> None:
        # The link itself dies with the journal's state change (the server checks it on every
        # request); here only the served copy goes.
        try:
            self.path_of(remote_path).unlink(missing_ok=True)
        except OSError as exc:
            raise TransientError(f"could not delete the served copy: {exc.strerror}") from exc
