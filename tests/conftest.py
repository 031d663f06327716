"""Shared fixtures."""

from collections.abc import Iterator

import pytest

from tests.desktop import Desktop, start_desktop


@pytest.fixture
def desktop() -> Iterator[Desktop]:
    """A private Xvfb + D-Bus session bus + dunst (skipped when missing, see desktop.require)."""
    with start_desktop() as running:
        yield running
