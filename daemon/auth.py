"""Signing in to Dropbox: `fadelink auth dropbox | status | logout`, and where the token lives.

The refresh token goes to the system keyring when one works, else to a file readable only by
the user in the config dir; FADELINK_DROPBOX_REFRESH_TOKEN (headless setups) overrides both.
The token is a secret: it never reaches a log, `fadelink config`, or an error message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import stat
import sys
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.errors import FadelinkError, NeedsSignIn
from daemon.settings import Settings, config_dir

if TYPE_CHECKING:  # the SDK is imported only when Dropbox is used: the CLI starts faster
    from daemon.backends.dropbox import Credentials

log = logging.getLogger(__name__)

KEYRING_SERVICE = "fadelink"
KEYRING_USER = "dropbox"
TOKEN_FILE = "dropbox-token.json"


@dataclass(frozen=True)
class SignedIn:
    creds: Credentials
    where: str  # said to the user: where the token was found


def token_file() -> Path:
    return config_dir() / TOKEN_FILE


# -- the keyring, best effort ---------------------------------------------------------------


def _keyring():
    """The keyring module if a real backend is configured, else None."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        if isinstance(keyring.get_keyring(), fail.Keyring):
            return None
    except Exception:  # a broken backend configuration: as good as none
        return None
    return keyring


def _keyring_name() -> str:
    kr = _keyring()
    name = getattr(kr.get_keyring(), "name", "") if kr else ""
    return f"the system keyring ({name})" if name else "the system keyring"


def _keyring_get() -> str | None:
    kr = _keyring()
    if kr is None:
        return None
    try:
        return kr.get_password(KEYRING_SERVICE, KEYRING_USER)
    except Exception as exc:  # locked, no D-Bus service, …: fall back to the file
        log.debug("keyring unavailable: %s", type(exc).__name__)
        return None


def _keyring_set(value: str) -> bool:
    kr = _keyring()
    if kr is None:
        return False
    try:
        kr.set_password(KEYRING_SERVICE, KEYRING_USER, value)
        return kr.get_password(KEYRING_SERVICE, KEYRING_USER) == value
    except Exception as exc:
        log.debug("keyring unavailable: %s", type(exc).__name__)
        return False


def _keyring_delete() -> bool:
    kr = _keyring()
    if kr is None:
        return False
    try:
        kr.delete_password(KEYRING_SERVICE, KEYRING_USER)
        return True
    except Exception:
        return False


# -- the file fallback ----------------------------------------------------------------------


def _file_get(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise NeedsSignIn(f"cannot read the Dropbox token file {path}: {exc.strerror}") from None
    with os.fdopen(fd, encoding="utf-8") as f:
        if stat.S_IMODE(os.fstat(f.fileno()).st_mode) & 0o077:
            os.fchmod(f.fileno(), 0o600)  # others could read it: not any more
            log.warning("%s was readable by others; it is now private (0600)", path)
        return f.read()


def _file_set(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# -- load, store, forget --------------------------------------------------------------------


def _parse(raw: str, where: str) -> SignedIn:
    from daemon.backends.dropbox import Credentials

    try:
        data = json.loads(raw)
        creds = Credentials(data["app_key"], data["refresh_token"], data.get("account_id"))
    except (ValueError, KeyError, TypeError):
        raise NeedsSignIn(
            f"the Dropbox sign-in in {where} is damaged; run fadelink auth dropbox"
        ) from None
    return SignedIn(creds, where)


def load(settings: Settings) -> SignedIn | None:
    """The sign-in to use, or None when there is none."""
    if settings.dropbox_refresh_token is not None:
        if not settings.dropbox_app_key:
            raise NeedsSignIn(
                "FADELINK_DROPBOX_REFRESH_TOKEN needs FADELINK_DROPBOX_APP_KEY (your app's key)"
            )
        from daemon.backends.dropbox import Credentials

        token = settings.dropbox_refresh_token.get_secret_value()
        return SignedIn(
            Credentials(settings.dropbox_app_key, token), "FADELINK_DROPBOX_REFRESH_TOKEN"
        )
    raw = _keyring_get()
    if raw:
        return _parse(raw, _keyring_name())
    path = token_file()
    raw = _file_get(path)
    if raw:
        return _parse(raw, f"{path} (readable only by you)")
    return None


def credentials(settings: Settings) -> Credentials | None:
    """For the backend: what to sign in with."""
    signed_in = load(settings)
    return signed_in.creds if signed_in else None


def store(creds: Credentials) -> str:
    """Keep the sign-in; returns where it went, in words."""
    raw = json.dumps(
        {
            "app_key": creds.app_key,
            "refresh_token": creds.refresh_token,
            "account_id": creds.account_id,
        }
    )
    path = token_file()
    if _keyring_set(raw):
        path.unlink(missing_ok=True)  # one place only
        return _keyring_name()
    _file_set(path, raw)
    return f"{path} (readable only by you; no system keyring is available)"


def forget() -> list[str]:
    places = []
    if _keyring_delete():
        places.append(_keyring_name())
    path = token_file()
    if path.exists() or path.is_symlink():
        path.unlink()
        places.append(str(path))
    return places


# -- the commands ---------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:
    au = sub.add_parser("auth", help="sign in to Dropbox, show or end the sign-in")
    asub = au.add_subparsers(dest="auth_command", required=True, metavar="ACTION")
    sign = asub.add_parser("dropbox", help="sign in to Dropbox (opens a browser page)")
    sign.add_argument("--app-key", help="your Dropbox app's key (else FADELINK_DROPBOX_APP_KEY)")
    sign.add_argument("--no-browser", action="store_true", help="only print the page's address")
    asub.add_parser("status", help="show the account and where the token lives")
    out = asub.add_parser("logout", help="sign out and forget the token")
    out.add_argument(
        "--revoke-all", action="store_true", help="first revoke every live Dropbox link"
    )
    out.add_argument(
        "--force", action="store_true", help="sign out even though Dropbox links are live"
    )


def cmd_auth(settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.auth_command == "dropbox":
            return sign_in(settings, args)
        if args.auth_command == "status":
            return status(settings)
        return logout(settings, args)
    except NeedsSignIn as exc:
        print(f"fadelink: {exc}", file=sys.stderr)
        return 1


def _err(message: str) -> None:
    print(f"fadelink: {message}", file=sys.stderr)


def sign_in(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.backends import dropbox as dbx

    app_key = (args.app_key or settings.dropbox_app_key or "").strip()
    if not app_key:
        _err(
            "no Dropbox app key: create your app in the Dropbox App Console (the README's "
            "Dropbox section walks through it), then set FADELINK_DROPBOX_APP_KEY in "
            f"{config_dir() / 'settings.env'} or pass --app-key"
        )
        return 2
    flow = dbx.SignIn(app_key)
    print("1. Open this page (sign in to Dropbox there if asked):", flush=True)
    print(f"   {flow.url}", flush=True)
    print("2. Press Allow, then copy the code Dropbox shows.", flush=True)
    if not args.no_browser:
        with contextlib.suppress(Exception):  # a browser is a convenience, the URL is printed
            webbrowser.open(flow.url)
    try:
        code = input("3. Paste the code here: ").strip()
    except EOFError:
        code = ""
    if not code:
        _err("no code given; nothing changed")
        return 1
    try:
        creds, account = flow.finish(code)
    except FadelinkError as exc:
        _err(str(exc))
        return 1
    where = store(creds)
    print(f"Signed in to Dropbox as {account.name} <{account.email}> ({account.plan} plan).")
    print(f"The refresh token is stored in {where}.")
    if not account.email_verified:
        print("Note: Dropbox creates links only once you verify your email address.")
    if settings.dropbox_refresh_token is not None:
        print(
            "Note: FADELINK_DROPBOX_REFRESH_TOKEN is set and takes precedence; remove it to "
            "use this sign-in."
        )
    if settings.backend != "dropbox":
        print("Set FADELINK_BACKEND=dropbox to share through Dropbox.")
    return 0


def _dropbox_shares(settings: Settings) -> list:
    if not settings.journal_path.exists():
        return []
    from daemon.journal import ACTIVE, Journal

    return [s for s in Journal(settings.journal_path).shares(ACTIVE) if s.backend == "dropbox"]


def status(settings: Settings) -> int:
    from daemon.backends import dropbox as dbx

    signed_in = load(settings)
    if signed_in is None:
        print("Dropbox: not signed in (run fadelink auth dropbox)")
        return 1
    print(f"Dropbox token: in {signed_in.where}")
    code = 0
    try:
        account = dbx.account(signed_in.creds)
        print(f"Dropbox account: {account.name} <{account.email}>, {account.plan} plan")
    except NeedsSignIn as exc:
        print(f"Dropbox: {exc}")
        code = 1
    except FadelinkError as exc:
        print(f"Dropbox: {exc} (the sign-in could not be checked)")
    shares = _dropbox_shares(settings)
    print(f"Live Dropbox links: {len(shares)}")
    return code


def logout(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.backends import dropbox as dbx

    shares = _dropbox_shares(settings)
    if shares and not (args.revoke_all or args.force):
        n = len(shares)
        _err(
            f"{n} Dropbox link{'s are' if n > 1 else ' is'} still live; once signed out, "
            "fadelink can no longer revoke or delete them. Run `fadelink auth logout "
            "--revoke-all` to revoke them first, or add --force to sign out anyway."
        )
        return 1
    if shares and args.revoke_all:
        from daemon.journal import Journal, State
        from daemon.pipeline import Pipeline

        journal = Journal(settings.journal_path)
        pipeline = Pipeline.from_settings(settings, journal)
        failed = 0
        for share in shares:
            try:
                done = pipeline.revoke(share, "revoked at sign-out")
            except (FadelinkError, OSError) as exc:
                _err(f"{share.id}: {exc}")
                failed += 1
                continue
            if done.state is State.GONE:
                print(f"{done.id}: {share.name} revoked")
        if failed:
            _err("not signed out: some links could not be revoked yet; try again later")
            return 1
    signed_in = load(settings)
    if signed_in is not None:
        try:
            dbx.revoke_token(signed_in.creds)
        except FadelinkError as exc:
            print(
                f"Warning: {exc}; to cut fadelink off anyway, disconnect the app at "
                "https://www.dropbox.com/account/connected_apps"
            )
    places = forget()
    if places:
        print("Signed out of Dropbox; the token was removed from " + " and ".join(places) + ".")
    else:
        print("Signed out of Dropbox.")
    if settings.dropbox_refresh_token is not None:
        print("FADELINK_DROPBOX_REFRESH_TOKEN is still set: remove it from your settings.")
    return 0
