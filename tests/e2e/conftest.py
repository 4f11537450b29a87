"""Browser fixtures: Playwright driving Debian's Chromium against pytest-django's live server.

- ``browser``: a headless Chromium for one test (skipped without /usr/bin/chromium, unless
  ``REQUIRE_BROWSER`` is set, when it fails instead).
- ``page`` (a desktop window, 1280 x 800) and ``phone_page`` (390 x 844, a phone's viewport).
- ``shot(page, name)``: a full-page PNG of one step, saved under the test's ``tmp_path`` and copied to
  ``/tmp/e2e-shots/<test name>/`` to be looked at; the run's summary lists where they went. A failing
  test gets a last ``zz-failure`` shot of each of its pages.
- ``openai_server`` (overrides the shared one): waits for the arena's generation threads to end
  before the server stops, so no battle of a finished test is voided half-way by a closed socket.

The tests open battles whose answers the arena generates in background threads with their own
database connections: they need committed data, ``pytest.mark.django_db(transaction=True)``.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connections

CHROMIUM = Path("/usr/bin/chromium")
SHOTS_ROOT = Path("/tmp/e2e-shots")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

_taken: list[Path] = []  # every copy under SHOTS_ROOT this run, for the summary


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.stash[_failed_key] = report.failed
    return report


_failed_key = pytest.StashKey[bool]()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    if _taken:
        dirs = sorted({p.parent for p in _taken})
        terminalreporter.write_sep("-", f"browser screenshots: {len(_taken)} in {SHOTS_ROOT}")
        for d in dirs:
            terminalreporter.write_line(f"{d}: {', '.join(sorted(p.name for p in _taken if p.parent == d))}")


def _wait_for_generation(timeout: float = 20.0) -> None:
    """Join the arena's background generation threads (named ``arena-battle-<id>``) of this process."""
    for thread in threading.enumerate():
        if thread.name.startswith("arena-battle-"):
            thread.join(timeout)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # Rate-limit counts, source health and live state of another test must not leak in.
    cache.clear()
    yield
    _wait_for_generation()
    cache.clear()


@pytest.fixture
def openai_server(openai_server):  # type: ignore[no-untyped-def]
    yield openai_server
    _wait_for_generation()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(f"REQUIRE_BROWSER is set but {CHROMIUM} is missing")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the live server's DB access is in its own.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield browser
        finally:
            browser.close()
            # With Playwright's loop running, Django keys connections by that context: the queries the
            # test made opened a connection that Django's own teardown will not see. Close it here, inside.
            connections.close_all()


def _new_page(browser, request: pytest.FixtureRequest, tmp_path: Path, **options):  # type: ignore[no-untyped-def]
    page = browser.new_page(**options)
    page.set_default_timeout(10_000)  # a stuck page fails in seconds, not Playwright's 30
    yield page
    if request.node.stash.get(_failed_key, False) and not page.is_closed():
        # The page may be gone with the failure; the test's own error matters more than this shot.
        with contextlib.suppress(Exception):
            _save(page, request, tmp_path, f"zz-failure-{options['viewport']['width']}")


@pytest.fixture
def page(browser, request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    yield from _new_page(browser, request, tmp_path, viewport=DESKTOP)


@pytest.fixture
def phone_page(browser, request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    yield from _new_page(browser, request, tmp_path, viewport=PHONE, is_mobile=True, has_touch=True,
                         device_scale_factor=2)


def _test_dir_name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)


def _save(page, request: pytest.FixtureRequest, tmp_path: Path, name: str) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "shots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    copy = SHOTS_ROOT / _test_dir_name(request) / path.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, copy)
    _taken.append(copy)
    return path


@pytest.fixture
def shot(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Path]:
    """``shot(page, "01-typed-prompt")``: save a full-page PNG of this step; returns its path under tmp_path."""
    shutil.rmtree(SHOTS_ROOT / _test_dir_name(request), ignore_errors=True)  # no stale shots of an earlier run

    def take(page, name: str) -> Path:  # type: ignore[no-untyped-def]
        return _save(page, request, tmp_path, name)

    return take
