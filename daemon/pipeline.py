"""The steps of a share, each a recorded state transition: take → prepare → upload → link → revoke.

Synchronous and blocking (file I/O, Pillow, network): the daemon runs these in worker threads, the
CLI calls them directly. Every step can be re-run after a crash; the journal says where to resume.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon import prepare
from daemon.backends import Backend
from daemon.crashpoint import crashpoint
from daemon.errors import BadImage, IncompleteImage, NotAnImage, PermanentError, TransientError
from daemon.journal import Journal, Share, State
from daemon.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paths:
    state_dir: Path

    @property
    def prepared(self) -> Path:
        return self.state_dir / "prepared"

    @property
    def served(self) -> Path:
        return self.state_dir / "served"

    @property
    def thumbs(self) -> Path:
        return self.state_dir / "thumbs"

    def thumb_for(self, share_id: str) -> Path:
        return self.thumbs / f"{share_id}.png"

    def make(self) -> None:
        for d in (self.state_dir, self.prepared, self.served, self.thumbs):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)


_DECODE_SLOTS = threading.BoundedSemaphore(max(1, min(4, os.cpu_count() or 1)))


@dataclass(frozen=True)
class Taken:
    share: Share
    duplicate: bool  # the same content is already shared from the same folder


def file_hash(path: Path) -> str:
    """SHA-256 of a file, read without following a symlink (the same hash prepare records)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class Pipeline:
    def __init__(
        self,
        journal: Journal,
        backends: Callable[[str], Backend],
        paths: Paths,
        *,
        backend_name: str,
        max_dimension: int,
        keep_metadata: bool = False,
        keep_location: bool = False,
        keep_names: bool = False,
        share_any: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.journal = journal
        self.backend_for = backends
        self.paths = paths
        self.backend_name = backend_name
        self.max_dimension = max_dimension
        self.keep = prepare.Keep(metadata=keep_metadata, location=keep_location)
        # The prepared file's name becomes the remote name (see LocalBackend.remote_path).
        self.keep_names = keep_names
        self.share_any = share_any  # non-images are shared as they are, metadata and all
        self.clock = clock

    @classmethod
    def from_settings(
        cls, settings: Settings, journal: Journal, clock: Callable[[], float] = time.time
    ) -> Pipeline:
        """The pipeline the daemon and the CLI both use, configured by the settings."""
        from daemon.backends.registry import make_backends  # the registry imports this module

        paths = Paths(settings.state_dir)
        return cls(
            journal,
            make_backends(settings, paths, journal),
            paths,
            backend_name=settings.backend,
            max_dimension=settings.max_dimension,
            keep_metadata=settings.keep_metadata,
            keep_location=settings.keep_location,
            keep_names=settings.keep_names,
            share_any=settings.share_any,
            clock=clock,
        )

    # -- take: a file becomes a pending share (exactly once per file version) ---------------

    def take(
        self,
        path: Path,
        lifetime_s: int,
        *,
        remember: bool = True,
        folder: str = "",
        once: bool = False,
    ) -> Taken | None:
        """Record `path` as a pending share; None if this file version was already taken.

        The same content saved again into the same folder while its link is alive is not
        uploaded again: the live share comes back with duplicate=True.
        Raises NotAnImage for a file that is not an image (the caller says so once).
        """
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise NotAnImage(f"{path} is not a regular file")
        if not self.share_any and prepare.sniff(path) is None:
            raise NotAnImage(f"{path.name} is not a photo fadelink can share; it was left alone")
        result = self.journal.add_pending(
            str(path),
            st.st_size,
            st.st_mtime_ns,
            backend=self.backend_name,
            lifetime_s=lifetime_s,
            now=self.clock(),
            remember=remember,
            content_hash=file_hash(path) if remember else None,
            folder=folder,
            once=once,
        )
        if result is None:
            return None
        share, duplicate = result
        if not duplicate:
            crashpoint("after_pending")
        return Taken(share, duplicate)

    # -- process: from wherever the share stands, up to a live link -------------------------

    def process(self, share: Share) -> Share:
        """Drive a pending or uploading share to live. Returns it as the journal has it then.

        IncompleteImage: the share was withdrawn (the file will be seen again when it changes).
        PermanentError: the share is marked failed and the error re-raised.
        """
        try:
            if share.once and not getattr(self.backend_for(share.backend), "view_once", True):
                # Only fadelink's own link server can tell a view: refuse rather than pretend.
                raise PermanentError(
                    f"view-once links need the local backend (FADELINK_BACKEND=local); "
                    f"{share.backend} cannot count views, so this photo was not shared"
                )
            if share.state is State.PENDING:
                share = self._prepare(share)
            if share.state is State.PENDING:
                share = self._start_upload(share)
            if share.state is State.UPLOADING:
                share = self._finish_upload(share)
        except IncompleteImage:
            self.journal.discard(share.id)
            raise
        except (PermanentError, NotAnImage, BadImage) as exc:
            self._fail(share, str(exc))
            raise PermanentError(str(exc)) from exc
        return share

    def _reload(self, share_id: str) -> Share:
        share = self.journal.get(share_id)
        assert share is not None, share_id
        return share

    def _prepare(self, share: Share) -> Share:
        if share.prepared_path and Path(share.prepared_path).exists():
            return share  # prepared before a crash; the copy is complete (written atomically)
        source = Path(share.source)
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            raise PermanentError(f"{source.name} vanished before it could be shared") from None
        if (st.st_size, st.st_mtime_ns) != (share.source_size, share.source_mtime_ns):
            # Changed since it was taken: the new version is a candidate of its own.
            raise IncompleteImage(f"{source.name} changed while being prepared")
        self.paths.prepared.mkdir(parents=True, exist_ok=True, mode=0o700)
        dest = self.paths.prepared
        # Random names never collide; kept ones (two IMG_0001.jpg) become name-2.jpg.
        unique = self.keep_names
        name = prepare.shareable_stem(source.name) if unique else secrets.token_urlsafe(12)
        try:
            # Decoding is CPU- and memory-bound: no more at once than there are cores, however
            # many shares upload in parallel (uploads wait on the network, not the CPU).
            with _DECODE_SLOTS:
                result = prepare.prepare(
                    source, dest, name, max_dimension=self.max_dimension, keep=self.keep,
                    unique=unique,
                )
        except NotAnImage:
            if not self.share_any:
                raise
            result = prepare.copy_as_is(source, dest, name, unique=unique)
        self.journal.set_prepared(share.id, str(result.path), result.content_hash, self.clock())
        crashpoint("after_prepare")
        return self._reload(share.id)

    def _start_upload(self, share: Share) -> Share:
        assert share.prepared_path
        backend = self.backend_for(share.backend)
        remote = backend.remote_path(Path(share.prepared_path))
        self.journal.to_uploading(share.id, remote, self.clock())
        crashpoint("after_uploading")
        return self._reload(share.id)

    def _finish_upload(self, share: Share) -> Share:
        assert share.prepared_path and share.remote_path
        backend = self.backend_for(share.backend)
        backend.upload(Path(share.prepared_path), share.remote_path)
        crashpoint("after_upload")
        # The lifetime starts when the link is created.
        now = self.clock()
        link = backend.create_link(share.remote_path, now + share.lifetime_s)
        self.journal.to_live(share.id, link.url, link.key, now, now + share.lifetime_s)
        crashpoint("after_live")
        Path(share.prepared_path).unlink(missing_ok=True)
        return self._reload(share.id)

    def _fail(self, share: Share, reason: str) -> None:
        current = self._reload(share.id)
        if current.state is State.UPLOADING and current.remote_path:
            # Something may have reached the remote: clean it up before giving up.
            try:
                self.backend_for(current.backend).revoke(current.remote_path, current.url)
            except TransientError:
                # Cannot clean up now: let the scheduler retry it like any revocation.
                self.journal.to_revoking(share.id, f"failed: {reason}", self.clock())
                return
        self.journal.to_failed(share.id, reason, self.clock())
        if current.prepared_path:
            Path(current.prepared_path).unlink(missing_ok=True)

    # -- revoke: the link dies and the copy is deleted --------------------------------------

    def revoke(self, share: Share, reason: str) -> Share:
        """Revoke and delete. Raises TransientError (recorded by the caller) to retry later."""
        if share.state in (State.PENDING, State.UPLOADING, State.LIVE):
            self.journal.to_revoking(share.id, reason, self.clock())
            crashpoint("after_revoking")
            share = self._reload(share.id)
        if share.state is not State.REVOKING:
            return share
        if share.remote_path:
            self.backend_for(share.backend).revoke(share.remote_path, share.url)
            crashpoint("after_remote_revoked")
        for leftover in (share.prepared_path, str(self.paths.thumb_for(share.id))):
            if leftover:
                Path(leftover).unlink(missing_ok=True)
        self.journal.to_gone(share.id, self.clock())
        return self._reload(share.id)

    def sweep_orphans(self) -> int:
        """Delete prepared or served files no active share refers to (left by a crash)."""
        active = self.journal.shares([State.PENDING, State.UPLOADING, State.LIVE, State.REVOKING])
        keep = {Path(s.prepared_path).name for s in active if s.prepared_path}
        keep |= {s.remote_path for s in active if s.remote_path and s.backend == "local"}
        removed = 0
        for d in (self.paths.prepared, self.paths.served):
            if not d.is_dir():
                continue
            for entry in d.iterdir():
                if entry.name not in keep:
                    entry.unlink(missing_ok=True)
                    removed += 1
        return removed
