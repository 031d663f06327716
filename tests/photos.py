"""Real camera files for tests, from ../shared/testdata/photos beside the repository.

They are never copied into the repository. When the folder is absent, tests that need it
are skipped; with FADELINK_REQUIRE_TESTDATA=1 (CI) they fail instead, so a missing
checkout cannot turn the suite silently green.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REQUIRE_ENV = "FADELINK_REQUIRE_TESTDATA"
PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "photos"


def _missing(what: str) -> None:
    message = f"{what} is missing (real test photos live in ../shared/testdata/photos)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} and {REQUIRE_ENV}=1")
    pytest.skip(message)


def photos_dir() -> Path:
    """The shared photo folder; skips (or fails, see module doc) when it is absent."""
    if not PHOTOS.is_dir():
        _missing(str(PHOTOS))
    return PHOTOS


def shared_photo(name: str) -> Path:
    """One shared photo by file name, e.g. shared_photo("jpg_gps_DSCN0010.jpg")."""
    path = photos_dir() / name
    if not path.is_file():
        _missing(str(path))
    return path
