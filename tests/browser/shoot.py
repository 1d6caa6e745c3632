"""The README's screenshots of the playground: `python -m tests.browser.shoot --out docs/img`
(a fresh `easel serve` with its embedded defaults, Debian's chromium)."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tests.browser.test_playground import generate, paint
from tests.helpers import start_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        server = start_server(Path(tmp))
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000}, color_scheme="light")
            page.goto(f"{server.url}/")
            page.wait_for_selector("body[data-ready=true]")
            prompt = page.get_by_label("Prompt", exact=True)
            entries = page.get_by_role("list", name="History entries").locator("li")
            for i, text in enumerate(["a harbour at dawn, gouache", "a lighthouse at dusk, oil on canvas"]):
                prompt.fill(text)
                generate(page)
                entries.nth(i).wait_for()
            page.locator("#events-box summary").click()
            page.screenshot(path=out / "playground-generate.png")

            page.locator("figure.result").first.get_by_role("button", name="Edit this").click()
            prompt.fill("a red door in the middle")
            paint(page, page.get_by_role("img", name="Mask canvas"), (0.35, 0.35), (0.65, 0.35), (0.65, 0.65))
            generate(page)
            entries.nth(2).wait_for()
            page.get_by_role("img", name="Mask canvas").scroll_into_view_if_needed()
            page.screenshot(path=out / "playground-edit.png")

            page.get_by_role("form", name="Request").get_by_role("button", name="View code").click()
            page.get_by_role("dialog").get_by_role("tab", name="Python").click()
            page.screenshot(path=out / "playground-code.png")
        finally:
            browser.close()
            server.stop()
    for name in ["playground-generate.png", "playground-edit.png", "playground-code.png"]:
        print(out / name)


if __name__ == "__main__":
    main()
