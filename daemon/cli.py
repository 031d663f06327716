"""Command line: fadelink [--env-file PATH] run | share | list | revoke | config."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from daemon import __version__
from daemon.durations import format_duration, parse_duration
from daemon.errors import FadelinkError, IncompleteImage
from daemon.journal import ACTIVE, Journal, Share, State
from daemon.lock import AlreadyRunning, daemon_running
from daemon.settings import Settings, SettingsError, load, unknown_names

log = logging.getLogger("daemon")

EXIT_USAGE = 2  # bad settings or arguments
EXIT_NO_DAEMON = 3  # the command needs a running daemon


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fadelink", description="Share photos with links that disappear on time."
    )
    p.add_argument("--env-file", type=Path, help="read settings from this file")
    p.add_argument("--version", action="version", version=f"fadelink {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", help="run the daemon in the foreground")
    sh = sub.add_parser("share", help="share files now, print their links")
    sh.add_argument("files", nargs="+", type=Path, metavar="FILE")
    sh.add_argument("--lifetime", help="how long the links live, e.g. 10m, 1h, 7d")
    sh.add_argument(
        "--once", action="store_true", help="view-once links: seen once, by one person, then gone"
    )
    sh.add_argument("--qr", action="store_true", help="also print each link as a QR code")
    ls = sub.add_parser("list", help="show current shares")
    ls.add_argument("--all", action="store_true", help="include vanished and failed shares")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    rv = sub.add_parser("revoke", help="kill links now and delete their copies")
    rv.add_argument("ids", nargs="*", metavar="ID")
    rv.add_argument("--all", action="store_true", help="revoke every current share")
    sub.add_parser("config", help="show the effective settings")
    from daemon.auth import add_parser as add_auth_parser

    add_auth_parser(sub)
    from daemon.service import add_parser as add_service_parser

    add_service_parser(sub)
    from daemon.doctor import add_parser as add_doctor_parser

    add_doctor_parser(sub)
    return p


def _setup_logging(verbose: bool) -> None:
    from daemon import logs

    logs.setup(verbose)  # plain lines for the journal under systemd


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    for warning in unknown_names(args.env_file):
        print(f"fadelink: warning: {warning}", file=sys.stderr)
    try:
        settings = load(args.env_file)
    except SettingsError as exc:
        print(f"fadelink: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](settings, args)
    except AlreadyRunning as exc:
        print(f"fadelink: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from daemon import logs
    from daemon.app import run

    logs.add_file()  # outside systemd, the daemon's log is also kept in a rotating file

    try:
        return run(settings)
    except OSError as exc:
        print(f"fadelink: {exc}", file=sys.stderr)
        return 1


def _pipeline(settings: Settings, journal: Journal):
    from daemon.pipeline import Pipeline

    return Pipeline.from_settings(settings, journal)


def cmd_share(settings: Settings, args: argparse.Namespace) -> int:
    from daemon import clipboard

    try:
        lifetime = parse_duration(args.lifetime) if args.lifetime else settings.lifetime_seconds
    except ValueError:
        print(f"fadelink: --lifetime {args.lifetime!r}: use e.g. 90s, 15m, 1h, 7d", file=sys.stderr)
        return EXIT_USAGE
    if args.once and settings.backend != "local":
        print(
            "fadelink: --once needs the local backend (FADELINK_BACKEND=local): only fadelink's "
            "own link server can tell a view",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if settings.backend == "local" and daemon_running(settings.state_dir) is None:
        print(
            "fadelink: no daemon is running to serve the link; start `fadelink run` "
            "(or the service) first",
            file=sys.stderr,
        )
        return EXIT_NO_DAEMON
    journal = Journal(settings.journal_path)
    pipeline = _pipeline(settings, journal)
    pipeline.paths.make()
    last = None
    status = 0
    for path in args.files:
        try:
            taken = pipeline.take(path.absolute(), lifetime, remember=False, once=args.once)
            assert taken is not None  # remember=False: always a new share
            share = pipeline.process(taken.share)
        except IncompleteImage:
            print(f"fadelink: {path}: the image is incomplete; save it again", file=sys.stderr)
            status = 1
            continue
        except (FadelinkError, OSError) as exc:
            print(f"fadelink: {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        journal.mark_announced(share.id)
        print(share.url, flush=True)
        if args.qr:
            from daemon import qr

            # Colours only for a terminal; plain blocks when the output goes elsewhere.
            print(qr.terminal(share.url, colour=sys.stdout.isatty()), end="", flush=True)
        last = share.url
    if last:
        result = clipboard.copy(last)
        if not result.ok:
            print(f"fadelink: link not copied: {result.reason}", file=sys.stderr)
    return status


def _left(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return "-"
    return format_duration(expires_at - now) if expires_at > now else "overdue"


def _views(share: Share) -> str:
    """What the list adds about a link's kind and views, e.g. " (view once, opened)"."""
    tags = ["view once"] if share.once else []
    if share.views:
        tags.append(f"opened {share.views}×" if share.views > 1 else "opened")
    return f" ({', '.join(tags)})" if tags else ""


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.journal_path.exists():
        shares = []
    else:
        journal = Journal(settings.journal_path)
        shares = journal.shares(None if args.all else ACTIVE)
    if args.json:
        print(json.dumps([s.to_json() for s in shares], indent=2))
        return 0
    if not shares:
        print("no shares" if args.all else "no current shares (fadelink list --all for history)")
        return 0
    now = time.time()
    rows = [("ID", "STATE", "LEFT", "FILE", "LINK")]
    for s in shares:
        if s.state is State.REVOKING and s.last_error:
            note = f"revocation failed, retrying: {s.last_error}"
        else:
            note = s.url or s.reason or ""
        rows.append((s.id, str(s.state), _left(s.expires_at, now), s.name, note + _views(s)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    return 0


def cmd_revoke(settings: Settings, args: argparse.Namespace) -> int:
    if not args.ids and not args.all:
        print(
            "fadelink: name the IDs to revoke (see `fadelink list`) or use --all", file=sys.stderr
        )
        return EXIT_USAGE
    if not settings.journal_path.exists():
        print("fadelink: nothing has been shared yet", file=sys.stderr)
        return 1
    journal = Journal(settings.journal_path)
    pipeline = _pipeline(settings, journal)
    targets = journal.shares(ACTIVE) if args.all else []
    status = 0
    for share_id in args.ids:
        share = journal.get(share_id)
        if share is None:
            print(f"fadelink: no share with ID {share_id} (see `fadelink list`)", file=sys.stderr)
            status = 1
        elif share.state not in ACTIVE:
            print(f"{share.id}: already {share.state}")
        else:
            targets.append(share)
    for share in targets:
        try:
            done = pipeline.revoke(share, "revoked by you")
        except (FadelinkError, OSError) as exc:
            print(f"fadelink: {share.id}: revocation will be retried: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{done.id}: {share.name} revoked" if done.state is State.GONE else done.id)
    return status


def cmd_auth(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.auth import cmd_auth as auth

    return auth(settings, args)


def cmd_service(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.service import cmd_service as service

    return service(settings, args)


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.doctor import cmd_doctor as doctor

    return doctor(settings, args)


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    for name, value in settings.public().items():
        print(f"{name}={value}")
    return 0


COMMANDS = {
    "run": cmd_run,
    "share": cmd_share,
    "list": cmd_list,
    "revoke": cmd_revoke,
    "config": cmd_config,
    "auth": cmd_auth,
    "service": cmd_service,
    "doctor": cmd_doctor,
}
