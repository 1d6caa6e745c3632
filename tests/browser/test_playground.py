"""The playground in a real browser: streamed partials then the image, masked edits painted with
pointer events, OpenAI's messages, a history that survives a reload, "use this seed", the code
it shows run against the same server, and nothing asked of any other origin."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.browser.conftest import Playground, open_playground
from tests.helpers import ROOT, Server, decode, noisy_png, start_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.slow

#: The bytes behind an <img> (a blob: URL the page made), as base64.
BYTES_OF = """async (img) => {
  const blob = await (await fetch(img.src)).blob();
  return await new Promise((done) => {
    const reader = new FileReader();
    reader.onload = () => done(reader.result.split(",")[1]);
    reader.readAsDataURL(blob);
  });
}"""


def image_bytes(image: Locator) -> bytes:
    return base64.b64decode(image.evaluate(BYTES_OF))


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(decode(data).convert("RGB"), dtype=np.int16)


def generate(page: Page) -> Locator:
    """Press Generate and wait for the first result."""
    page.get_by_role("button", name="Generate", exact=True).click()
    result = page.get_by_role("img", name="Result 1", exact=True)
    result.wait_for()
    return result


def paint(page: Page, canvas: Locator, *stroke: tuple[float, float]) -> None:
    """A pointer stroke through `stroke`'s points, given as fractions of the canvas's box."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in stroke]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def start_edit(page: Page, tmp_path: Path, seed: int, prompt: str) -> bytes:
    """The Edit tab with a noisy 1024² photo.png uploaded and `prompt` written; the photo's bytes."""
    page.get_by_role("tab", name="Edit").click()
    data = noisy_png((1024, 1024), seed=seed)
    (tmp_path / "photo.png").write_bytes(data)
    page.get_by_label("Image", exact=True).set_input_files(str(tmp_path / "photo.png"))
    page.locator("#canvas:not(.empty)").wait_for()
    page.get_by_label("Prompt", exact=True).fill(prompt)
    return data


def test_a_stream_shows_partial_images_then_the_final_image(playground: Playground) -> None:
    page = playground.page
    page.get_by_label("Prompt", exact=True).fill("a lighthouse at dusk")
    assert page.get_by_label(
        "Stream", exact=True
    ).is_checked()  # streaming is the default where a model has it
    page.get_by_label("Partial images", exact=True).select_option("2")
    final = generate(page)
    page.locator("#events-box summary").click()  # the events as they came, under the results
    events = page.get_by_role("list", name="Stream events").locator("li").all_text_contents()
    assert [e.split()[-1] for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    partials = page.get_by_role("group", name="Partials received").get_by_role("img")
    assert partials.count() == 2
    done = image_bytes(final)
    assert decode(done).size == (1024, 1024)
    for i in range(2):  # real intermediate states, not copies of the final image
        assert pixels(image_bytes(partials.nth(i))).shape == pixels(done).shape
        assert not np.array_equal(pixels(image_bytes(partials.nth(i))), pixels(done))
    assert page.get_by_role("img", name="Preview").is_hidden()


def test_a_masked_edit_keeps_the_pixels_outside_the_painted_area(
    playground: Playground, tmp_path: Path
) -> None:
    page = playground.page
    original = start_edit(page, tmp_path, 3, "a red door")
    canvas = page.get_by_role("img", name="Mask canvas")
    size = page.locator("#brush-size-value")
    assert size.text_content() == "64"
    page.locator("body").press("]")
    page.locator("body").press("[")
    assert size.text_content() == "64"  # 64 x 1.25 = 80, then x 0.8
    page.get_by_role("button", name="Mask brush").click()
    paint(page, canvas, (0.1, 0.1), (0.3, 0.1), (0.3, 0.3), (0.1, 0.3))  # in [70, 340] of 1024
    paint(page, canvas, (0.7, 0.7), (0.9, 0.9))  # then taken back
    page.get_by_role("button", name="Undo").click()
    out = pixels(image_bytes(generate(page)))
    before = pixels(original)
    assert out.shape == before.shape
    assert np.array_equal(out[400:], before[400:])  # below the painted square: as uploaded
    assert np.array_equal(out[:, 400:], before[:, 400:])  # right of it, the undone stroke's place included
    assert not np.array_equal(out[120:290, 120:290], before[120:290, 120:290])  # painted: repainted


def test_the_eraser_and_invert_change_what_is_edited(playground: Playground, tmp_path: Path) -> None:
    page = playground.page
    original = start_edit(page, tmp_path, 4, "a window")
    page.get_by_label("Stream", exact=True).uncheck()
    canvas = page.get_by_role("img", name="Mask canvas")
    paint(page, canvas, (0.1, 0.5), (0.9, 0.5))  # a band across the middle
    page.get_by_role("button", name="Mask eraser").click()
    page.get_by_label("Brush size", exact=True).evaluate(
        "(range) => { range.value = 200; range.dispatchEvent(new Event('input')); }"
    )
    paint(page, canvas, (0.55, 0.5), (0.95, 0.5))  # its right half erased
    page.get_by_role("button", name="Invert mask").click()  # now: everything but the band's left half
    out = pixels(image_bytes(generate(page)))
    before = pixels(original)
    assert np.array_equal(out[505:520, 150:420], before[505:520, 150:420])  # the band kept: not edited
    assert not np.array_equal(out[:300, :300], before[:300, :300])  # elsewhere: edited
    assert not np.array_equal(out[505:520, 700:900], before[505:520, 700:900])  # the erased half too


def test_a_markup_edit_and_a_variation(playground: Playground, tmp_path: Path) -> None:
    page = playground.page
    original = start_edit(page, tmp_path, 5, "a kite where the line is")
    page.get_by_label("Markup", exact=True).check()
    assert page.get_by_role("button", name="Markup pen").is_visible()
    paint(page, page.get_by_role("img", name="Markup canvas"), (0.1, 0.8), (0.3, 0.8))
    out = pixels(image_bytes(generate(page)))
    before = pixels(original)
    assert np.array_equal(out[:600], before[:600])  # far from the stroke: as uploaded
    assert not np.array_equal(out[780:860, 120:300], before[780:860, 120:300])
    page.get_by_label("Model", exact=True).select_option("dall-e-2")
    page.get_by_label("Size", exact=True).select_option("256x256")
    page.get_by_role("button", name="Create variation").click()
    page.get_by_role("status").filter(has_text="1 image in").wait_for()
    assert decode(image_bytes(page.get_by_role("img", name="Result 1", exact=True))).size == (256, 256)
    entry = page.get_by_role("listitem").filter(has_text="variations of photo.png")
    assert entry.count() == 1


def options_of(page: Page, label: str) -> list[str]:
    return page.get_by_label(label, exact=True).locator("option").all_inner_texts()


def test_the_model_picker_offers_what_the_model_supports(playground: Playground) -> None:
    page = playground.page
    model = page.get_by_label("Model", exact=True)
    assert model.input_value() == "gpt-image-2.6-sunburst"  # the server's default comes first
    assert "custom" in options_of(page, "Size")
    assert page.get_by_label("Complexity", exact=True).is_visible()
    assert options_of(page, "Background")[1:] == ["transparent", "opaque", "auto"]
    assert options_of(page, "Format")[1:] == ["png", "jpeg", "webp", "gif", "svg"]
    page.get_by_label("Format", exact=True).select_option("gif")
    assert page.get_by_label("Frames", exact=True).is_visible()
    assert page.get_by_label("Stream", exact=True).is_disabled()  # GIFs are not streamed
    page.get_by_label("Format", exact=True).select_option("jpeg")
    assert page.get_by_label("Compression", exact=True).is_visible()
    model.select_option("dall-e-3")
    assert options_of(page, "Size") == ["default (1024x1024)", "1024x1024", "1792x1024", "1024x1792"]
    assert options_of(page, "Quality")[1:] == ["standard", "hd", "auto"]
    assert page.get_by_label("Style", exact=True).is_visible()
    assert page.get_by_label("Format", exact=True).is_hidden()
    assert page.get_by_label("Background", exact=True).is_hidden()
    assert page.get_by_label("Complexity", exact=True).is_hidden()
    model.select_option("gpt-image-1")
    assert "custom" not in options_of(page, "Size")  # no free sizes before the 2.x family
    assert "retired at OpenAI on 2026-10-23" in page.locator("#model-info").inner_text()
    page.get_by_role("tab", name="Edit").click()
    model.select_option("gpt-image-2.5-flare")
    assert page.get_by_label("Markup", exact=True).is_visible()
    assert page.get_by_label("Steps", exact=True).get_attribute("max") == "64"  # the extension's limit


def test_a_strict_model_is_offered_as_openai_documents_it(browser: Browser, strict_server: Server) -> None:
    with open_playground(browser, strict_server) as playground:
        page = playground.page
        model = page.get_by_label("Model", exact=True)
        model.select_option("gpt-image-1")
        assert "strict" in page.locator("#model-info").inner_text()
        assert page.get_by_label("Complexity", exact=True).is_hidden()  # 2.6 only
        formats = page.get_by_label("Format", exact=True).locator("option").all_inner_texts()
        assert formats[1:] == ["png", "jpeg", "webp"]  # no GIF or SVG before the 2.x family
        page.get_by_role("tab", name="Edit").click()
        assert page.get_by_label("Markup", exact=True).is_hidden()  # markup is 2.5 and 2.6 only
        assert page.get_by_role("button", name="Create variation").is_hidden()  # DALL·E 2 only
        model.select_option("dall-e-2")
        assert page.get_by_role("button", name="Create variation").is_visible()


def test_every_control_has_an_accessible_name(playground: Playground) -> None:
    page = playground.page
    page.get_by_role("tab", name="Edit").click()
    for label in ["Prompt", "Model", "Size", "Quality", "Format", "Images", "Seed", "Image", "Brush size",
                  "API key", "Partial images", "Stream"]:  # fmt: skip
        assert page.get_by_label(label, exact=True).count() == 1, label
    for name in ["Generate", "Mask brush", "Mask eraser", "Undo", "Clear mask", "Invert mask", "View code",
                 "Create variation"]:  # fmt: skip
        assert page.get_by_role("button", name=name, exact=True).count() == 1, name
    nameless = page.evaluate("""() => [...document.querySelectorAll("input, select, textarea, button")]
        .filter((c) => !(c.labels && c.labels.length))
        .filter((c) => !c.getAttribute("aria-label") && !c.textContent.trim())
        .map((c) => c.outerHTML)""")
    assert nameless == []


def test_a_bad_request_shows_openais_message(playground: Playground) -> None:
    page = playground.page
    page.get_by_label("Prompt", exact=True).fill("a wide field")
    page.get_by_label("Size", exact=True).select_option("custom")
    page.get_by_label("Width", exact=True).fill("1000")
    page.get_by_label("Height", exact=True).fill("1000")
    page.get_by_role("button", name="Generate", exact=True).click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert alert.locator(".message").inner_text() == (
        "Invalid size '1000x1000'. Width and height must both be divisible by 16."
    )
    assert alert.locator(".meta").inner_text() == (
        "HTTP 400 · image_generation_user_error · invalid_value · param: size"
    )
    assert page.get_by_role("list", name="History entries").locator("li").count() == 0


def test_history_survives_a_reload_and_use_this_seed_reproduces_the_image(playground: Playground) -> None:
    page = playground.page
    page.get_by_label("Prompt", exact=True).fill("two pears")
    page.get_by_label("Stream", exact=True).uncheck()
    first = image_bytes(generate(page))
    seed = re.search(r"seed (\d+)", page.locator("figure.result figcaption").inner_text())
    assert seed is not None
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    entries = page.get_by_role("list", name="History entries").locator("li")
    assert entries.count() == 1
    assert f"seed {seed[1]}" in entries.first.inner_text()
    entries.first.get_by_role("button", name="Use this seed").click()
    assert page.get_by_label("Seed", exact=True).input_value() == seed[1]
    assert page.get_by_label("Prompt", exact=True).input_value() == "two pears"
    again = image_bytes(generate(page))
    assert again == first  # the same seed, prompt and parameters: the same bytes
    entries.nth(1).wait_for()  # the page's policy allows no eval, so no wait_for_function
    with page.expect_download() as download:
        entries.first.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == "image.png"
    assert Path(download.value.path()).read_bytes() == first
    for entry in entries.all():
        entry.get_by_label("Compare", exact=True).check()
    page.get_by_role("button", name="Compare selected").click()
    dialog = page.get_by_role("dialog", name="Compare")
    dialog.get_by_role("img", name="Compared B").wait_for()
    assert dialog.get_by_role("img").count() == 2
    assert image_bytes(dialog.get_by_role("img", name="Compared A")) == first
    differs = dialog.locator("tr.differs th").all_inner_texts()
    assert differs == ["seed"]  # the second request is the first one with its seed


def run_code(code: str, language: str, folder: Path, server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    if language == "python":
        (folder / "snippet.py").write_text(code)
        command = [sys.executable, "snippet.py"]
    elif language == "node":
        (folder / "snippet.mjs").write_text(code)
        modules = folder / "node_modules"
        if not modules.exists():
            modules.symlink_to(ROOT / "tests" / "e2e" / "node" / "node_modules")
        command = ["node", "snippet.mjs"]
    else:
        command = ["bash", "-euo", "pipefail", "-c", code]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{language}:\n{code}\n{done.stderr}\n{server.log.read_text()[-2000:]}"


def code_of(page: Page, language: str) -> str:
    dialog = page.get_by_role("dialog", name="The request, as code")
    dialog.get_by_role("tab", name=language).click()
    return dialog.get_by_label("Code", exact=True).inner_text()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_view_code_runs_and_gives_the_same_image(
    playground: Playground, tmp_path: Path, stream: bool
) -> None:
    page = playground.page
    page.get_by_label("Prompt", exact=True).fill("a teapot, 'quoted' and \"double-quoted\"")
    page.get_by_label("Format", exact=True).select_option("webp")
    page.get_by_label("Seed", exact=True).fill("1234")
    page.get_by_label("Images", exact=True).fill("2")
    if not stream:
        page.get_by_label("Stream", exact=True).uncheck()
    generate(page)
    page.get_by_role("img", name="Result 2", exact=True).wait_for()
    shown = [image_bytes(page.get_by_role("img", name=f"Result {i}", exact=True)) for i in (1, 2)]
    page.get_by_role("list", name="History entries").locator("li").first.get_by_role(
        "button", name="View code"
    ).click()
    for language in ["Python", "Node", "curl"]:
        folder = tmp_path / language
        folder.mkdir()
        code = code_of(page, language)
        assert ("stream" in code) is stream
        run_code(code, language.lower(), folder, playground.server)
        assert [(folder / f"image-{i}.webp").read_bytes() for i in (1, 2)] == shown, language


def test_view_code_of_a_masked_edit_sends_the_same_files(playground: Playground, tmp_path: Path) -> None:
    page = playground.page
    start_edit(page, tmp_path, 6, "a cat on the sill")
    page.get_by_label("Seed", exact=True).fill("99")
    page.get_by_label("Stream", exact=True).uncheck()
    paint(page, page.get_by_role("img", name="Mask canvas"), (0.2, 0.2), (0.6, 0.6))
    shown = image_bytes(generate(page))
    page.get_by_role("form", name="Request").get_by_role("button", name="View code").click()
    dialog = page.get_by_role("dialog", name="The request, as code")
    folder = tmp_path / "code"
    folder.mkdir()
    for name in ["photo.png", "mask.png"]:  # the files the code sends, offered beside it
        with page.expect_download() as download:
            dialog.get_by_role("link", name=name).click()
        download.value.save_as(folder / name)
    mask = Image.open(io.BytesIO((folder / "mask.png").read_bytes()))
    assert mask.size == (1024, 1024)
    alpha = np.asarray(mask.getchannel("A"))
    assert set(np.unique(alpha)) == {0, 255}  # OpenAI's meaning: painted = alpha 0, the rest opaque
    assert alpha[400, 400] == 0
    assert alpha[900, 100] == 255
    for language in ["Python", "curl"]:
        run_code(code_of(page, language), language.lower(), folder, playground.server)
        assert (folder / "edited.png").read_bytes() == shown, language
        (folder / "edited.png").unlink()


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Server]]:
    """`easel serve` with a configuration of its own, started once for the module."""
    started: dict[str, Server] = {}

    def serve(config: str) -> Server:
        if config not in started:
            started[config] = start_server(tmp_path_factory.mktemp("configured"), config)
        return started[config]

    yield serve
    for server in started.values():
        server.stop()


def test_a_rate_limit_shows_its_message_and_the_retry_countdown(
    browser: Browser, configured: Callable[[str], Server]
) -> None:
    with open_playground(browser, configured("default_rpm = 1\n")) as playground:
        page = playground.page
        page.get_by_label("Prompt", exact=True).fill("one a minute")
        page.get_by_label("Stream", exact=True).uncheck()
        generate(page)
        page.get_by_role("button", name="Generate", exact=True).click()
        alert = page.get_by_role("alert")
        alert.locator(".retry").wait_for()
        assert alert.locator(".message").inner_text().startswith("Rate limit reached")
        assert "HTTP 429" in alert.locator(".meta").inner_text()
        assert re.fullmatch(r"Retry in \d+ s", alert.locator(".retry").inner_text())
        assert page.get_by_role("button", name="Generate", exact=True).is_disabled()


def test_a_full_queue_shows_its_503_and_the_retry_countdown(
    browser: Browser, configured: Callable[[str], Server]
) -> None:
    server = configured('[[models]]\nid = "gpt-image-2.6-sunburst"\nmax_queue = 0\n')  # every request: 503
    refused = httpx.post(f"{server.url}/v1/images/generations", json={"prompt": "x"}, timeout=60)
    assert refused.status_code == 503
    with open_playground(browser, server) as playground:
        page = playground.page
        page.get_by_label("Prompt", exact=True).fill("no room")
        page.get_by_role("button", name="Generate", exact=True).click()
        alert = page.get_by_role("alert")
        alert.locator(".retry").wait_for()
        assert alert.locator(".message").inner_text() == refused.json()["error"]["message"]  # as it is
        assert alert.locator(".meta").inner_text().startswith("HTTP 503")
        assert re.fullmatch(r"Retry in \d+ s", alert.locator(".retry").inner_text())
        assert page.get_by_role("button", name="Generate", exact=True).is_disabled()


def test_the_page_and_the_api_docs_ask_nothing_of_any_other_origin(playground: Playground) -> None:
    page = playground.page
    response = page.request.get(f"{playground.server.url}/playground")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    page.get_by_label("Prompt", exact=True).fill("a quiet harbour")
    generate(page)
    page.get_by_role("link", name="API docs").click()
    page.locator(".opblock").first.wait_for()  # Swagger UI drew the operations, from easel's files
    assert page.locator(".opblock-summary-path").filter(has_text="/v1/images/generations").count() >= 1
    assert any(url.endswith("/openapi.json") for url in playground.seen.requests)


def test_a_key_typed_once_is_kept_for_the_tab_and_sent_only_to_easel(
    browser: Browser, configured: Callable[[str], Server], tmp_path: Path
) -> None:
    with open_playground(browser, configured('api_keys = ["sk-playground"]\n')) as playground:
        page = playground.page
        alert = page.get_by_role("alert")
        alert.wait_for()
        assert "HTTP 401" in alert.locator(".meta").inner_text()  # /v1/models refused, as OpenAI says
        sent: list[str | None] = []
        page.on("request", lambda r: sent.append(r.headers.get("authorization")) if "/v1/" in r.url else None)
        page.get_by_label("API key", exact=True).fill("sk-playground")
        page.get_by_label("API key", exact=True).press("Enter")
        page.get_by_label("Model", exact=True).locator("option").first.wait_for(state="attached")
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        assert page.get_by_label("API key", exact=True).input_value() == "sk-playground"  # kept
        assert page.evaluate("() => Object.keys(localStorage)") == []  # only in this tab's session
        page.get_by_label("Prompt", exact=True).fill("a locked door")
        page.get_by_label("Seed", exact=True).fill("5")
        page.get_by_label("Stream", exact=True).uncheck()
        shown = image_bytes(generate(page))
        assert sent
        assert set(sent) == {"Bearer sk-playground"}
        page.get_by_role("form", name="Request").get_by_role("button", name="View code").click()
        code = code_of(page, "Python")
        assert "sk-playground" not in code  # the snippet reads $OPENAI_API_KEY instead
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "OPENAI_API_KEY": "sk-playground"}, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "image.png").read_bytes() == shown


#: Drop a PNG (base64) on the canvas, as a file dragged from the desktop would be.
DROP = """([element, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const files = new DataTransfer();
  files.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
  element.dispatchEvent(new DragEvent("drop", { dataTransfer: files, bubbles: true, cancelable: true }));
}"""


def sent_files(page: Page, tmp_path: Path) -> dict[str, bytes]:
    """The files the form's request would send, read from the code view's download links."""
    page.get_by_role("form", name="Request").get_by_role("button", name="View code").click()
    dialog = page.get_by_role("dialog", name="The request, as code")
    dialog.wait_for()  # the mask is exported first
    found = {}
    for link in dialog.locator("#code-files a").all():
        with page.expect_download() as download:
            link.click()
        download.value.save_as(tmp_path / download.value.suggested_filename)
        found[download.value.suggested_filename] = (tmp_path / download.value.suggested_filename).read_bytes()
    dialog.get_by_role("button", name="Close").click()
    return found


def test_a_result_or_a_dropped_file_goes_to_the_canvas(playground: Playground, tmp_path: Path) -> None:
    page = playground.page
    page.get_by_role("tab", name="Edit").click()
    page.get_by_role("form", name="Request").get_by_role("button", name="View code").click()
    assert page.get_by_role("alert").inner_text() == "Choose or drop an image to edit first."  # no code yet
    page.get_by_role("tab", name="Generate").click()
    page.get_by_label("Prompt", exact=True).fill("a boat")
    result = image_bytes(generate(page))
    page.locator("figure.result").get_by_role("button", name="Edit this").click()
    assert page.get_by_role("tab", name="Edit").get_attribute("aria-selected") == "true"
    for folder in "abc":
        (tmp_path / folder).mkdir()
    assert sent_files(page, tmp_path / "a") == {"image.png": result}  # the result itself, byte for byte
    dropped = noisy_png((512, 512), seed=8)
    page.evaluate(DROP, [page.locator("#canvas").element_handle(), base64.b64encode(dropped).decode()])
    page.wait_for_selector("#image-layer[width='512']", state="attached")
    paint(page, page.get_by_role("img", name="Mask canvas"), (0.2, 0.2), (0.4, 0.4))
    assert set(sent_files(page, tmp_path / "b")) == {"dropped.png", "mask.png"}
    page.get_by_role("button", name="Clear mask").click()
    assert sent_files(page, tmp_path / "c") == {"dropped.png": dropped}  # cleared: no mask is sent


def test_recall_puts_back_the_image_and_the_painted_mask(playground: Playground, tmp_path: Path) -> None:
    page = playground.page
    photo = start_edit(page, tmp_path, 9, "a lamp")
    page.get_by_label("Stream", exact=True).uncheck()
    paint(page, page.get_by_role("img", name="Mask canvas"), (0.3, 0.3), (0.7, 0.3))
    (tmp_path / "before").mkdir()
    before = sent_files(page, tmp_path / "before")
    generate(page)
    page.get_by_role("list", name="History entries").locator("li").first.wait_for()
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    page.get_by_role("list", name="History entries").locator("li").first.get_by_role(
        "button", name="Recall"
    ).click()
    page.locator("#canvas:not(.empty)").wait_for()
    assert page.get_by_label("Prompt", exact=True).input_value() == "a lamp"
    (tmp_path / "after").mkdir()
    after = sent_files(page, tmp_path / "after")
    assert set(after) == {"photo.png", "mask.png"}
    assert after["photo.png"] == photo
    alpha = [
        np.asarray(Image.open(io.BytesIO(files["mask.png"])).getchannel("A")) for files in (before, after)
    ]
    assert np.array_equal(alpha[0], alpha[1])  # the same painted pixels
