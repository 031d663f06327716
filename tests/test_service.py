"""fadelink as a service: the generated systemd unit and launchd plist, the templates inside
the wheel, `fadelink service install|uninstall` with and without a user manager, and the
notify protocol (READY=1 only once a saved photo is picked up, then WATCHDOG=1)."""

from __future__ import annotations

import os
import plistlib
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.journal import Journal, State
from daemon.service import UNIT, fadelink_command, render_plist, render_unit
from tests.daemon_proc import DaemonProcess, Home, wait_for
from tests.desktop import require_binaries
from tests.images import make_jpeg

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = ("fadelink.service", "io.fadelink.agent.plist")


def unit_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


# -- the unit ------------------------------------------------------------------------------


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze --user verify, with a private, empty runtime dir of its own."""
    require_binaries("systemd-analyze")
    with tempfile.TemporaryDirectory(prefix="fl-rt-") as runtime:
        os.chmod(runtime, 0o700)
        return subprocess.run(
            ["systemd-analyze", "--user", "verify", str(unit)],
            env=dict(os.environ, XDG_RUNTIME_DIR=runtime),
            capture_output=True,
            text=True,
            timeout=60,
        )


def test_generated_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    argv = fadelink_command()
    unit = tmp_path / UNIT
    unit.write_text(render_unit(argv))
    done = verify(unit)
    # Typos and bad values only warn, with exit status 0: any stderr is a failure.
    assert (done.returncode, done.stderr) == (0, "")

    lines = unit_lines(unit.read_text())
    (exec_start,) = [line for line in lines if line.startswith("ExecStart=")]
    program = exec_start.removeprefix("ExecStart=").split()[0]
    assert Path(program).is_absolute() and "~" not in exec_start
    assert os.access(program, os.X_OK) and exec_start.endswith(" run")
    for line in (
        "Type=notify",
        "PartOf=graphical-session.target",
        "After=graphical-session.target",
        "WantedBy=graphical-session.target",
        "Restart=on-failure",
    ):
        assert line in lines
    assert any(line.startswith("WatchdogSec=") for line in lines)
    assert any(line.startswith("RestartSec=") for line in lines)


def test_unit_for_a_path_with_spaces_and_specifiers_verifies(tmp_path: Path) -> None:
    # A venv in "My Apps" with a % in a settings path: quoted and escaped, not split.
    program = tmp_path / "My Apps" / "fadelink"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    unit = tmp_path / UNIT
    unit.write_text(render_unit([str(program), "--env-file", "/home/x/100% $HOME.env", "run"]))
    done = verify(unit)
    assert (done.returncode, done.stderr) == (0, "")
    (exec_start,) = [ln for ln in unit_lines(unit.read_text()) if ln.startswith("ExecStart=")]
    assert exec_start == (f'ExecStart="{program}" --env-file "/home/x/100%% $$HOME.env" run')


# -- the plist -----------------------------------------------------------------------------


def test_plist_round_trips_through_plistlib_with_absolute_paths(tmp_path: Path) -> None:
    argv = fadelink_command(Path("~/fadelink.env"))
    logs = tmp_path / "Library" / "Logs" / "fadelink"
    data = render_plist(argv, logs)
    agent = plistlib.loads(data)
    assert plistlib.dumps(agent) == data  # what plistlib wrote, plistlib reads back the same

    assert agent["Label"] == "io.fadelink.agent"
    assert agent["ProgramArguments"] == argv
    assert agent["ProgramArguments"][-1] == "run"
    assert "--env-file" in argv and not any("~" in a for a in agent["ProgramArguments"])
    assert Path(agent["ProgramArguments"][0]).is_absolute()
    assert agent["RunAtLoad"] is True
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["ProcessType"] == "Interactive"
    for key in ("StandardOutPath", "StandardErrorPath"):
        assert Path(agent[key]).is_absolute() and Path(agent[key]).parent == logs


# -- the wheel -----------------------------------------------------------------------------


def test_built_wheel_contains_the_templates_and_finds_them(tmp_path: Path) -> None:
    # Built from a copy: an in-tree build would leave build/ and egg-info in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    for tree in ("daemon", "service"):
        shutil.copytree(REPO / tree, src / tree, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("fadelink-*.whl")
    with zipfile.ZipFile(wheel) as z:
        for name in TEMPLATES:
            assert (
                z.read(f"daemon/service_templates/{name}") == (REPO / "service" / name).read_bytes()
            )
        z.extractall(tmp_path / "installed")

    # Installed, with no checkout beside it, the package finds its own copy.
    installed = tmp_path / "installed"
    code = (
        f"import daemon.service as s; assert s.__file__.startswith({str(installed)!r});"
        "print(s.render_unit(['/opt/fadelink/bin/fadelink', 'run']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=str(installed)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "ExecStart=/opt/fadelink/bin/fadelink run" in done.stdout


# -- fadelink service install / uninstall ----------------------------------------------------


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime."""
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in root.rglob("*")
    }


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """A user with no systemd user manager to talk to (as in a container or over SSH)."""
    home = Home(tmp_path, dict(os.environ))
    (tmp_path / "home").mkdir()
    return home


def no_manager(tmp_path: Path) -> dict[str, str]:
    return {
        "XDG_RUNTIME_DIR": str(tmp_path / "no-runtime"),
        "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path / 'no-runtime' / 'bus'}",
    }


def unit_file(home: Home) -> Path:
    return home.root / "config" / "systemd" / "user" / UNIT


def test_install_dry_run_touches_nothing(home: Home, tmp_path: Path) -> None:
    before = tree(tmp_path)
    done = home.cli("service", "install", "--dry-run", **no_manager(tmp_path))
    assert done.returncode == 0, done.stderr
    assert f"would write {unit_file(home)}" in done.stdout
    assert "ExecStart=/" in done.stdout
    assert "would run: systemctl --user enable fadelink.service" in done.stdout
    assert tree(tmp_path) == before


def test_install_without_a_user_manager_writes_the_unit_and_exits_3(
    home: Home, tmp_path: Path
) -> None:
    env = no_manager(tmp_path)
    done = home.cli("service", "install", **env)
    assert done.returncode == 3, done.stderr
    assert unit_file(home).read_text() == render_unit(fadelink_command())
    assert "No systemd user manager is reachable" in done.stdout
    assert "systemctl --user enable --now fadelink.service" in done.stdout  # how to finish

    again = home.cli("service", "install", **env)  # idempotent
    assert again.returncode == 3 and "is up to date" in again.stdout

    dry = home.cli("service", "uninstall", "--dry-run", **env)
    assert dry.returncode == 0 and f"would remove {unit_file(home)}" in dry.stdout
    assert unit_file(home).exists()
    removed = home.cli("service", "uninstall", **env)
    assert removed.returncode == 3 and not unit_file(home).exists()
    gone = home.cli("service", "uninstall", **env)
    assert gone.returncode == 0 and "not installed" in gone.stdout


@pytest.fixture
def user_manager(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A stand-in `systemctl` that answers as a running user manager and records its calls
    (no user manager runs in a container); returns the environment to use and the record."""
    record = tmp_path / "systemctl.calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "systemctl"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {record}\n'
        'case "$*" in\n'
        "  *is-active\\ graphical-session.target*) echo inactive; exit 3;;\n"
        "  *MainPID*) echo 0;;\n"
        "esac\n"
        "exit 0\n"
    )
    script.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "DISPLAY": ":57"}
    return env, record


def calls(record: Path) -> list[str]:
    lines = record.read_text().splitlines() if record.exists() else []
    record.unlink(missing_ok=True)
    # Reads (is the manager there, which pid runs) are not what the user asked for.
    return [c for c in lines if c.split()[1] not in ("show-environment", "show")]


def test_install_enables_and_starts_and_reinstall_changes_nothing(
    home: Home, user_manager: tuple[dict[str, str], Path]
) -> None:
    env, record = user_manager
    done = home.cli("service", "install", **env, WAYLAND_DISPLAY="")
    assert done.returncode == 0, done.stdout + done.stderr
    assert calls(record) == [
        "--user import-environment DISPLAY",  # only what this session has
        "--user daemon-reload",
        "--user enable fadelink.service",
        "--user restart fadelink.service",
        "--user is-active graphical-session.target",
    ]
    # The session never reached graphical-session.target: the fallback is explained.
    assert "systemctl --user import-environment DISPLAY WAYLAND_DISPLAY XAUTHORITY" in done.stdout
    written = unit_file(home).read_bytes()

    again = home.cli("service", "install", **env, WAYLAND_DISPLAY="")
    assert again.returncode == 0 and "is up to date" in again.stdout
    assert "--user start fadelink.service" in calls(record)  # no restart: nothing changed
    assert unit_file(home).read_bytes() == written


def live_share(home: Home) -> str:
    journal = Journal(home.state_dir / "journal.sqlite3")
    share, _ = journal.add_pending("/x/a.jpg", 1, 1, backend="local", lifetime_s=3600, now=1.0)
    journal.to_uploading(share.id, "servedname.jpg", 2.0)
    journal.to_live(share.id, "http://127.0.0.1:1/tok", "key", 3.0, 4e9)
    journal.close()
    return share.id


def test_uninstall_warns_about_live_links_and_revokes_them_when_asked(
    home: Home, user_manager: tuple[dict[str, str], Path]
) -> None:
    env, record = user_manager
    assert home.cli("service", "install", **env).returncode == 0
    share_id = live_share(home)

    warned = home.cli("service", "uninstall", "--dry-run", "--revoke-all", **env)
    assert "would revoke every live link" in warned.stdout
    assert Journal(home.state_dir / "journal.sqlite3").get(share_id).state is State.LIVE

    done = home.cli("service", "uninstall", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 link is still live" in done.stdout and "--revoke-all" in done.stdout
    assert "--user disable --now fadelink.service" in calls(record)
    assert not unit_file(home).exists()

    assert home.cli("service", "install", **env).returncode == 0
    done = home.cli("service", "uninstall", "--revoke-all", **env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "still live" not in done.stdout
    assert Journal(home.state_dir / "journal.sqlite3").get(share_id).state is State.GONE


# -- the notify protocol -------------------------------------------------------------------


@pytest.fixture
def notify_socket() -> Iterator[socket.socket]:
    """The datagram socket systemd would listen on ($NOTIFY_SOCKET); short path for AF_UNIX."""
    tmp = Path(tempfile.mkdtemp(prefix="fl-sd-"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp / "notify"))
    try:
        yield sock
    finally:
        sock.close()
        shutil.rmtree(tmp, ignore_errors=True)


def receive(sock: socket.socket, wanted: str, timeout: float = 30) -> list[str]:
    """Messages up to and including the first one containing `wanted` (blocking receive)."""
    sock.settimeout(timeout)
    got = []
    while True:
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            raise AssertionError(f"no {wanted!r} within {timeout} s; got {got}") from None
        got.append(message)
        if wanted in message.splitlines():
            return got


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_ready_only_once_a_saved_photo_is_picked_up_then_watchdog(
    desktop, tmp_path: Path, notify_socket: socket.socket
) -> None:
    home = Home(tmp_path, desktop.env)
    daemon = DaemonProcess(
        home,
        NOTIFY_SOCKET=notify_socket.getsockname(),
        WATCHDOG_USEC="1000000",  # WatchdogSec=1s: a ping every half second
    )
    try:
        first = receive(notify_socket, "READY=1")
        assert first[-1].startswith("READY=1") and len(first) == 1
        # At READY the link server answers, and a photo saved now (on the very first run,
        # when files found by the start-up scan are left alone) is shared.
        assert status(f"http://127.0.0.1:{home.port}/not-a-link") == 404
        make_jpeg(home.share_dir / "right-after-ready.jpg", (400, 300))
        journal = Journal(home.state_dir / "journal.sqlite3")
        wait_for(lambda: journal.shares([State.LIVE]), 15, "the photo saved at READY shared")
        daemon.wait_line("ready:", timeout=1)  # the line came before READY, flushed

        pings = receive(notify_socket, "WATCHDOG=1", timeout=5)
        assert pings == ["WATCHDOG=1"]
        assert receive(notify_socket, "WATCHDOG=1", timeout=5) == ["WATCHDOG=1"]
    finally:
        assert daemon.stop() == 0
    assert "STOPPING=1" in receive(notify_socket, "STOPPING=1", timeout=5)[-1]


# -- logs ----------------------------------------------------------------------------------


def test_outside_systemd_the_daemon_also_logs_to_a_private_rotating_file(desktop, tmp_path):
    home = Home(tmp_path, desktop.env)
    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready()
    finally:
        assert daemon.stop() == 0
    log = home.root / "xdg-state" / "fadelink" / "log" / "fadelink.log"
    text = log.read_text()
    assert "link server listening" in text
    assert text.splitlines()[0][:4].isdigit()  # a timestamp: a file has no journal to add one
    assert log.stat().st_mode & 0o077 == 0

    shown = home.cli("service", "logs", "--lines", "50")
    assert shown.returncode == 0
    assert "link server listening" in shown.stdout


def test_under_systemd_the_log_is_plain_lines_for_the_journal(desktop, tmp_path):
    home = Home(tmp_path, desktop.env)
    daemon = DaemonProcess(home, INVOCATION_ID="0123456789abcdef0123456789abcdef")
    try:
        line = daemon.wait_line("link server listening")
    finally:
        assert daemon.stop() == 0
    # The journal adds time and name; the "<6>" prefix is the priority it stores (info).
    assert line.startswith("<6>info: link server listening")
    assert not (home.root / "xdg-state" / "fadelink" / "log").exists()
