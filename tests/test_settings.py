"""Settings errors are one readable line with exit code 2; unknown names get a hint."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.durations import format_duration, parse_duration
from daemon.settings import Settings, SettingsError, load, unknown_names


def fadelink(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("FADELINK_")}
    e.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )
    return e


@pytest.mark.parametrize(
    ("name", "value", "example"),
    [
        ("FADELINK_LIFETIME", "forever", "90s, 15m, 1h or 7d"),
        ("FADELINK_LIFETIME", "0s", "90s, 15m, 1h or 7d"),
        ("FADELINK_BACKEND", "ftp", "local or dropbox"),
        ("FADELINK_LOCAL_BIND", "8787", "0.0.0.0:8787"),
        ("FADELINK_LOCAL_PUBLIC_URL", "photos.example.org", "https://"),
        ("FADELINK_MAX_DIMENSION", "-5", "2560"),
        ("FADELINK_MAX_DIMENSION", "big", "2560"),
    ],
)
def test_invalid_value_is_one_readable_line_and_exit_2(env, name, value, example):
    env[name] = value
    result = fadelink("config", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0] and value in lines[0] and example in lines[0]
    assert "Traceback" not in result.stderr and "pydantic" not in result.stderr.lower()


def test_settings_file_in_config_dir_is_read_and_env_wins(env, tmp_path):
    cfg = Path(env["XDG_CONFIG_HOME"]) / "fadelink"
    cfg.mkdir(parents=True)
    (cfg / "settings.env").write_text("FADELINK_LIFETIME=15m\nFADELINK_MAX_DIMENSION=800\n")
    env["FADELINK_MAX_DIMENSION"] = "1200"
    out = fadelink("config", env=env)
    assert out.returncode == 0, out.stderr
    assert "FADELINK_LIFETIME=15m" in out.stdout
    assert "FADELINK_MAX_DIMENSION=1200" in out.stdout


def test_env_file_option_and_defaults_honour_xdg(env, tmp_path):
    f = tmp_path / "mine.env"
    f.write_text("FADELINK_LIFETIME=7d\n")
    out = fadelink("--env-file", str(f), "config", env=env)
    assert out.returncode == 0, out.stderr
    assert "FADELINK_LIFETIME=7d" in out.stdout
    assert f"FADELINK_STATE_DIR={env['XDG_STATE_HOME']}/fadelink" in out.stdout
    assert "FADELINK_BACKEND=local" in out.stdout
    assert "FADELINK_LOCAL_BIND=0.0.0.0:8787" in out.stdout


def test_missing_env_file_is_a_clear_error(env, tmp_path):
    out = fadelink("--env-file", str(tmp_path / "nope.env"), "config", env=env)
    assert out.returncode == 2
    assert "nope.env" in out.stderr


def test_unknown_setting_names_the_closest(monkeypatch, tmp_path):
    monkeypatch.setenv("FADELINK_LIFETIM", "1h")
    monkeypatch.setenv("FADELINK_REQUIRE_DESKTOP", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    warnings = unknown_names()
    assert warnings == ["unknown setting FADELINK_LIFETIM; did you mean FADELINK_LIFETIME?"]


def test_error_from_settings_file_names_the_setting(tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("FADELINK_"):
            monkeypatch.delenv(k)
    f = tmp_path / "s.env"
    f.write_text("FADELINK_LIFETIME=soon\n")
    with pytest.raises(SettingsError, match="FADELINK_LIFETIME=soon"):
        load(f)


def test_lifetime_and_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("FADELINK_LIFETIME", "90s")
    monkeypatch.setenv("XDG_PICTURES_DIR", str(tmp_path / "pics"))
    s = Settings()
    assert s.lifetime_seconds == 90
    assert s.max_dimension == 2560
    assert s.share_dir.name == "Fadelink"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800), ("1h30m", 5400)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "1x", "-1h", "0m", "1.5h"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration():
    assert format_duration(59.6) == "1 min"
    assert format_duration(3599) == "59 min"
    assert format_duration(7500) == "2 h 5 min"
    assert format_duration(90000) == "1 d 1 h"
