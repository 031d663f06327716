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
    # FADELINK_SHARE_ANY: videos play in the browser; anything else is served for download.
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
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
        """The prepared file's name (random, or the original with FADELINK_KEEP_NAMES), made
        unique among the served files by a -2, -3... suffix.

        The name is reserved with an empty placeholder (exclusive create), so two shares of
        IMG_0001.jpg never get the same one; the upload replaces it. The link's token is
        random whatever the name.
        """
        self.served_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        stem, ext = prepared.stem.lstrip(".") or "photo", prepared.suffix.lower()
        for n in range(1, 10_000):
            name = f"{stem}{ext}" if n == 1 else f"{stem}-{n}{ext}"
            try:
                os.close(os.open(self.path_of(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                continue
            except OSError as exc:
                raise TransientError(f"could not reserve a served name: {exc.strerror}") from exc
            return name
        return secrets.token_urlsafe(16) + ext  # ten thousand namesakes alive: give up the name

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
            # Moved there before a crash: done; else (missing, or only the empty placeholder
            # remote_path reserved) it is truly lost.
            if not dest.exists() or dest.stat().st_size == 0:
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
