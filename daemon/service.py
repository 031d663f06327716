"""Starting with the desktop session: a systemd user unit (Linux) or a launchd agent (macOS),
written from the templates in service/ (shipped inside the package as daemon/service_templates).

Everything here is plain functions over a `Console` that either runs commands or, with
--dry-run, only says what it would write and run. Nothing happens by constructing anything.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import plistlib
import shlex
import shutil
import string
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon import logs as logging_setup
from daemon.lock import daemon_running
from daemon.settings import Settings

UNIT = "fadelink.service"
LABEL = "io.fadelink.agent"
PLIST = f"{LABEL}.plist"
# What the desktop session must pass to the service: the clipboard needs the display.
SESSION_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY")
COMMAND_TIMEOUT = 60.0  # `systemctl start` waits for READY=1

EXIT_NOT_RUNNING = 3  # status: the service is not running
EXIT_NO_MANAGER = 3  # install/uninstall: files written, but no service manager to tell

# macOS asks before an app reads these; a launchd agent gets no prompt, only EPERM.
MACOS_PRIVATE_FOLDERS = ("Desktop", "Documents", "Downloads")

_FALLBACK = """\
Your session has not started graphical-session.target (window managers started with startx,
or by a display manager without systemd integration, often do not). fadelink runs now, but
will not start by itself at your next login. Add these two lines to your window manager's
autostart (~/.xinitrc before the window manager, i3/sway `exec`, openbox autostart...):
    systemctl --user import-environment DISPLAY WAYLAND_DISPLAY XAUTHORITY
    systemctl --user start fadelink.service"""


# -- what runs the daemon ------------------------------------------------------------------


def fadelink_command(env_file: Path | None = None) -> list[str]:
    """The absolute command line that runs the daemon with this installation of fadelink.

    A service manager has neither the user's PATH nor `~`: the console script installed
    beside this interpreter (a venv, pipx) comes first, then one on PATH, else this
    interpreter running the package.
    """
    interpreter = Path(sys.executable).absolute()
    beside = interpreter.parent / ("fadelink.exe" if os.name == "nt" else "fadelink")
    found = shutil.which("fadelink")
    if beside.is_file() and os.access(beside, os.X_OK):
        argv = [str(beside)]
    elif found:
        argv = [str(Path(found).absolute())]
    else:
        argv = [str(interpreter), "-m", "daemon"]
    if env_file is not None:
        argv += ["--env-file", str(env_file.expanduser().absolute())]
    return [*argv, "run"]


def template(name: str) -> bytes:
    """A template from service/: the checkout's own when run from one, else the package's."""
    checkout = Path(__file__).resolve().parent.parent / "service" / name
    if checkout.is_file():
        return checkout.read_bytes()
    return importlib.resources.files("daemon.service_templates").joinpath(name).read_bytes()


# -- systemd -------------------------------------------------------------------------------


def unit_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(config) if config and Path(config).is_absolute() else Path.home() / ".config"
    return base / "systemd" / "user" / UNIT


def _unit_word(arg: str) -> str:
    """One ExecStart argument: systemd expands % specifiers and $VARIABLES, splits at
    spaces and honours double quotes and backslashes."""
    escaped = arg.replace("\\", "\\\\").replace("%", "%%").replace("$", "$$")
    if any(c.isspace() for c in arg) or '"' in arg or "'" in arg or not arg:
        escaped = '"' + escaped.replace('"', '\\"') + '"'
    return escaped


def render_unit(argv: Sequence[str]) -> str:
    text = template(UNIT).decode("utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("##")]
    exec_start = " ".join(_unit_word(a) for a in argv)
    return string.Template("\n".join(lines) + "\n").substitute(exec_start=exec_start)


def systemctl(*args: str) -> list[str]:
    return ["systemctl", "--user", *args]


# -- launchd -------------------------------------------------------------------------------


def plist_path() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / PLIST


def log_dir() -> Path:
    return logging_setup.log_file().parent


def render_plist(argv: Sequence[str], logs: Path) -> bytes:
    """The agent's plist: the template's values filled in, written by plistlib."""
    values: dict[str, Any] = {"exec_start": list(argv), "log_dir": str(logs)}

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            out: list[Any] = []
            for item in node:
                # A list value (the command) spreads into the array it stands in.
                if isinstance(item, str) and item.startswith("${") and item[2:-1] in values:
                    value = values[item[2:-1]]
                    out.extend(value if isinstance(value, list) else [value])
                else:
                    out.append(fill(item))
            return out
        if isinstance(node, str):
            return string.Template(node).substitute(
                {k: v for k, v in values.items() if isinstance(v, str)}
            )
        return node

    return plistlib.dumps(fill(plistlib.loads(template(PLIST))))


def launchd_domain() -> str:
    return f"gui/{os.getuid()}"


# -- doing it, or saying what would be done ------------------------------------------------


@dataclass
class Console:
    """Prints what happens; with dry_run, only what would happen."""

    dry_run: bool = False
    out: Callable[[str], None] = print

    def write(self, path: Path, content: bytes) -> bool:
        """Write a file unless it already says exactly that; True when it changed."""
        try:
            same = path.read_bytes() == content
        except OSError:
            same = False
        if same:
            self.out(f"{path} is up to date")
            return False
        if self.dry_run:
            self.out(f"would write {path}:")
            self.out(content.decode("utf-8").rstrip("\n"))
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(content)
        os.replace(tmp, path)
        self.out(f"wrote {path}")
        return True

    def remove(self, path: Path) -> None:
        if not path.exists():
            return
        if self.dry_run:
            self.out(f"would remove {path}")
            return
        path.unlink()
        self.out(f"removed {path}")

    def run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command (output captured); with check, a failure is reported."""
        if self.dry_run:
            self.out(f"would run: {shlex.join(argv)}")
            return subprocess.CompletedProcess(argv, 0, "", "")
        done = run_quiet(argv)
        if check and done.returncode != 0:
            self.out(f"`{shlex.join(argv)}` failed: {(done.stderr or done.stdout).strip()}")
        return done


def run_quiet(
    argv: list[str], timeout: float = COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]} is not installed")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"no answer within {timeout:.0f} s")


def user_manager() -> str | None:
    """None when the systemd user manager answers, else why not."""
    done = run_quiet(systemctl("show-environment"), timeout=10)
    if done.returncode == 0:
        return None
    return (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"


# -- the commands --------------------------------------------------------------------------


@dataclass
class Context:
    """What the service commands need from the command line and the settings."""

    argv: list[str]  # the daemon's command line
    state_dir: Path
    share_dir: Path
    console: Console
    live_links: Callable[[], int]  # how many links are live now
    revoke_all: Callable[[], int]  # revokes them; exit status


def install(ctx: Context) -> int:
    if sys.platform == "darwin":
        return _install_launchd(ctx)
    if sys.platform.startswith("linux"):
        return _install_systemd(ctx)
    ctx.console.out(f"fadelink service: not supported on {sys.platform}; run `fadelink run`")
    return 2


def uninstall(ctx: Context, *, revoke_all: bool) -> int:
    live = ctx.live_links()
    if ctx.console.dry_run and revoke_all:
        ctx.console.out("would revoke every live link")
    elif live and revoke_all:
        if ctx.revoke_all() != 0:
            ctx.console.out("some links could not be revoked; the service stays installed")
            return 1
    elif live:
        ctx.console.out(
            f"warning: {live} link{'s are' if live > 1 else ' is'} still live. With fadelink "
            "stopped, nothing revokes them at their deadline: they die the next time fadelink "
            "runs. `fadelink service uninstall --revoke-all` revokes them now."
        )
    if sys.platform == "darwin":
        return _uninstall_launchd(ctx)
    if sys.platform.startswith("linux"):
        return _uninstall_systemd(ctx)
    ctx.console.out(f"fadelink service: not supported on {sys.platform}")
    return 2


def status(ctx: Context) -> int:
    out = ctx.console.out
    if sys.platform == "darwin":
        path = plist_path()
        out(f"agent: {path} ({'installed' if path.exists() else 'not installed'})")
        if path.exists():
            loaded = (
                run_quiet(["launchctl", "print", f"{launchd_domain()}/{LABEL}"]).returncode == 0
            )
            out(f"launchd: {'loaded' if loaded else 'not loaded'}")
    else:
        path = unit_path()
        out(f"unit: {path} ({'installed' if path.exists() else 'not installed'})")
        why = user_manager()
        if why is not None:
            out(f"systemd user manager: not reachable ({why})")
        elif path.exists():
            enabled = run_quiet(systemctl("is-enabled", UNIT)).stdout.strip() or "unknown"
            active = run_quiet(systemctl("is-active", UNIT)).stdout.strip() or "unknown"
            out(f"service: {active} ({enabled})")
    pid = daemon_running(ctx.state_dir)
    out(f"daemon: running (pid {pid})" if pid else "daemon: not running")
    return 0 if pid else EXIT_NOT_RUNNING


def logs(ctx: Context, *, lines: int, follow: bool) -> int:
    """The daemon's log: the user journal for the systemd service, else fadelink's log file."""
    if sys.platform.startswith("linux") and unit_path().exists() and shutil.which("journalctl"):
        argv = ["journalctl", "--user", "--unit", UNIT, "--lines", str(lines), "--no-pager"]
        if follow:
            argv.append("--follow")
        # Straight to the terminal: journalctl pages, colours and follows by itself.
        if subprocess.run(argv, check=False).returncode == 0:
            return 0
    path = log_file()
    if not path.exists():
        ctx.console.out(f"no log yet ({path} does not exist)")
        return 1
    if follow and shutil.which("tail"):
        return subprocess.run(["tail", "-n", str(lines), "-F", str(path)], check=False).returncode
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    ctx.console.out("\n".join(text))
    return 0


def log_file() -> Path:
    return logging_setup.log_file()


# -- systemd install/uninstall -------------------------------------------------------------


def _install_systemd(ctx: Context) -> int:
    c = ctx.console
    path = unit_path()
    changed = c.write(path, render_unit(ctx.argv).encode("utf-8"))
    names = [n for n in SESSION_VARIABLES if os.environ.get(n)]
    steps = [
        *([systemctl("import-environment", *names)] if names else []),
        systemctl("daemon-reload"),
        systemctl("enable", UNIT),
        # A changed unit (or a first install) restarts; an unchanged one only makes sure
        # it runs, so installing twice changes nothing.
        systemctl("restart" if changed else "start", UNIT),
    ]
    if c.dry_run:
        for step in steps:
            c.run(step)
        return 0
    why = user_manager()
    if why is not None:
        c.out(
            f"No systemd user manager is reachable ({why}), so the service was written but "
            "not started. This happens in containers and in SSH sessions without lingering. "
            "To finish, in your desktop session (or after `loginctl enable-linger`) run:\n"
            f"    systemctl --user daemon-reload && systemctl --user enable --now {UNIT}"
        )
        return EXIT_NO_MANAGER
    if not names:
        c.out(
            "warning: neither DISPLAY nor WAYLAND_DISPLAY is set here: install from a terminal "
            "in your desktop session, or the service cannot reach the clipboard"
        )
    running = daemon_running(ctx.state_dir)
    if running and running != _main_pid():
        c.out(
            f"warning: fadelink is already running (pid {running}) outside the service; "
            "stop it, or the service cannot start"
        )
    for step in steps:
        if c.run(step).returncode != 0:
            c.out(f"`fadelink service logs` shows why; the unit is {path}")
            return 1
    c.out(f"fadelink runs as the systemd user service {UNIT} and starts with your session")
    if run_quiet(systemctl("is-active", "graphical-session.target")).stdout.strip() != "active":
        c.out(_FALLBACK)
    return 0


def _main_pid() -> int | None:
    done = run_quiet(systemctl("show", "--property", "MainPID", "--value", UNIT))
    value = done.stdout.strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _uninstall_systemd(ctx: Context) -> int:
    c = ctx.console
    path = unit_path()
    if not path.exists():
        c.out(f"the service is not installed ({path} does not exist)")
        return 0
    if c.dry_run:
        c.run(systemctl("disable", "--now", UNIT))
        c.remove(path)
        c.run(systemctl("daemon-reload"))
        return 0
    why = user_manager()
    if why is None:
        c.run(systemctl("disable", "--now", UNIT))
    c.remove(path)
    if why is not None:
        c.out(
            f"No systemd user manager is reachable ({why}): if fadelink still runs as a "
            "service, stop it in your desktop session with "
            f"`systemctl --user disable --now {UNIT}`"
        )
        return EXIT_NO_MANAGER
    c.run(systemctl("daemon-reload"))
    c.run(systemctl("reset-failed", UNIT), check=False)  # forget an old failure, if any
    c.out("fadelink no longer runs as a service")
    return 0


# -- launchd install/uninstall -------------------------------------------------------------


def _install_launchd(ctx: Context) -> int:
    c = ctx.console
    path = plist_path()
    logs_at = log_dir()
    c.write(path, render_plist(ctx.argv, logs_at))
    if not c.dry_run:
        logs_at.mkdir(parents=True, exist_ok=True)
    # bootstrap fails ("5: Input/output error") for a loaded job: take it out first.
    c.run(["launchctl", "bootout", f"{launchd_domain()}/{LABEL}"], check=False)
    if c.run(["launchctl", "bootstrap", launchd_domain(), str(path)]).returncode != 0:
        return 1
    home = Path.home()
    private = [home / name for name in MACOS_PRIVATE_FOLDERS]
    if any(ctx.share_dir == p or p in ctx.share_dir.parents for p in private):
        c.out(
            f"warning: the share folder {ctx.share_dir} is inside a folder macOS guards "
            "(Desktop, Documents, Downloads): a launchd agent may not read it. Choose another "
            "FADELINK_SHARE_DIR (the default ~/Pictures/Fadelink is fine), or grant the "
            "Python that runs fadelink Full Disk Access in System Settings."
        )
    c.out(f"fadelink runs as the launchd agent {LABEL} and starts when you log in")
    return 0


def _uninstall_launchd(ctx: Context) -> int:
    c = ctx.console
    path = plist_path()
    if not path.exists():
        c.out(f"the agent is not installed ({path} does not exist)")
        return 0
    c.run(["launchctl", "bootout", f"{launchd_domain()}/{LABEL}"], check=False)
    c.remove(path)
    if not c.dry_run:
        c.out("fadelink no longer runs as an agent")
    return 0


# -- command line --------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    sv = sub.add_parser("service", help="start fadelink with your desktop session")
    actions = sv.add_subparsers(dest="action", required=True, metavar="ACTION")
    dry = {"action": "store_true", "help": "print what would be written and run; touch nothing"}
    ins = actions.add_parser(
        "install", help="install the systemd user service (launchd agent), enable and start it"
    )
    ins.add_argument("--dry-run", **dry)
    un = actions.add_parser("uninstall", help="stop and remove the service")
    un.add_argument("--dry-run", **dry)
    un.add_argument("--revoke-all", action="store_true", help="revoke every live link first")
    actions.add_parser("status", help="is the service installed and running?")
    lg = actions.add_parser("logs", help="show the daemon's log")
    lg.add_argument("-n", "--lines", type=int, default=100, help="how many lines (default 100)")
    lg.add_argument("-f", "--follow", action="store_true", help="keep showing new lines")


def cmd_service(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.cli import cmd_revoke
    from daemon.journal import Journal, State

    def live_links() -> int:
        if not settings.journal_path.exists():
            return 0
        return len(Journal(settings.journal_path).shares([State.LIVE]))

    def revoke_all() -> int:
        return cmd_revoke(settings, argparse.Namespace(ids=[], all=True))

    dry_run = getattr(args, "dry_run", False)
    ctx = Context(
        argv=fadelink_command(args.env_file),
        state_dir=settings.state_dir,
        share_dir=settings.share_dir.expanduser().absolute(),
        console=Console(dry_run=dry_run),
        # A dry run opens nothing, not even the journal.
        live_links=(lambda: 0) if dry_run else live_links,
        revoke_all=revoke_all,
    )
    if args.action == "install":
        return install(ctx)
    if args.action == "uninstall":
        return uninstall(ctx, revoke_all=args.revoke_all)
    if args.action == "status":
        return status(ctx)
    return logs(ctx, lines=args.lines, follow=args.follow)
