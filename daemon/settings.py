"""Settings: environment first, then settings.env in the config dir (or --env-file)."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from daemon.durations import parse_duration

APP = "fadelink"
PREFIX = "FADELINK_"
# Kinds of notification FADELINK_NOTIFY may select.
NOTIFY_KINDS = ("ready", "vanished", "viewed", "errors")

# Examples shown when a value is invalid: one readable line, never a traceback.
EXAMPLES = {
    "share_dir": "~/Pictures/Fadelink",
    "state_dir": "~/.local/state/fadelink",
    "backend": "local or dropbox",
    "lifetime": "90s, 15m, 1h or 7d",
    "local_bind": "0.0.0.0:8787 or 127.0.0.1:8787",
    "local_public_url": "https://photos.example.org/fade",
    "local_trust_proxy": "true or false",
    "once_window": "30s or 2m",
    "notify_qr": "true or false",
    "max_dimension": "2560 (0 keeps the size)",
    "keep_metadata": "true or false",
    "keep_location": "true or false",
    "keep_names": "true or false",
    "share_any": "true or false",
    "settle": "300ms, 1s or 2s",
    "max_parallel": "4",
    "recursive": "true or false",
    "after_share": "keep, move or delete",
    "polling": "true or false",
    "notify": "ready,vanished,viewed,errors (any of them, comma-separated; empty for none)",
    "dropbox_app_key": "the App key from your app's page in the Dropbox App Console",
    "dropbox_refresh_token": "the token `fadelink auth dropbox` stores (headless setups only)",
    "dropbox_folder": "/ or /shared (inside the app's folder)",
    "dropbox_link_style": "preview or raw",
    "on_expiry": "delete or revoke",
    "require_desktop": "1 or 0",
    "require_testdata": "1 or 0",
}


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP))


def default_env_file() -> Path:
    return config_dir() / "settings.env"


def _default_share_dir() -> Path:
    return Path(platformdirs.user_pictures_dir()) / "Fadelink"


def _default_state_dir() -> Path:
    return Path(platformdirs.user_state_dir(APP))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="ignore", case_sensitive=False, validate_default=True
    )

    share_dir: Path = Field(default_factory=_default_share_dir)
    state_dir: Path = Field(default_factory=_default_state_dir)
    backend: Literal["local", "dropbox"] = "local"
    lifetime: str = "1h"
    local_bind: str = "0.0.0.0:8787"
    local_public_url: str | None = None
    # Behind a reverse proxy every request comes from the proxy: only then believe the client
    # address it passes on in X-Forwarded-For.
    local_trust_proxy: bool = False
    # How long a revealed view-once photo stays viewable in the viewer's browser.
    once_window: str = "30s"
    # The "link ready" notification shows a QR code of the link instead of the photo.
    notify_qr: bool = False
    max_dimension: int = Field(default=2560, ge=0, le=100_000)
    # Photo metadata (camera, dates, XMP) stays; GPS only with keep_location too.
    keep_metadata: bool = False
    keep_location: bool = False
    # Remote names keep the original file name (sanitised) instead of a random one.
    keep_names: bool = False
    # Non-images are shared unmodified, with whatever metadata they carry.
    share_any: bool = False
    # Only files written in place without a close event wait this long (a rename or a close
    # is taken at once), and a full decode still guards completeness: short is safe.
    settle: str = "300ms"
    max_parallel: int = Field(default=4, ge=1, le=64)
    recursive: bool = True
    after_share: Literal["keep", "move", "delete"] = "keep"
    polling: bool = False
    notify: str = ",".join(NOTIFY_KINDS)
    # Dropbox (FADELINK_BACKEND=dropbox): see `fadelink auth dropbox` and the README.
    dropbox_app_key: str | None = None
    dropbox_refresh_token: SecretStr | None = None  # a secret: masked in `fadelink config`
    dropbox_folder: str = "/"
    dropbox_link_style: Literal["preview", "raw"] = "preview"
    # At the deadline: revoke the link and delete the remote copy, or only revoke the link.
    on_expiry: Literal["delete", "revoke"] = "delete"
    # Test switches: known names so they draw no "unknown setting" warning.
    require_desktop: bool = False
    require_testdata: bool = False

    @field_validator("share_dir", "state_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("lifetime", "settle", mode="after")
    @classmethod
    def _duration(cls, v: str) -> str:
        if v.strip().lower().endswith("ms") and v.strip()[:-2].isdigit():
            return v.strip().lower()
        parse_duration(v)
        return v.strip().lower()

    @field_validator("notify", mode="after")
    @classmethod
    def _notify(cls, v: str) -> str:
        kinds = [k.strip().lower() for k in v.split(",") if k.strip()]
        if any(k not in NOTIFY_KINDS for k in kinds):
            raise ValueError("unknown kind of notification")
        return ",".join(kinds)

    @field_validator("once_window", mode="after")
    @classmethod
    def _once_window(cls, v: str) -> str:
        parse_duration(v)
        return v.strip().lower()

    @field_validator("dropbox_folder", mode="after")
    @classmethod
    def _dropbox_folder(cls, v: str) -> str:
        parts = v.strip().strip("/").split("/")
        if not v.strip().startswith("/") or any(p in (".", "..") for p in parts) or "//" in v:
            raise ValueError("not an absolute folder path")
        return "/" + "/".join(p for p in parts if p)

    @field_validator("dropbox_app_key", "dropbox_refresh_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("local_bind", mode="after")
    @classmethod
    def _bind(cls, v: str) -> str:
        split_bind(v)
        return v

    @field_validator("local_public_url", mode="after")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError("not an http(s) URL without query")
        return v.rstrip("/")

    @property
    def lifetime_seconds(self) -> int:
        return parse_duration(self.lifetime)

    @property
    def settle_seconds(self) -> float:
        if self.settle.endswith("ms"):
            return int(self.settle[:-2]) / 1000
        return float(parse_duration(self.settle))

    @property
    def notify_kinds(self) -> frozenset[str]:
        return frozenset(k for k in self.notify.split(",") if k)

    @property
    def once_window_seconds(self) -> int:
        return parse_duration(self.once_window)

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.sqlite3"

    def public(self) -> dict[str, str]:
        """Effective settings as env-style names, secrets masked."""
        out = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "(set, hidden)"
            out[PREFIX + name.upper()] = "" if value is None else str(value)
        return out


def split_bind(value: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' → (host, port); ValueError if malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class SettingsError(Exception):
    """One readable line naming the setting, the bad value and an example."""


def load(env_file: Path | None = None) -> Settings:
    path = env_file if env_file is not None else default_env_file()
    if env_file is not None and not env_file.is_file():
        raise SettingsError(f"--env-file {env_file}: no such file")
    try:
        return Settings(_env_file=path if path.is_file() else None)  # type: ignore[call-arg]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        value = err.get("input")
        shown = value if isinstance(value, str) else repr(value)
        example = EXAMPLES.get(field, "see settings.example.env")
        raise SettingsError(
            f"{PREFIX}{field.upper()}={shown!s} is not valid; use a value like {example}"
        ) from None


def unknown_names(env_file: Path | None = None) -> list[str]:
    """Warnings for FADELINK_* names that no setting has, naming the closest one."""
    known = [PREFIX + n.upper() for n in Settings.model_fields]
    seen = [k for k in os.environ if k.upper().startswith(PREFIX)]
    path = env_file if env_file is not None else default_env_file()
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            key = line.split("=", 1)[0].strip().removeprefix("export ").strip()
            if key.upper().startswith(PREFIX):
                seen.append(key)
    warnings = []
    for key in dict.fromkeys(seen):
        if key.upper() in known or key.upper().startswith(PREFIX + "CRASH_AT"):
            continue
        close = difflib.get_close_matches(key.upper(), known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"unknown setting {key}{hint}")
    return warnings
