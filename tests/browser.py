"""Debian's headless Chromium driven by Playwright, with every request the browser makes recorded and any that
would leave the loopback interface refused (and reported), so a page that needs the internet fails its test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots and other files a browser test leaves for a human to look at.
ARTIFACTS_DIR = Path(os.environ.get("SDP_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "tmp" / "artifacts"))
LOOPBACK = "127.0.0.1"


@dataclass
class Traffic:
    """Every URL the browser asked for, those refused for leaving loopback, and the page's console errors."""

    requests: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def guard(self, route: Route) -> None:
        url = route.request.url
        self.requests.append(url)
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or (parts.scheme in ("http", "https") and parts.hostname == LOOPBACK):
            route.continue_()
        else:
            self.refused.append(url)
            route.abort("internetdisconnected")

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)


@contextmanager
def chromium_page() -> Iterator[tuple[Page, Traffic]]:
    """A fresh browser, context and page whose traffic is guarded; closed (and the browser stopped) after."""
    traffic = Traffic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-background-networking"]
        )
        try:
            context: BrowserContext = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.route("**/*", traffic.guard)
            context.on("weberror", lambda error: traffic.console_errors.append(str(error.error)))
            page = context.new_page()
            page.on("console", traffic.on_console)
            page.on("websocket", lambda ws: traffic.refused.append(ws.url))
            yield page, traffic
            context.close()
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS_DIR / name
    page.screenshot(path=str(path), full_page=True)
    # Shown with pytest -rP (or -s): where the picture of the run is.
    print(f"screenshot: {path}")
    return path
