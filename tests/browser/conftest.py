"""Playwright (Python) driving Debian's chromium against a real `easel serve`; every page a test
opens is checked for requests to any other origin and for script or policy errors."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from tests.helpers import Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium from Debian (Playwright's own download does not work here), once per module."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed; .ci/run installs it (apt-get install chromium)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


@dataclass
class Seen:
    """What a page asked for and complained about while a test drove it."""

    origin: str
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def elsewhere(self) -> list[str]:
        """Requests to any origin but the server's (its own blob: URLs are the page's own)."""
        own = (f"{self.origin}/", f"blob:{self.origin}/", "data:")
        return [url for url in self.requests if not url.startswith(own)]


@dataclass
class Playground:
    page: Page
    seen: Seen
    server: Server


@contextlib.contextmanager
def open_playground(browser: Browser, server: Server) -> Iterator[Playground]:
    """A fresh context (no history, no key) on `server`'s playground; checks what it asked for."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    context.set_default_timeout(120_000)  # each wait is on an element or event; a loaded machine is slow
    page = context.new_page()
    seen = Seen(server.url)
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("pageerror", lambda error: seen.problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: seen.problems.append(f"console: {message.text}") if message.type == "error" else None,
    )
    page.goto(f"{server.url}/")
    page.wait_for_selector("body[data-ready=true]")
    yield Playground(page, seen, server)
    context.close()
    assert seen.elsewhere() == []
    # The browser logs each refusal (a 4xx, a retryable 503) the page got; the page shows those itself.
    refused = re.compile(r"Failed to load resource: the server responded with a status of (4\d\d|503)\b")
    assert [p for p in seen.problems if not refused.search(p)] == []


@pytest.fixture
def playground(browser: Browser, lenient_server: Server) -> Iterator[Playground]:
    """The playground of a lenient server with every model, in a fresh context (no history)."""
    with open_playground(browser, lenient_server) as opened:
        yield opened
