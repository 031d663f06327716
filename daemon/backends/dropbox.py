"""Dropbox, through the official SDK: the only module that imports it.

SDK types never leave this module, and every SDK or network error is converted in one place
(`convert`) into fadelink's few exceptions: TransientError (retry later, maybe after
retry_after), Unreachable (wait until Dropbox answers again), PermanentError (this share failed,
and why) and NeedsSignIn (stop uploading, keep the queue, ask the user to sign in).

Paths are relative to the app folder (the app has "App folder" access). Links are revoked with
the exact URL Dropbox returned: the URL handed out may be rewritten (FADELINK_DROPBOX_LINK_STYLE
raw), so revocation lists the file's links and revokes each as Dropbox lists it.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dropbox
import requests
import urllib3
from dropbox import files, sharing
from dropbox.exceptions import (
    ApiError,
    AuthError,
    BadInputError,
    HttpError,
    InternalServerError,
    PathRootError,
    RateLimitError,
)
from stone.backends.python_rsrc.stone_validators import ValidationError

from daemon import __version__
from daemon.backends import Link
from daemon.errors import (
    FadelinkError,
    NeedsSignIn,
    PermanentError,
    TransientError,
    Unreachable,
)

log = logging.getLogger(__name__)
# The SDK logs every request at INFO: too chatty for a daemon's log.
logging.getLogger("dropbox").setLevel(logging.WARNING)

# What fadelink asks for at sign-in; the README tells which boxes to tick in the App Console.
SCOPES = [
    "account_info.read",
    "files.content.write",
    "files.metadata.read",
    "sharing.read",
    "sharing.write",
]
CHUNK = 8 * 1024 * 1024  # larger files go through an upload session, in chunks of this size
TIMEOUT = 30.0  # seconds without a byte from Dropbox before a call gives up
# The SDK retries 429s forever by default and sleeps in our worker thread: bound it, and leave
# longer waits to fadelink's own backoff, which does not hold a thread.
RATE_LIMIT_RETRIES = 1
SERVER_ERROR_RETRIES = 1
LINK_ROUNDS = 50  # list → revoke rounds before giving up on a file with endless links
REVOKED = "Dropbox access was revoked — run fadelink auth dropbox"
NOT_SIGNED_IN = "fadelink is not signed in to Dropbox — run fadelink auth dropbox"
META_NO_EXPIRY = "dropbox_no_expiry:"  # + account: Dropbox refused to let links expire

LinkStyle = Literal["preview", "raw"]
OnExpiry = Literal["delete", "revoke"]


@dataclass(frozen=True)
class Credentials:
    app_key: str
    refresh_token: str = field(repr=False)  # a secret: never in a repr, a log or a message
    account_id: str | None = None


@dataclass(frozen=True)
class Account:
    account_id: str
    name: str
    email: str
    email_verified: bool
    plan: str  # basic, pro, business


# -- errors ---------------------------------------------------------------------------------


def _tags(value: Any, depth: int = 0) -> list[str]:
    """The chain of union tags in a Stone error, e.g. ['path', 'conflict', 'file']."""
    tag = getattr(value, "_tag", None)
    if tag is None or depth > 6:
        return []
    return [tag, *_tags(getattr(value, "_value", None), depth + 1)]


def _unreachable(exc: requests.exceptions.RequestException) -> bool:
    """No connection could be made at all (refused, no route, no DNS), as opposed to one that
    broke or stalled mid-request."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError) or isinstance(
        exc, requests.exceptions.SSLError
    ):
        return False
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def convert(exc: BaseException, what: str) -> FadelinkError | None:
    """The one place where SDK and network errors become fadelink's own; None: not ours."""
    if isinstance(exc, FadelinkError):
        return exc
    if isinstance(exc, AuthError):
        tag = _tags(exc.error)[:1]
        if tag == ["expired_access_token"]:  # the SDK refreshes once; next time it will again
            return TransientError(f"could not {what}: the Dropbox access token expired")
        if tag == ["missing_scope"]:
            scope = getattr(exc.error.get_missing_scope(), "required_scope", None) or "?"
            return NeedsSignIn(
                f"your Dropbox app lacks the {scope} permission: tick it in the App Console "
                "(Permissions tab), then run fadelink auth dropbox"
            )
        if tag == ["user_suspended"]:
            return NeedsSignIn("your Dropbox account is suspended; see dropbox.com")
        if tag == ["route_access_denied"]:
            return PermanentError(f"Dropbox does not let this app {what}")
        return NeedsSignIn(REVOKED)  # invalid_access_token, and invalid_grant on refresh
    if isinstance(exc, RateLimitError):
        return TransientError(
            f"could not {what} yet: Dropbox asks to slow down", retry_after=exc.backoff
        )
    if isinstance(exc, InternalServerError):
        return TransientError(f"could not {what}: Dropbox had a server error ({exc.status_code})")
    if isinstance(exc, BadInputError):
        return PermanentError(f"could not {what}: Dropbox rejected the request ({exc.message})")
    if isinstance(exc, PathRootError):
        return PermanentError(f"could not {what}: Dropbox rejected the folder")
    if isinstance(exc, HttpError):
        if exc.status_code >= 500 or exc.status_code in (408, 425):
            return TransientError(f"could not {what}: Dropbox answered {exc.status_code}")
        return PermanentError(f"could not {what}: Dropbox answered {exc.status_code}")
    if isinstance(exc, ApiError):
        tags = _tags(exc.error)
        said = exc.user_message_text or "/".join(tags) or "an error"
        if {"too_many_write_operations", "too_many_requests", "internal_error"} & set(tags):
            return TransientError(f"could not {what} yet: Dropbox is busy ({said})")
        if "insufficient_space" in tags:
            return PermanentError(f"could not {what}: your Dropbox is full")
        if "email_not_verified" in tags:
            return PermanentError(
                f"could not {what}: Dropbox creates links only once you verify your email "
                "address (see the email Dropbox sent, or dropbox.com → Account)"
            )
        if "access_denied" in tags:
            return PermanentError(f"could not {what}: Dropbox denied access ({said})")
        return PermanentError(f"could not {what}: Dropbox refused ({said})")
    if isinstance(exc, requests.exceptions.RequestException):
        if _unreachable(exc):
            return Unreachable(f"could not {what}: Dropbox cannot be reached")
        if isinstance(exc, requests.exceptions.Timeout):
            return TransientError(f"could not {what}: Dropbox did not answer in time")
        if isinstance(exc, requests.exceptions.SSLError):
            return TransientError(f"could not {what}: the secure connection to Dropbox failed")
        return TransientError(f"could not {what}: the connection to Dropbox broke")
    if isinstance(exc, ValidationError):
        return PermanentError(
            f"could not {what}: Dropbox sent a reply fadelink does not understand"
        )
    if isinstance(exc, FileNotFoundError):
        return PermanentError(f"could not {what}: the prepared copy is gone")
    if isinstance(exc, OSError):
        return TransientError(f"could not {what}: {exc.strerror or exc}")
    return None


# -- links ----------------------------------------------------------------------------------


def styled(url: str, style: LinkStyle) -> str:
    """The link handed out: Dropbox's page (as returned) or the image itself (raw=1), with the
    rest of the query (rlkey above all) kept as it was."""
    if style == "preview":
        return url
    parts = urlsplit(url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("dl", "raw")
    ]
    query.append(("raw", "1"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _as_returned(url: str) -> bool:
    """Dropbox returns page links (dl=0); one carrying raw=1 was rewritten by fadelink."""
    return "raw" not in dict(parse_qsl(urlsplit(url).query))


def _utc(ts: float) -> datetime:
    # The SDK wants naive UTC; whole seconds, rounded up so the backstop is never early.
    return datetime.fromtimestamp(int(-(-ts // 1)), UTC).replace(tzinfo=None)


def _host_port(host: str) -> tuple[str, int]:
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name.strip("[]"), int(port)
    return host, 443


# -- the backend ----------------------------------------------------------------------------


class DropboxBackend:
    name = "dropbox"
    view_once = False  # Dropbox counts no views: share/once/ needs the local backend

    def __init__(
        self,
        credentials: Callable[[], Credentials | None],
        *,
        folder: str = "/",
        link_style: LinkStyle = "preview",
        on_expiry: OnExpiry = "delete",
        get_meta: Callable[[str], str | None] = lambda key: None,
        set_meta: Callable[[str, str], None] = lambda key, value: None,
        chunk_size: int = CHUNK,
        keep_names: bool = False,
    ) -> None:
        self._load = credentials
        self.keep_names = keep_names
        self.folder = "/" + folder.strip("/") if folder.strip("/") else ""
        self.link_style = link_style
        self.on_expiry = on_expiry
        self._get_meta = get_meta
        self._set_meta = set_meta
        self.chunk_size = chunk_size
        self._lock = threading.Lock()
        self._creds: Credentials | None = None
        self._client: dropbox.Dropbox | None = None
        self._refused: set[str] = set()  # refresh tokens Dropbox no longer accepts
        self._sessions: dict[str, list[Any]] = {}  # remote path → [session id, offset]

    # -- credentials ----------------------------------------------------------------------

    def _dbx(self) -> dropbox.Dropbox:
        with self._lock:
            if self._client is None or self._creds is None:
                creds = self._load()
                if creds is None:
                    raise NeedsSignIn(NOT_SIGNED_IN)
                if creds.refresh_token in self._refused:
                    raise NeedsSignIn(REVOKED)
                self._creds = creds
                self._client = client(creds)
            return self._client

    def signed_in(self) -> bool:
        """Whether credentials Dropbox has not refused are at hand (re-read: a sign-in with
        `fadelink auth dropbox` while the daemon runs is noticed). No network."""
        with self._lock:
            if self._client is not None:
                return True
        creds = self._load()
        return creds is not None and creds.refresh_token not in self._refused

    def reachable(self) -> bool:
        """Whether Dropbox's API host accepts a connection (no request, no quota)."""
        host, port = _host_port(dropbox.session.API_HOST)
        try:
            with socket.create_connection((host, port), timeout=5):
                return True
        except OSError:
            return False

    @contextlib.contextmanager
    def _calling(self, what: str) -> Iterator[dropbox.Dropbox]:
        dbx = self._dbx()
        try:
            yield dbx
        except BaseException as exc:
            converted = convert(exc, what)
            if converted is None:
                raise
            if isinstance(converted, NeedsSignIn):
                with self._lock:
                    if self._creds is not None and self._client is dbx:
                        self._refused.add(self._creds.refresh_token)
                        self._creds = self._client = None
            if converted is exc:
                raise
            raise converted from exc

    def warm(self) -> None:
        """Sign in now (an access token from the refresh token), so the first photo needn't."""
        with self._calling("sign in to Dropbox") as dbx:
            dbx.check_and_refresh_access_token()

    # -- Backend ----------------------------------------------------------------------------

    def remote_path(self, prepared: Path) -> str:
        if self.keep_names:
            # FADELINK_KEEP_NAMES: the (sanitised) name is shown on Dropbox's page; a short
            # tag keeps two live "IMG_0001.jpg" apart, as mode add would otherwise conflict.
            tag = secrets.token_hex(3)
            return f"{self.folder}/{prepared.stem} {tag}{prepared.suffix.lower()}"
        # A random name: the link page shows it, and the original name may say too much.
        return f"{self.folder}/{secrets.token_urlsafe(12)}{prepared.suffix.lower()}"

    def upload(self, prepared: Path, remote_path: str) -> None:
        with self._calling("upload the photo") as dbx:
            size = prepared.stat().st_size
            if size <= self.chunk_size:
                # mode add: after a crash the same bytes again are no conflict.
                dbx.files_upload(
                    prepared.read_bytes(), remote_path, mode=files.WriteMode.add, mute=True
                )
            else:
                self._upload_chunked(dbx, prepared, remote_path, size)

    def _upload_chunked(
        self, dbx: dropbox.Dropbox, prepared: Path, remote_path: str, size: int
    ) -> None:
        """An upload session; a retry in this process resumes it where Dropbox says it stands."""
        commit = files.CommitInfo(remote_path, mode=files.WriteMode.add, mute=True)
        with open(prepared, "rb") as f:
            state = self._sessions.get(remote_path)
            if state is None:
                first = f.read(self.chunk_size)
                started = dbx.files_upload_session_start(first)
                state = self._sessions[remote_path] = [started.session_id, len(first)]
            try:
                while True:
                    session_id, offset = state
                    f.seek(offset)
                    chunk = f.read(self.chunk_size)
                    cursor = files.UploadSessionCursor(session_id, offset)
                    try:
                        if offset + len(chunk) >= size:
                            dbx.files_upload_session_finish(chunk, cursor, commit)
                            break
                        dbx.files_upload_session_append_v2(chunk, cursor)
                        state[1] = offset + len(chunk)
                    except ApiError as exc:
                        correct = _correct_offset(exc.error)
                        if correct is None or not 0 <= correct <= size:
                            raise
                        state[1] = correct  # e.g. the chunk landed but its answer was lost
            except ApiError as exc:
                if "not_found" in _tags(exc.error):  # the session expired: start over next time
                    self._sessions.pop(remote_path, None)
                raise
        self._sessions.pop(remote_path, None)

    def create_link(self, remote_path: str, expires_at: float) -> Link:
        with self._calling("create the link") as dbx:
            metadata = self._create(dbx, remote_path, expires_at)
        return Link(url=styled(metadata.url, self.link_style))

    def _no_expiry_key(self) -> str:
        creds = self._creds
        return META_NO_EXPIRY + ((creds.account_id or creds.app_key) if creds else "")

    def _may_expire(self) -> bool:
        return self._get_meta(self._no_expiry_key()) is None

    def _create(self, dbx: dropbox.Dropbox, path: str, expires_at: float | None) -> Any:
        settings = None
        if expires_at is not None and self._may_expire():
            # A server-side backstop: the link dies on time even if fadelink never runs again.
            settings = sharing.SharedLinkSettings(expires=_utc(expires_at))
        try:
            return dbx.sharing_create_shared_link_with_settings(path, settings)
        except ApiError as exc:
            err = exc.error
            if err.is_settings_error() and settings is not None:
                if err.get_settings_error().is_not_authorized():
                    # Basic accounts may not set an expiry: remember, and don't ask per photo.
                    log.info("this Dropbox account cannot let links expire; fadelink revokes them")
                    self._set_meta(self._no_expiry_key(), "1")
                # invalid_settings (say, clocks apart): a plain link; fadelink revokes it anyway.
                return self._create(dbx, path, None)
            if err.is_shared_link_already_exists():
                # Made before a crash or a lost answer: found again, never left untracked.
                existing = err.get_shared_link_already_exists()
                if existing is not None and existing.is_metadata():
                    return existing.get_metadata()
                links = self._links(dbx, path)[0]
                if links:
                    return links[0]
                raise TransientError("Dropbox reports a link it does not list yet") from None
            raise

    def _links(self, dbx: dropbox.Dropbox, path: str) -> tuple[list[Any], bool]:
        """The file's own links, every page; and whether more exist that no cursor reaches."""
        try:
            page = dbx.sharing_list_shared_links(path=path, direct_only=True)
        except ApiError as exc:
            if "not_found" in _tags(exc.error):
                return [], False
            raise
        links = list(page.links)
        while page.has_more and page.cursor:
            page = dbx.sharing_list_shared_links(cursor=page.cursor)
            links += page.links
        mine = [ln for ln in links if (ln.path_lower or path.lower()) == path.lower()]
        return mine, bool(page.has_more and not page.cursor)

    def _revoke_url(self, dbx: dropbox.Dropbox, url: str) -> None:
        try:
            dbx.sharing_revoke_shared_link(url)
        except ApiError as exc:
            if not exc.error.is_shared_link_not_found():  # not found: already revoked
                log.warning("Dropbox would not revoke a link: %s", "/".join(_tags(exc.error)))

    def revoke(self, remote_path: str, url: str | None) -> None:
        with self._calling("revoke the link") as dbx:
            if url and _as_returned(url):
                self._revoke_url(dbx, url)
            # Every other link to the file too (one found again after a crash, say), each
            # with the exact URL Dropbox lists; revoked links drop out of the list at once.
            done: set[str] = set()
            for _ in range(LINK_ROUNDS):
                links, more = self._links(dbx, remote_path)
                fresh = [ln for ln in links if ln.url not in done]
                for ln in fresh:
                    self._revoke_url(dbx, ln.url)
                    done.add(ln.url)
                if not more or not fresh:
                    break
            if self.on_expiry == "delete":
                try:
                    dbx.files_delete_v2(remote_path)
                except ApiError as exc:
                    if _tags(exc.error)[-1:] != ["not_found"]:
                        raise

    def extend_link(self, remote_path: str, url: str | None, expires_at: float) -> None:
        """The deadline moved: move the server-side backstop with it, where there is one."""
        with self._calling("extend the link") as dbx:
            if not self._may_expire():
                return
            target = url if url and _as_returned(url) else None
            if target is None:
                links = self._links(dbx, remote_path)[0]
                if not links:
                    return
                target = links[0].url
            settings = sharing.SharedLinkSettings(expires=_utc(expires_at))
            try:
                dbx.sharing_modify_shared_link_settings(target, settings)
            except ApiError as exc:
                err = exc.error
                if err.is_settings_error() and err.get_settings_error().is_not_authorized():
                    self._set_meta(self._no_expiry_key(), "1")
                    return
                raise


def _correct_offset(error: Any) -> int | None:
    """correct_offset from an incorrect_offset error, at any depth (finish wraps it)."""
    for _ in range(4):
        if error is None:
            return None
        if getattr(error, "_tag", None) == "incorrect_offset":
            return int(error.get_incorrect_offset().correct_offset)
        error = getattr(error, "_value", None)
    return None


# -- sign-in and account (used by daemon/auth.py) -------------------------------------------


def client(creds: Credentials) -> dropbox.Dropbox:
    return dropbox.Dropbox(
        oauth2_refresh_token=creds.refresh_token,
        app_key=creds.app_key,
        max_retries_on_rate_limit=RATE_LIMIT_RETRIES,
        max_retries_on_error=SERVER_ERROR_RETRIES,
        timeout=TIMEOUT,
        user_agent=f"fadelink/{__version__}",
    )


class SignIn:
    """The PKCE flow without redirect: open `url`, approve, paste the code into finish()."""

    def __init__(self, app_key: str) -> None:
        self.app_key = app_key
        self._flow = dropbox.DropboxOAuth2FlowNoRedirect(
            app_key, use_pkce=True, token_access_type="offline", scope=SCOPES, timeout=TIMEOUT
        )
        self.url: str = self._flow.start()

    def finish(self, code: str) -> tuple[Credentials, Account]:
        try:
            result = self._flow.finish(code.strip())
        except requests.exceptions.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            raise PermanentError(
                f"Dropbox did not accept the code (HTTP {status}); codes work once and expire "
                "within minutes: run fadelink auth dropbox again"
            ) from exc
        except (requests.exceptions.RequestException, KeyError, ValueError) as exc:
            raise convert(exc, "sign in") or PermanentError(
                "Dropbox's sign-in answer was incomplete"
            ) from exc
        if not result.refresh_token:
            raise PermanentError("Dropbox gave no refresh token: is the app set up for it?")
        creds = Credentials(self.app_key, result.refresh_token, result.account_id)
        return creds, account(creds)


def account(creds: Credentials) -> Account:
    with _converted("read the account"):
        full = client(creds).users_get_current_account()
    return Account(
        account_id=full.account_id,
        name=full.name.display_name,
        email=full.email,
        email_verified=bool(full.email_verified),
        plan=_tags(full.account_type)[0] if _tags(full.account_type) else "?",
    )


def revoke_token(creds: Credentials) -> None:
    """Sign out at Dropbox: the refresh token (and its access tokens) stop working."""
    with _converted("revoke the sign-in"):
        client(creds).auth_token_revoke()


@contextlib.contextmanager
def _converted(what: str) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        converted = convert(exc, what)
        if converted is None or converted is exc:
            raise
        raise converted from exc
