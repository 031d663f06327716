"""A fake Dropbox API for tests: HTTPS on 127.0.0.1 with a throwaway CA, speaking the wire format
of the official SDK and encoding every reply with the SDK's own Stone serializers and classes, so
it cannot drift from what the SDK accepts. Arguments are decoded with the routes' own validators.

The daemon under test reaches it only through DROPBOX_API_HOST, DROPBOX_API_CONTENT_HOST and
REQUESTS_CA_BUNDLE (see `env`). Switches inject what real Dropbox does on a bad day: 429 with
retry_after (JSON body or only a Retry-After header), 5xx, dropped connections (before or after the
request took effect), expired access tokens, a revoked refresh token (invalid_grant), accounts that
may not set link expiry, shared_link_already_exists with and without metadata, unverified email,
and an outage (connections refused).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import socket
import ssl
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme


def _reserve_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The SDK reads its hosts once, when it is first imported, so one address serves every fake in
# this process (the tests' own SDK clients included): chosen before `dropbox` is imported.
if "dropbox" in sys.modules:
    raise RuntimeError("tests.fake_dropbox must be imported before the dropbox SDK")
PORT = _reserve_port()
CA = trustme.CA()
CA_FILE = Path(tempfile.mkdtemp(prefix="fake-dropbox-")) / "ca.pem"
CA.cert_pem.write_to_path(str(CA_FILE))
ENV = {
    "DROPBOX_API_HOST": f"127.0.0.1:{PORT}",
    "DROPBOX_API_CONTENT_HOST": f"127.0.0.1:{PORT}",
    "DROPBOX_WEB_HOST": f"127.0.0.1:{PORT}",
    "REQUESTS_CA_BUNDLE": str(CA_FILE),
}
os.environ.update(ENV)

from dropbox import auth, common, files, sharing, users, users_common  # noqa: E402
from dropbox.stone_serializers import (  # noqa: E402
    json_compat_obj_encode,
    json_decode,
    json_encode,
)

BLOCK = 4 * 1024 * 1024
MAX_UPLOAD = 150 * 1024 * 1024
ACCOUNT_ID = "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"  # Stone wants exactly 40 characters
# What a PKCE app with the permissions the README asks for may request.
APP_SCOPES = {
    "files.content.write",
    "files.metadata.read",
    "sharing.write",
    "sharing.read",
    "account_info.read",
}


def content_hash(data: bytes) -> str:
    """Dropbox's content hash, written here independently of the SDK's."""
    digests = b"".join(
        hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)
    )
    return hashlib.sha256(digests).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


@dataclass
class StoredFile:
    path_display: str
    data: bytes
    id: str
    rev: str
    modified: datetime

    def metadata(self) -> files.FileMetadata:
        return files.FileMetadata(
            name=self.path_display.rsplit("/", 1)[-1],
            id=self.id,
            client_modified=self.modified,
            server_modified=self.modified,
            rev=self.rev,
            size=len(self.data),
            path_lower=self.path_display.lower(),
            path_display=self.path_display,
            content_hash=content_hash(self.data),
            is_downloadable=True,
        )


@dataclass
class SharedLink:
    url: str
    path_lower: str
    name: str
    file_id: str
    expires: datetime | None
    created: datetime
    revoked: bool = False  # by revoke_shared_link
    dead: bool = False  # its file was deleted

    @property
    def live(self) -> bool:
        return not (self.revoked or self.dead)


@dataclass
class Fault:
    kind: str  # "429", "429_header", "5xx", "drop", "drop_after", "expired_token"
    route: str | None  # None: every route (including oauth2/token)
    times: int
    retry_after: int = 1


@dataclass
class Session:
    data: bytearray = field(default_factory=bytearray)
    closed: bool = False


ROUTES: dict[str, Any] = {
    "files/upload": files.upload,
    "files/upload_session/start": files.upload_session_start,
    "files/upload_session/append_v2": files.upload_session_append_v2,
    "files/upload_session/finish": files.upload_session_finish,
    "files/delete_v2": files.delete_v2,
    "files/get_metadata": files.get_metadata,
    "sharing/create_shared_link_with_settings": sharing.create_shared_link_with_settings,
    "sharing/revoke_shared_link": sharing.revoke_shared_link,
    "sharing/list_shared_links": sharing.list_shared_links,
    "sharing/modify_shared_link_settings": sharing.modify_shared_link_settings,
    "users/get_current_account": users.get_current_account,
    "auth/token/revoke": auth.token_revoke,
}
ROUTE_SCOPES = {
    "files/upload": "files.content.write",
    "files/upload_session/start": "files.content.write",
    "files/upload_session/append_v2": "files.content.write",
    "files/upload_session/finish": "files.content.write",
    "files/delete_v2": "files.content.write",
    "files/get_metadata": "files.metadata.read",
    "sharing/create_shared_link_with_settings": "sharing.write",
    "sharing/revoke_shared_link": "sharing.write",
    "sharing/modify_shared_link_settings": "sharing.write",
    "sharing/list_shared_links": "sharing.read",
    "users/get_current_account": "account_info.read",
}
UPLOAD_STYLE = {name for name, r in ROUTES.items() if r.attrs.get("style") == "upload"}


class ApiFailure(Exception):
    """A route's error: 409 with the error encoded by the route's error type."""

    def __init__(self, error: Any, summary: str) -> None:
        super().__init__(summary)
        self.error = error
        self.summary = summary


class FakeDropbox:
    def __init__(self, app_key: str = "fakeappkey") -> None:
        self.app_key = app_key
        self.ca_file = CA_FILE
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        CA.issue_cert("127.0.0.1", "localhost").configure_cert(self._ssl)
        self.lock = threading.RLock()
        self.port = PORT
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()

        # Dropbox's state.
        self.files: dict[str, StoredFile] = {}
        self.links: list[SharedLink] = []
        self.sessions: dict[str, Session] = {}
        self.access_tokens: dict[str, str] = {}  # access token → refresh token it came from
        self.expired_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.codes: dict[str, tuple[str, str]] = {}  # code → (client_id, code_challenge)
        self.calls: list[tuple[str, int]] = []  # (route, HTTP status) in order
        # Switches.
        self.faults: list[Fault] = []
        self.basic_account = False  # True: links may not expire (settings_error/not_authorized)
        self.email_verified = True
        self.already_exists_with_metadata = True
        self.list_page_size = 2
        self.access_token_lifetime = 14400
        self.granted_scopes = set(APP_SCOPES)  # what the user's app may do (Permissions tab)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Also an outage: connections are refused until start() (same port)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self.lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:  # kept-alive connections die with the outage too
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        assert self._thread is not None
        self._thread.join(5)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return dict(ENV)

    # -- switches and inspection ---------------------------------------------------------------

    def inject(self, kind: str, route: str | None = None, times: int = 1, retry_after: int = 1):
        assert kind in ("429", "429_header", "5xx", "drop", "drop_after", "expired_token"), kind
        assert route is None or route in ROUTES or route == "oauth2/token", route
        with self.lock:
            self.faults.append(Fault(kind, route, times, retry_after))

    def grant(self) -> str:
        """A refresh token, as if the user had signed in (for FADELINK_DROPBOX_REFRESH_TOKEN)."""
        with self.lock:
            token = "fake-refresh-" + secrets.token_urlsafe(24)
            self.refresh_tokens.add(token)
            return token

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.expired_tokens |= set(self.access_tokens)

    def revoke_refresh_tokens(self) -> None:
        """As when the user disconnects the app on dropbox.com: everything stops working."""
        with self.lock:
            self.refresh_tokens.clear()
            self.access_tokens.clear()

    def live_links(self, path: str | None = None) -> list[SharedLink]:
        with self.lock:
            return [
                ln
                for ln in self.links
                if ln.live and (path is None or ln.path_lower == path.lower())
            ]

    def stored(self) -> dict[str, bytes]:
        with self.lock:
            return {f.path_display: f.data for f in self.files.values()}

    def count(self, route: str, status: int | None = None) -> int:
        with self.lock:
            return sum(1 for r, s in self.calls if r == route and (status is None or s == status))

    # -- request handling ----------------------------------------------------------------------

    def _take_fault(self, route: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.times > 0 and (f.route is None or f.route == route):
                    f.times -= 1
                    return f
        return None

    def _record(self, route: str, status: int) -> None:
        with self.lock:
            self.calls.append((route, status))

    def _authorize(self, header: str | None, route: str) -> tuple[int, dict] | None:
        token = (header or "").removeprefix("Bearer ").strip()
        with self.lock:
            if token in self.expired_tokens:
                return 401, _auth_error("expired_access_token")
            if token not in self.access_tokens:
                return 401, _auth_error("invalid_access_token")
            scope = ROUTE_SCOPES.get(route)
            if scope is not None and scope not in self.granted_scopes:
                error = {".tag": "missing_scope", "required_scope": scope}
                return 401, {"error_summary": "missing_scope/", "error": error}
            self._token = token
        return None

    # Token endpoint: authorization code (PKCE) and refresh.
    def token(self, form: dict[str, str]) -> tuple[int, dict]:
        with self.lock:
            if form.get("client_id") != self.app_key:
                return 400, {"error": "invalid_client", "error_description": "unknown app key"}
            grant = form.get("grant_type")
            if grant == "authorization_code":
                entry = self.codes.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                    .rstrip(b"=")
                    .decode()
                )
                if entry is None or entry != (self.app_key, challenge):
                    return 400, {"error": "invalid_grant", "error_description": "bad code"}
                refresh = "fake-refresh-" + secrets.token_urlsafe(24)
                self.refresh_tokens.add(refresh)
                access = self._new_access(refresh)
                return 200, {
                    "access_token": access,
                    "token_type": "bearer",
                    "expires_in": self.access_token_lifetime,
                    "refresh_token": refresh,
                    "scope": " ".join(sorted(APP_SCOPES)),
                    "uid": "12345",
                    "account_id": ACCOUNT_ID,
                }
            if grant == "refresh_token":
                refresh = form.get("refresh_token", "")
                if refresh not in self.refresh_tokens:
                    return 400, {"error": "invalid_grant", "error_description": "refresh token"}
                return 200, {
                    "access_token": self._new_access(refresh),
                    "token_type": "bearer",
                    "expires_in": self.access_token_lifetime,
                }
            return 400, {"error": "unsupported_grant_type"}

    def _new_access(self, refresh: str) -> str:
        access = "fake-access-" + secrets.token_urlsafe(24)
        self.access_tokens[access] = refresh
        return access

    def authorize_page(self, query: dict[str, str]) -> tuple[int, str]:
        """What the user sees after pressing Allow: the code to paste."""
        scopes = set(query.get("scope", "").split())
        if (
            query.get("client_id") != self.app_key
            or query.get("response_type") != "code"
            or query.get("token_access_type") != "offline"
            or query.get("code_challenge_method") != "S256"
            or not query.get("code_challenge")
            or not scopes <= APP_SCOPES
        ):
            return 400, "invalid authorization request"
        code = "fakecode" + secrets.token_urlsafe(16)
        with self.lock:
            self.codes[code] = (self.app_key, query["code_challenge"])
        return 200, f"Enter this code into fadelink: {code}\n"

    def call(self, route: str, arg: Any, body: bytes) -> Any:
        with self.lock:
            return getattr(self, "r_" + route.replace("/", "_"))(arg, body)

    # Routes. Each returns the result object or raises ApiFailure with the route's error.

    def r_files_upload(self, arg: files.UploadArg, body: bytes) -> files.FileMetadata:
        if len(body) > MAX_UPLOAD:
            raise ApiFailure(files.UploadError.payload_too_large, "payload_too_large/")
        if arg.content_hash is not None and arg.content_hash != content_hash(body):
            raise ApiFailure(files.UploadError.content_hash_mismatch, "content_hash_mismatch/")
        return self._commit(arg, body, lambda w: files.UploadError.path(w))

    def _commit(self, commit: files.CommitInfo, data: bytes, wrap) -> files.FileMetadata:
        path = commit.path
        if not path.startswith("/") or path.endswith("/"):
            raise ApiFailure(wrap(_write_failed(files.WriteError.malformed_path(None))), "path/")
        key = path.lower()
        existing = self.files.get(key)
        mode = commit.mode
        if existing is not None and mode.is_add():
            if existing.data == data and not commit.strict_conflict:
                return existing.metadata()  # identical content is not a conflict
            conflict = files.WriteError.conflict(files.WriteConflictError.file)
            raise ApiFailure(wrap(_write_failed(conflict)), "path/conflict/file/")
        stored = StoredFile(
            path_display=path,
            data=bytes(data),
            id=existing.id if existing else "id:" + secrets.token_urlsafe(16),
            rev=secrets.token_hex(8) + "0",
            modified=_now(),
        )
        self.files[key] = stored
        return stored.metadata()

    def r_files_upload_session_start(self, arg, body: bytes) -> files.UploadSessionStartResult:
        if arg.content_hash is not None and arg.content_hash != content_hash(body):
            raise ApiFailure(
                files.UploadSessionStartError.content_hash_mismatch, "content_hash_mismatch/"
            )
        session_id = "sess-" + secrets.token_hex(12)
        self.sessions[session_id] = Session(bytearray(body), bool(arg.close))
        return files.UploadSessionStartResult(session_id=session_id)

    def _session(self, cursor: files.UploadSessionCursor, body: bytes, error_type) -> Session:
        session = self.sessions.get(cursor.session_id)
        if session is None:
            raise ApiFailure(error_type.not_found, "not_found/")
        if cursor.offset != len(session.data):
            offset = files.UploadSessionOffsetError(correct_offset=len(session.data))
            raise ApiFailure(error_type.incorrect_offset(offset), "incorrect_offset/")
        if session.closed and body:
            raise ApiFailure(error_type.closed, "closed/")
        return session

    def r_files_upload_session_append_v2(self, arg, body: bytes) -> None:
        err = files.UploadSessionAppendError
        session = self._session(arg.cursor, body, err)
        if arg.content_hash is not None and arg.content_hash != content_hash(body):
            raise ApiFailure(err.content_hash_mismatch, "content_hash_mismatch/")
        session.data += body
        session.closed = bool(arg.close)
        return None

    def r_files_upload_session_finish(self, arg, body: bytes) -> files.FileMetadata:
        err = files.UploadSessionFinishError
        try:
            session = self._session(arg.cursor, body, files.UploadSessionLookupError)
        except ApiFailure as exc:
            raise ApiFailure(err.lookup_failed(exc.error), "lookup_failed/" + exc.summary) from None
        if arg.content_hash is not None and arg.content_hash != content_hash(body):
            raise ApiFailure(err.content_hash_mismatch, "content_hash_mismatch/")
        data = bytes(session.data) + body
        metadata = self._commit(arg.commit, data, lambda w: err.path(w.get_path().reason))
        del self.sessions[arg.cursor.session_id]
        return metadata

    def r_files_delete_v2(self, arg: files.DeleteArg, body: bytes) -> files.DeleteResult:
        stored = self.files.pop(arg.path.lower(), None)
        if stored is None:
            not_found = files.DeleteError.path_lookup(files.LookupError.not_found)
            raise ApiFailure(not_found, "path_lookup/not_found/")
        for ln in self.links:
            if ln.path_lower == arg.path.lower():
                ln.dead = True
        return files.DeleteResult(metadata=stored.metadata())

    def r_files_get_metadata(self, arg: files.GetMetadataArg, body: bytes) -> files.Metadata:
        stored = self.files.get(arg.path.lower())
        if stored is None:
            not_found = files.GetMetadataError.path(files.LookupError.not_found)
            raise ApiFailure(not_found, "path/not_found/")
        return stored.metadata()

    def _link_metadata(self, ln: SharedLink) -> sharing.FileLinkMetadata:
        stored = self.files[ln.path_lower]
        public = sharing.VisibilityPolicy(
            policy=sharing.RequestedVisibility.public,
            resolved_policy=sharing.AlphaResolvedVisibility.public,
            allowed=True,
        )
        perms = sharing.LinkPermissions(
            can_revoke=True,
            visibility_policies=[public],
            can_set_expiry=not self.basic_account,
            can_remove_expiry=not self.basic_account,
            allow_download=True,
            can_allow_download=True,
            can_disallow_download=not self.basic_account,
            allow_comments=True,
            team_restricts_comments=False,
            resolved_visibility=sharing.ResolvedVisibility.public,
        )
        return sharing.FileLinkMetadata(
            url=ln.url,
            name=ln.name,
            link_permissions=perms,
            client_modified=stored.modified,
            server_modified=stored.modified,
            rev=stored.rev,
            size=len(stored.data),
            id=stored.id,
            expires=ln.expires,
            path_lower=ln.path_lower,
        )

    def r_sharing_create_shared_link_with_settings(self, arg, body: bytes):
        err = sharing.CreateSharedLinkWithSettingsError
        stored = self.files.get(arg.path.lower())
        if stored is None:
            raise ApiFailure(err.path(files.LookupError.not_found), "path/not_found/")
        if not self.email_verified:
            raise ApiFailure(err.email_not_verified, "email_not_verified/")
        expires = self._check_settings(arg.settings, err.settings_error)
        existing = [ln for ln in self.live_links(arg.path)]
        if existing:
            value = None
            if self.already_exists_with_metadata:
                value = sharing.SharedLinkAlreadyExistsMetadata.metadata(
                    self._link_metadata(existing[0])
                )
            raise ApiFailure(err.shared_link_already_exists(value), "shared_link_already_exists/")
        name = stored.path_display.rsplit("/", 1)[-1]
        url = (
            f"https://www.dropbox.com/scl/fi/{secrets.token_hex(13)}/"
            f"{urllib.parse.quote(name)}?rlkey={secrets.token_hex(12)}&dl=0"
        )
        ln = SharedLink(url, arg.path.lower(), name, stored.id, expires, _now())
        self.links.append(ln)
        return self._link_metadata(ln)

    def _check_settings(self, settings: sharing.SharedLinkSettings | None, wrap) -> Any:
        if settings is None:
            return None
        set_fields = [
            n for n in sorted(settings._all_field_names_) if getattr(settings, n) is not None
        ]
        if not set_fields:
            raise ApiFailure(wrap(sharing.SharedLinkSettingsError.invalid_settings), "settings/")
        if settings.expires is not None:
            if self.basic_account:
                raise ApiFailure(
                    wrap(sharing.SharedLinkSettingsError.not_authorized),
                    "settings_error/not_authorized/",
                )
            if settings.expires <= _now():
                raise ApiFailure(
                    wrap(sharing.SharedLinkSettingsError.invalid_settings),
                    "settings_error/invalid_settings/",
                )
        return settings.expires

    def _find_link(self, url: str, error_type) -> SharedLink:
        for ln in self.links:
            if ln.url == url and ln.live:  # the exact URL only, as returned
                return ln
        raise ApiFailure(error_type.shared_link_not_found, "shared_link_not_found/")

    def r_sharing_revoke_shared_link(self, arg, body: bytes) -> None:
        self._find_link(arg.url, sharing.RevokeSharedLinkError).revoked = True
        return None

    def r_sharing_modify_shared_link_settings(self, arg, body: bytes):
        err = sharing.ModifySharedLinkSettingsError
        ln = self._find_link(arg.url, err)
        expires = self._check_settings(arg.settings, err.settings_error)
        ln.expires = None if arg.remove_expiration else expires
        return self._link_metadata(ln)

    def r_sharing_list_shared_links(self, arg, body: bytes) -> sharing.ListSharedLinksResult:
        if arg.cursor:
            start = int(arg.cursor.removeprefix("c"))
            path = None
        else:
            start, path = 0, arg.path
            if path and path.lower() not in self.files:
                raise ApiFailure(
                    sharing.ListSharedLinksError.path(files.LookupError.not_found), "path/"
                )
        # direct_only=False would add links to parent folders; this fake has no folder links.
        links = self.live_links(path)
        page = links[start : start + self.list_page_size]
        more = start + len(page) < len(links)
        return sharing.ListSharedLinksResult(
            links=[self._link_metadata(ln) for ln in page],
            has_more=more,
            # As Dropbox documents it: a cursor only when listing without a path.
            cursor=f"c{start + len(page)}" if more and not path else None,
        )

    def r_users_get_current_account(self, arg, body: bytes) -> users.FullAccount:
        return users.FullAccount(
            account_id=ACCOUNT_ID,
            name=users.Name(
                given_name="Fay",
                surname="Tester",
                familiar_name="Fay",
                display_name="Fay Tester",
                abbreviated_name="FT",
            ),
            email="fay@example.org",
            email_verified=self.email_verified,
            disabled=False,
            locale="en",
            referral_link="https://www.dropbox.com/referrals/fake",
            is_paired=False,
            account_type=users_common.AccountType.basic
            if self.basic_account
            else users_common.AccountType.pro,
            root_info=common.UserRootInfo(root_namespace_id="1", home_namespace_id="1"),
        )

    def r_auth_token_revoke(self, arg, body: bytes) -> None:
        # Revoking an access token also disables the refresh token it came from.
        refresh = self.access_tokens.pop(self._token, None)
        if refresh is not None:
            self.refresh_tokens.discard(refresh)
            for access, r in list(self.access_tokens.items()):
                if r == refresh:
                    del self.access_tokens[access]
        return None


def _write_failed(reason: files.WriteError) -> files.UploadWriteFailed:
    return files.UploadWriteFailed(reason=reason, upload_session_id="sess-none")


def _auth_error(tag: str) -> dict:
    return {"error_summary": f"{tag}/", "error": {".tag": tag}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeDropbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's pooled session expects
    timeout = 30
    server: _Server

    def setup(self) -> None:
        fake = self.server.fake
        # As real servers do: headers and body leave at once, not held for a delayed ACK.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = fake._ssl.wrap_socket(self.request, server_side=True)
        with fake.lock:
            fake._conns.add(self.request)
        super().setup()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.fake.lock:
            self.server.fake._conns.discard(self.request)

    def handle(self) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Dropbox-Request-Id", secrets.token_hex(8))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.request.shutdown(socket.SHUT_RDWR)

    def do_GET(self) -> None:
        fake = self.server.fake
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/oauth2/authorize":
            self._send(404, b"not found", "text/plain")
            return
        status, text = fake.authorize_page(dict(urllib.parse.parse_qsl(url.query)))
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def do_POST(self) -> None:
        fake = self.server.fake
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urllib.parse.urlsplit(self.path).path
        route = path.removeprefix("/2/") if path.startswith("/2/") else path.lstrip("/")
        if route not in ROUTES and route != "oauth2/token":
            fake._record(route, 404)
            self._send(404, b"unknown route", "text/plain")
            return
        fault = fake._take_fault(route)
        status = self._fault(fault, route) if fault and fault.kind != "drop_after" else None
        if status is not None:
            fake._record(route, status)
            return
        status, payload, ctype = self._dispatch(route, body)
        fake._record(route, status)
        if fault is not None and fault.kind == "drop_after":
            self._drop()  # it took effect; the client never hears so
            return
        self._send(status, payload, ctype)

    def _fault(self, fault: Fault, route: str) -> int | None:
        if fault.kind == "drop":
            self._drop()
            return 0
        if fault.kind == "429":
            error = {
                "error_summary": "too_many_requests/",
                "error": {
                    "reason": {".tag": "too_many_requests"},
                    "retry_after": fault.retry_after,
                },
            }
            self._json(429, error)
            return 429
        if fault.kind == "429_header":
            self._send(
                429, b"too many requests", "text/plain", {"Retry-After": str(fault.retry_after)}
            )
            return 429
        if fault.kind == "5xx":
            self._send(503, b"service unavailable", "text/plain")
            return 503
        if fault.kind == "expired_token" and route != "oauth2/token":
            self._json(401, _auth_error("expired_access_token"))
            return 401
        return None

    def _dispatch(self, route: str, body: bytes) -> tuple[int, bytes, str]:
        fake = self.server.fake
        if route == "oauth2/token":
            form = dict(urllib.parse.parse_qsl(body.decode()))
            status, obj = fake.token(form)
            return status, json.dumps(obj).encode(), "application/json"
        denied = fake._authorize(self.headers.get("Authorization"), route)
        if denied is not None:
            return denied[0], json.dumps(denied[1]).encode(), "application/json"
        r = ROUTES[route]
        if route in UPLOAD_STYLE:
            raw_arg, data = self.headers.get("Dropbox-API-Arg", "null"), body
        else:
            if self.headers.get("Content-Type") != "application/json":
                return 400, b"Error in call: bad Content-Type", "text/plain"
            raw_arg, data = body.decode() or "null", b""
        try:
            arg = json_decode(r.arg_type, raw_arg)
        except Exception as exc:  # what Dropbox answers to a malformed argument
            return 400, f"Error in call to API function: {exc}".encode(), "text/plain"
        try:
            result = fake.call(route, arg, data)
        except ApiFailure as failure:
            error = json_compat_obj_encode(r.error_type, failure.error)
            reply = {"error_summary": failure.summary, "error": error}
            return 409, json.dumps(reply).encode(), "application/json"
        return 200, json_encode(r.result_type, result).encode(), "application/json"
