"""Shared fixtures."""

from collections.abc import Iterator
from pathlib import Path

import pytest

# First: it points the Dropbox SDK at the fake before anything imports the SDK.
from tests.fake_dropbox import FakeDropbox  # isort: skip
from tests.desktop import Desktop, start_desktop


@pytest.fixture
def desktop() -> Iterator[Desktop]:
    """A private Xvfb + D-Bus session bus + dunst (skipped when missing, see desktop.require)."""
    with start_desktop() as running:
        yield running


@pytest.fixture
def fake_dropbox() -> Iterator[FakeDropbox]:
    """A fake Dropbox over HTTPS on loopback; `.env` points a daemon (and the SDK) at it."""
    fake = FakeDropbox()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty folder for prepared copies."""
    d = tmp_path / "prepared"
    d.mkdir()
    return d
