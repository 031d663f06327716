"""`fadelink doctor`: checks every part a share goes through and says how to fix what is
broken. It looks and does not repair: no folder is created, the journal is opened read-only,
and the clipboard gets back what it held."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sqlite3
import stat
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon import clipboard, service
from daemon.backends.local import META_BASE_URL
from daemon.journal import SCHEMA_VERSION
from daemon.lock import daemon_running
from daemon.settings import Settings

OK, WARN, FAIL = "ok", "warn", "FAIL"
HTTP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK, WARN (works, but worth knowing) or FAIL (broken)
    detail: str
    fix: str | None = None


def _writable_dir(path: Path) -> bool:
    return os.access(path, os.R_OK | os.W_OK | os.X_OK)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _missing_dir(name: str, path: Path, fix: str) -> Check:
    """A folder fadelink creates at start: fine if it can, a failure with `fix` if not."""
    parent = _nearest_existing(path)
    if parent.is_dir() and _writable_dir(parent):
        return Check(name, OK, f"{path} (created when fadelink starts)")
    return Check(name, FAIL, f"{path} does not exist and cannot be created in {parent}", fix)


def check_share_folder(settings: Settings) -> Check:
    name = "share folder"
    path = settings.share_dir.expanduser()
    if not path.exists():
        return _missing_dir(
            name,
            path,
            f"create it (mkdir -p '{path}') or set FADELINK_SHARE_DIR to a folder of yours",
        )
    if not path.is_dir():
        return Check(
            name,
            FAIL,
            f"{path} is not a folder",
            "set FADELINK_SHARE_DIR to a folder, or move that file away",
        )
    if not _writable_dir(path):
        return Check(
            name, FAIL, f"{path} is not readable and writable by you", f"chmod u+rwx '{path}'"
        )
    if sys.platform == "darwin":
        private = [Path.home() / n for n in service.MACOS_PRIVATE_FOLDERS]
        if any(p == path or p in path.resolve().parents for p in private):
            return Check(
                name,
                WARN,
                f"{path} is inside a folder macOS guards: the service may not read it",
                "set FADELINK_SHARE_DIR outside Desktop, Documents and Downloads "
                "(the default ~/Pictures/Fadelink is fine)",
            )
    return Check(name, OK, str(path))


def check_state_dir(settings: Settings) -> Check:
    name = "state dir"
    path = settings.state_dir.expanduser()
    if not path.exists():
        return _missing_dir(name, path, "set FADELINK_STATE_DIR to a folder of yours")
    if not path.is_dir():
        return Check(
            name,
            FAIL,
            f"{path} is not a folder: the journal of your links cannot live there",
            f"move that file away (mv '{path}' '{path}.old') or set FADELINK_STATE_DIR to a folder",
        )
    if not _writable_dir(path):
        return Check(
            name, FAIL, f"{path} is not readable and writable by you", f"chmod u+rwx '{path}'"
        )
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        return Check(
            name,
            WARN,
            f"{path} can be read by other users, and it holds your links",
            f"chmod 700 '{path}'",
        )
    return Check(name, OK, str(path))


def read_journal(path: Path) -> tuple[dict[str, int], str | None]:
    """Shares by state and the link server's published address, read-only."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ValueError(f"it is from a newer fadelink (schema {version})")
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise ValueError(f"it is damaged ({result})")
        counts = dict(conn.execute("SELECT state, COUNT(*) FROM shares GROUP BY state"))
        row = conn.execute("SELECT value FROM meta WHERE key=?", (META_BASE_URL,)).fetchone()
        return counts, (row[0] if row else None)
    finally:
        conn.close()


def check_journal(settings: Settings) -> tuple[Check, str | None]:
    name = "journal"
    path = settings.journal_path.expanduser()
    if not path.exists():
        return Check(name, OK, "nothing shared yet"), None
    try:
        counts, base_url = read_journal(path)
    except (sqlite3.Error, ValueError, OSError) as exc:
        return (
            Check(
                name,
                FAIL,
                f"{path} cannot be read: {exc}",
                "if it is from a newer fadelink, upgrade; otherwise move it aside "
                f"(mv '{path}' '{path}.broken'): fadelink starts a new one, and links "
                "recorded only in the old one are no longer revoked by it",
            ),
            None,
        )
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "empty"
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        return Check(
            name, WARN, f"{summary}; readable by other users", f"chmod 600 '{path}'"
        ), base_url
    failing = counts.get("revoking", 0)
    if failing:
        return (
            Check(
                name,
                WARN,
                f"{summary}: {failing} revocation(s) not done yet",
                "`fadelink list` shows why; fadelink keeps retrying",
            ),
            base_url,
        )
    return Check(name, OK, summary), base_url


def check_daemon(settings: Settings) -> Check:
    pid = daemon_running(settings.state_dir.expanduser())
    if pid:
        return Check("daemon", OK, f"running (pid {pid})")
    return Check(
        "daemon",
        FAIL,
        "not running: new photos are not shared, and links are not revoked at their deadline",
        "`fadelink service install` (starts with your session) or `fadelink run`",
    )


def check_backend(settings: Settings) -> Check:
    name = f"backend {settings.backend}"
    if settings.backend == "local":
        return Check(name, OK, "links served by fadelink itself; no account needed")
    if settings.backend == "dropbox":
        from daemon import auth
        from daemon.backends import dropbox as dbx
        from daemon.errors import FadelinkError, NeedsSignIn

        signed_in = auth.load(settings)
        if signed_in is None:
            return Check(name, FAIL, "not signed in", "`fadelink auth dropbox`")
        try:
            account = dbx.account(signed_in.creds)
        except NeedsSignIn as exc:
            return Check(name, FAIL, str(exc), "`fadelink auth dropbox` to sign in again")
        except FadelinkError as exc:
            return Check(
                name,
                FAIL,
                f"Dropbox cannot be reached: {exc}",
                "check the network; shares wait and go out when Dropbox answers again",
            )
        return Check(name, OK, f"signed in as {account.name} <{account.email}>")
    return Check(name, WARN, "no check for this backend")


def check_link_server(settings: Settings, base_url: str | None, running: bool) -> Check:
    """The local backend: the link server answers at the address its links carry."""
    name = "link server"
    if not running:
        return Check(
            name,
            FAIL,
            "fadelink is not running: links do not open",
            "start fadelink (`fadelink service install` or `fadelink run`)",
        )
    if not base_url:
        return Check(name, FAIL, "fadelink runs, but has published no address for links yet")
    probe = f"{base_url}/doctor-{secrets.token_urlsafe(8)}"  # no link: the uniform 404
    try:
        with urllib.request.urlopen(probe, timeout=HTTP_TIMEOUT) as response:
            status, headers = response.status, response.headers
    except urllib.error.HTTPError as exc:
        status, headers = exc.code, exc.headers
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        fix = (
            "check that your proxy or tunnel forwards to FADELINK_LOCAL_BIND"
            if settings.local_public_url
            else "a firewall may block the port, or the address changed (restart fadelink)"
        )
        return Check(name, FAIL, f"nothing answers at {base_url}: {reason}", fix)
    if status == 404 and headers.get("Cache-Control") == "no-store":
        return Check(name, OK, f"answers at {base_url}")
    return Check(
        name,
        FAIL,
        f"{base_url} answers, but not as fadelink's link server (HTTP {status})",
        "another program answers at that address: set FADELINK_LOCAL_PUBLIC_URL or "
        "FADELINK_LOCAL_BIND",
    )


_CLIPBOARD_FIXES = {
    clipboard.NO_BACKEND: "install xclip or xsel (X11), or wl-clipboard (Wayland); for the "
    "service, the session must pass its display: "
    "systemctl --user import-environment DISPLAY WAYLAND_DISPLAY XAUTHORITY",
    clipboard.MISMATCH: "DISPLAY/WAYLAND_DISPLAY point at no running display, or XAUTHORITY is "
    "missing: run this from your desktop session; notifications carry the link meanwhile",
    clipboard.TIMED_OUT: "the clipboard tool hangs (wl-copy does on some compositors); "
    "notifications carry the link meanwhile",
}


def check_clipboard() -> Check:
    result = clipboard.round_trip()
    if result.ok:
        return Check("clipboard", OK, "a copy reads back the same (what it held is back)")
    reason = result.reason or "failed"
    return Check("clipboard", FAIL, reason, _CLIPBOARD_FIXES.get(reason))


def check_notifications() -> Check:
    from daemon.notify import Notifier

    async def probe() -> Notifier:
        notifier = Notifier()
        await notifier.start()
        await notifier.close()
        return notifier

    notifier = asyncio.run(probe())
    name = "notifications"
    if notifier.backend_name == "desktop-notifier":
        if notifier.buttons:
            return Check(name, OK, "the notification server answers and shows buttons")
        return Check(
            name,
            OK,
            "the notification server answers; it has no buttons (plain notifications, "
            f"capabilities: {', '.join(notifier.capabilities)})",
        )
    fix = (
        "start a notification server on the session D-Bus (your desktop's own, or dunst, "
        "mako...); for the service, the session must import DBUS_SESSION_BUS_ADDRESS"
    )
    if notifier.available:
        return Check(name, WARN, notifier.detail, fix)
    return Check(name, FAIL, notifier.detail, fix)


def check_service(settings: Settings) -> Check:
    name = "service"
    if sys.platform == "darwin":
        path = service.plist_path()
        if not path.exists():
            return Check(name, WARN, "not installed", "`fadelink service install`")
        return Check(name, OK, f"launchd agent {path}")
    if not sys.platform.startswith("linux"):
        return Check(name, WARN, f"no service for {sys.platform}: run `fadelink run` yourself")
    path = service.unit_path()
    if not path.exists():
        return Check(
            name, WARN, "not installed", "`fadelink service install` to start with your session"
        )
    why = service.user_manager()
    if why is not None:
        return Check(name, WARN, f"{path} installed; no systemd user manager here ({why})")
    active = service.run_quiet(service.systemctl("is-active", service.UNIT)).stdout.strip()
    if active == "active":
        return Check(name, OK, f"{service.UNIT} is active")
    return Check(
        name,
        FAIL,
        f"{service.UNIT} is {active or 'unknown'}",
        f"systemctl --user start {service.UNIT}; `fadelink service logs` says why it stopped",
    )


def run_checks(settings: Settings) -> list[Check]:
    checks = [check_share_folder(settings), check_state_dir(settings)]
    journal, base_url = check_journal(settings)
    checks.append(journal)
    running = daemon_running(settings.state_dir.expanduser()) is not None
    checks += [check_daemon(settings), check_backend(settings)]
    if settings.backend == "local":
        checks.append(check_link_server(settings, base_url, running))
    checks += [check_clipboard(), check_notifications(), check_service(settings)]
    return checks


def report(checks: list[Check], out: Callable[[str], None] = print) -> int:
    width = max(len(c.name) for c in checks)
    for c in checks:
        out(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != OK:
            out(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
    broken = [c for c in checks if c.status == FAIL]
    out(f"{len(broken)} problem(s) found" if broken else "everything works")
    return 1 if broken else 0


def add_parser(sub: Any) -> None:
    sub.add_parser("doctor", help="check every part of fadelink and say how to fix problems")


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    if not args.verbose:  # the report says it all; the parts' own log lines would repeat it
        logging.getLogger().setLevel(logging.ERROR)
    return report(run_checks(settings))
