"""A real browser for tests: Debian's chromium driven through its chromium-driver by selenium.

Both binaries are given to selenium explicitly, so it never looks for (or downloads) a driver of
its own. Every browser gets a fresh profile in a temp dir: nothing is shared between two of them
(cookies included) and nothing is left behind.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tests.desktop import require

if TYPE_CHECKING:  # selenium is imported only once the binaries are known to be there
    from selenium.webdriver.remote.webdriver import WebDriver

ARTIFACTS = Path(__file__).parent / "artifacts"  # gitignored: screenshots for a person to look at

CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container: the sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",  # no calls home, no component downloads
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",  # containers have a tiny /dev/shm
    "--window-size=1024,768",
)


def binaries() -> tuple[str, str]:
    """(chromium, chromedriver); skips the test (or fails it, FADELINK_REQUIRE_DESKTOP=1)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        require("chromium and chromium-driver are needed for the browser tests")
    try:
        import selenium  # noqa: F401
    except ImportError:
        require("selenium is needed for the browser tests (pip install -e '.[test]')")
    return chromium, driver


@contextlib.contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile; yields a selenium WebDriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = binaries()
    profile = Path(tempfile.mkdtemp(prefix="fl-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (*CHROMIUM_ARGS, f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def photo_width(driver: WebDriver) -> int:
    """naturalWidth of the page's photo: > 0 once it has really loaded, 0 or -1 otherwise."""
    return int(
        driver.execute_script(
            "var i = document.querySelector('img');"
            "return i ? (i.complete ? i.naturalWidth : 0) : -1;"
        )
    )
