"""Which backend a share goes through: each share records its backend's name, so switching
FADELINK_BACKEND later still revokes old links through the backend that made them."""

from __future__ import annotations

from collections.abc import Callable

from daemon.backends import Backend
from daemon.errors import PermanentError
from daemon.journal import Journal
from daemon.pipeline import Paths
from daemon.settings import Settings


def make_backends(settings: Settings, paths: Paths, journal: Journal) -> Callable[[str], Backend]:
    """A lookup from backend name to a backend, each created on first use."""
    cache: dict[str, Backend] = {}

    def get(name: str) -> Backend:
        if name not in cache:
            if name == "local":
                from daemon.backends.local import META_BASE_URL, LocalBackend

                # The running daemon publishes its link server's address in the journal, so
                # links made by the CLI point at the same server.
                cache[name] = LocalBackend(paths.served, lambda: journal.get_meta(META_BASE_URL))
            elif name == "dropbox":
                from daemon import auth
                from daemon.backends.dropbox import DropboxBackend

                cache[name] = DropboxBackend(
                    lambda: auth.credentials(settings),
                    folder=settings.dropbox_folder,
                    link_style=settings.dropbox_link_style,
                    on_expiry=settings.on_expiry,
                    keep_names=settings.keep_names,
                    # Facts learnt about the account (e.g. links may not expire) are kept.
                    get_meta=journal.get_meta,
                    set_meta=journal.set_meta,
                )
            else:
                raise PermanentError(f"the {name} backend is not available in this version")
        return cache[name]

    return get
