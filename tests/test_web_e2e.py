"""The page in a real headless Chromium (Debian's package), driven by Playwright: upload a
photo, wait for the result, move the split slider, read the figures, download the file."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a sandbox with no network and no display (see the README's test notes).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def live_server():
    from colorquant.web import WebSettings

    with serving(WebSettings()) as address:
        yield address


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), (
        "Debian's chromium is needed for this test: scripts/test installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


def test_page_compresses_compares_and_downloads(live_server, browser, tmp_path, astronaut):
    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page.goto(live_server + "/")
    assert page.title().startswith("colorquant")

    page.set_input_files("#file", str(photo))
    page.wait_for_function("() => document.getElementById('colors-out').textContent === '200'", timeout=60_000)
    assert page.inner_text("#budget") == "none"

    # fit under 40 KB: the bytes shown against the budget, within it
    page.check('input[name="mode"][value="size"]')
    page.fill("#max-size", "40KB")
    page.dispatch_event("#max-size", "change")
    page.wait_for_function("() => document.getElementById('budget').textContent.includes('of 39.1 KiB')",
                           timeout=60_000)
    used, budget = page.inner_text("#budget").split(" of ")
    assert float(used.split()[0]) <= 39.1 and budget.startswith("39.1 KiB (")
    page.check('input[name="mode"][value="colors"]')

    # choose 8 colours with the slider; the page recompresses
    page.eval_on_selector("#colors", "el => { el.value = '8'; el.dispatchEvent(new Event('input'));"
                                     " el.dispatchEvent(new Event('change')); }")
    page.wait_for_function("() => document.getElementById('colors-out').textContent === '8'", timeout=60_000)
    assert page.inner_text("#colors-value") == "8"

    # drag the split line to a quarter of the width
    stage = page.locator("#stage").bounding_box()
    handle = page.locator("#handle").bounding_box()
    y = handle["y"] + handle["height"] / 2
    page.mouse.move(handle["x"] + handle["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(stage["x"] + stage["width"] * 0.25, y, steps=8)
    page.mouse.up()
    split = float(page.get_attribute("#handle", "aria-valuenow"))
    assert 20 <= split <= 30
    assert "inset(0px 0px 0px 2" in page.eval_on_selector("#clip", "el => getComputedStyle(el).clipPath")

    # the figures shown
    figures = {name: page.inner_text(f"#{name}") for name in
               ("bytes-in", "bytes-out", "ratio", "colors-out", "psnr", "ssim", "seconds")}
    assert figures["bytes-in"].endswith("KiB") and figures["bytes-out"].endswith("KiB")
    assert float(figures["bytes-out"].split()[0]) < float(figures["bytes-in"].split()[0])
    assert figures["ratio"].endswith("%") and float(figures["ratio"][:-1]) < 100
    assert figures["psnr"].endswith("dB") and 15 < float(figures["psnr"].split()[0]) < 40
    assert 0 < float(figures["ssim"]) < 1
    assert len(page.query_selector_all("#palette span")) == 8

    # download: a palette PNG with the chosen number of colours
    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename == "astronaut-kmeans-k8.png"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    image = Image.open(saved)
    assert image.mode == "P" and len(image.getcolors(256)) == 8
    assert saved.stat().st_size == int(float(figures["bytes-out"].split()[0]) * 1024 + 0.5) or \
        abs(saved.stat().st_size / 1024 - float(figures["bytes-out"].split()[0])) < 0.06

    # all three methods at once
    page.click("#compare")
    page.wait_for_function("() => document.querySelectorAll('#comparison-grid figure').length === 3",
                           timeout=120_000)
    captions = [c.inner_text() for c in page.query_selector_all("#comparison-grid figcaption")]
    assert [c.split(":")[0] for c in captions] == ["K-Means", "Mini-Batch", "GMM"]

    screenshot = tmp_path / "page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert Image.open(screenshot).size[0] >= 1400
    if os.environ.get("COLORQUANT_SCREENSHOT"):  # how docs/web.png is made
        shutil.copy(screenshot, os.environ["COLORQUANT_SCREENSHOT"])
    page.close()


def test_page_shows_server_errors(live_server, browser, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image at all")
    page = browser.new_page()
    page.goto(live_server + "/")
    page.set_input_files("#file", str(bad))
    page.wait_for_function("() => document.getElementById('status').classList.contains('error')", timeout=30_000)
    assert "not a supported image" in page.inner_text("#status")
    page.close()


def test_page_offers_a_registered_fourth_method(live_server, browser, tmp_path, coffee, fourth_method):
    photo = tmp_path / "coffee.png"
    Image.fromarray(coffee[:200, :300]).save(photo)
    page = browser.new_page()
    page.goto(live_server + "/")
    page.wait_for_function("() => document.querySelectorAll('#method option').length === 4")
    assert page.eval_on_selector_all("#method option", "els => els.map(e => e.textContent)") == [
        "K-Means", "Mini-Batch", "GMM", "Median cut"]
    page.select_option("#method", "mediancut")
    page.select_option("#method-options select[name=box]", "coverage")
    page.set_input_files("#file", str(photo))
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Done')", timeout=60_000)
    assert page.inner_text("#status") == "Done: coffee-mediancut-k200.png"
    page.close()


# --------------------------------------------------------------------------- many images, every screen


def watched_page(browser, **options):
    """A new page whose console errors and uncaught exceptions are collected in ``.problems``."""
    page = browser.new_page(**options)
    page.problems = []
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    return page


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.fixture
def five_files(tmp_path, astronaut, coffee):
    """Four photographs and one broken file, as a user's selection."""
    folder = tmp_path / "five"
    folder.mkdir()
    crops = [astronaut[:160, :200], astronaut[200:360, 100:340], coffee[:150, :220], coffee[200:380, 300:560]]
    paths = []
    for index, crop in enumerate(crops):
        paths.append(folder / f"photo{index}.png")
        Image.fromarray(crop.copy()).save(paths[-1])
    broken = folder / "broken.png"
    broken.write_bytes(paths[0].read_bytes()[:400])
    paths.insert(2, broken)
    return paths


def test_a_batch_of_five_with_one_broken_file_and_one_zip(live_server, browser, tmp_path, five_files):
    import zipfile

    page = watched_page(browser, viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.goto(live_server + "/")
    page.wait_for_function("() => document.getElementById('limits').textContent.includes('images')")
    page.set_input_files("#file", [str(path) for path in five_files])
    page.wait_for_function("() => document.querySelectorAll('#queue-list li.done, #queue-list li.failed').length === 5",
                           timeout=120_000)
    states = page.eval_on_selector_all("#queue-list li", "rows => rows.map(r => [r.className, r.innerText])")
    assert [state for state, _ in states] == ["done", "done", "failed", "done", "done"]
    assert "broken.png" in states[2][1] and "corrupt or truncated" in states[2][1]  # the server's reason
    summary = page.inner_text("#queue-summary")
    assert summary.startswith("4 done, 1 failed;") and "KiB →" in summary
    assert page.get_attribute("#queue-progress", "value") == "5"

    # each result opens in the slider view
    page.click("#item-3 button")
    page.wait_for_function("() => document.getElementById('result-name').textContent.includes('photo2.png')")
    assert page.inner_text("#colors-out") == "200"

    with page.expect_download() as download_info:
        page.click("#download-all")
    archive = tmp_path / "all.zip"
    download_info.value.save_as(archive)
    with zipfile.ZipFile(archive) as bundle:
        assert bundle.testzip() is None
        assert bundle.namelist() == [f"photo{i}-kmeans-k200.png" for i in range(4)]
        for name in bundle.namelist():
            with Image.open(io.BytesIO(bundle.read(name))) as image:
                assert image.mode == "P" and len(image.getcolors(256)) <= 200

    page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)
    if os.environ.get("COLORQUANT_BATCH_SCREENSHOT"):  # how docs/web-batch.png is made
        shutil.copy(tmp_path / "batch.png", os.environ["COLORQUANT_BATCH_SCREENSHOT"])
    # Chromium logs every 4xx response of fetch() as a console error: the broken file's 415,
    # shown in the queue, is the one expected; anything else is a fault of the page
    refused = "Failed to load resource: the server responded with a status of 415 (Unsupported Media Type)"
    assert page.problems == [refused]
    page.close()


def test_over_the_batch_limit_nothing_starts(browser, tmp_path, five_files):
    from colorquant.web import WebSettings

    with serving(WebSettings(batch_max_files=3)) as address:
        page = watched_page(browser)
        page.goto(address + "/")
        page.wait_for_function("() => document.getElementById('limits').textContent.startsWith('Up to 3 images')")
        page.set_input_files("#file", [str(path) for path in five_files])
        page.wait_for_function("() => document.getElementById('status').classList.contains('error')")
        assert page.inner_text("#status") == ("5 images chosen; this server takes at most 3 at once. "
                                              "Nothing was started.")
        assert page.is_hidden("#queue")
        assert page.problems == []
        page.close()


@pytest.mark.parametrize("width", [390, 360])
def test_phone_screen_has_no_sideways_scroll_and_the_slider_works_by_touch(width, live_server, browser, tmp_path,
                                                                           astronaut):
    photo = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(photo)
    context = browser.new_context(viewport={"width": width, "height": 844}, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.problems = []
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.goto(live_server + "/")
    page.wait_for_function("() => document.getElementById('limits').textContent.length > 0")
    assert no_sideways_scroll(page)
    controls = page.locator("#controls").bounding_box()
    assert controls["width"] <= width and page.locator("header").bounding_box()["height"] < 160
    page.set_input_files("#file", str(photo))
    page.wait_for_function("() => document.getElementById('colors-out').textContent === '200'", timeout=60_000)
    assert no_sideways_scroll(page)
    stage = page.locator("#stage").bounding_box()
    assert stage["x"] >= 0 and stage["x"] + stage["width"] <= width  # the image fits the screen
    page.locator("#stage").scroll_into_view_if_needed()
    stage = page.locator("#stage").bounding_box()
    page.touchscreen.tap(stage["x"] + stage["width"] * 0.8, stage["y"] + stage["height"] / 2)
    assert 75 <= float(page.get_attribute("#handle", "aria-valuenow")) <= 85

    page.set_input_files("#file", [str(photo), str(photo)])  # the queue on a phone
    page.wait_for_function("() => document.querySelectorAll('#queue-list li.done').length === 2", timeout=120_000)
    assert no_sideways_scroll(page)
    assert page.problems == []
    context.close()


def test_keyboard_only_upload_compress_and_download(live_server, browser, tmp_path, coffee):
    photo = tmp_path / "coffee.png"
    Image.fromarray(coffee[:200, :300].copy()).save(photo)
    page = watched_page(browser, viewport={"width": 1200, "height": 900}, accept_downloads=True)
    # Listen for file choosers before the page loads: Playwright asks Chromium to hand them over only
    # once a listener exists, and a chooser opened before that request lands is never reported.
    choosers = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    page.goto(live_server + "/")
    page.wait_for_function("() => document.getElementById('limits').textContent.length > 0")

    def tab_to(element_id: str, limit: int = 40) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == element_id:
                # the focus is visible: an outline drawn around it
                outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                within = page.evaluate("getComputedStyle(document.activeElement.closest('label') || document.activeElement).outlineStyle")
                assert "solid" in (outline, within), element_id
                return
        raise AssertionError(f"#{element_id} is not reachable with Tab")

    tab_to("file")
    page.keyboard.press("Space")
    for _ in range(300):  # up to 30 s; waiting lets Playwright deliver the event
        if choosers:
            break
        page.wait_for_timeout(100)
    assert len(choosers) == 1, "Space on the focused file field opened no file chooser"
    choosers[0].set_files(str(photo))
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Done')", timeout=60_000)

    tab_to("speed")
    page.keyboard.press("End")  # speed 11, and the page compresses again
    assert page.input_value("#speed") == "11"
    page.wait_for_function("() => !document.getElementById('run').disabled", timeout=60_000)
    tab_to("run")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Done')", timeout=60_000)

    tab_to("download")
    with page.expect_download() as download_info:
        page.keyboard.press("Enter")
    assert download_info.value.suggested_filename == "coffee-kmeans-k200.png"

    tab_to("handle")
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    assert page.get_attribute("#handle", "aria-valuenow") == "35"
    # every control has a name a screen reader reads
    unnamed = page.evaluate("""() => [...document.querySelectorAll('input, select, button, [role=slider]')]
        .filter(el => !el.closest('[hidden]') && !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                      && !el.getAttribute('aria-labelledby') && !el.textContent.trim())
        .map(el => el.id || el.outerHTML.slice(0, 60))""")
    assert unnamed == []
    assert page.problems == []
    page.close()


@contextlib.contextmanager
def serving(settings):
    import uvicorn

    from colorquant.web import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_an_animated_gif_plays_in_the_page_and_downloads_alone_and_in_the_zip(live_server, browser, tmp_path,
                                                                             astronaut, coffee):
    import sys
    import zipfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from animation_set import sprite_frames

    from colorquant.imageio import read_image

    frames = [Image.fromarray(frame) for frame in sprite_frames(astronaut, coffee, n_frames=6, size=(96, 64))]
    clip = tmp_path / "clip.gif"
    frames[0].save(clip, save_all=True, append_images=frames[1:], duration=70, loop=0)
    still = tmp_path / "still.png"
    Image.fromarray(coffee[:64, :96].copy()).save(still)

    page = watched_page(browser, viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.goto(live_server + "/")
    page.set_input_files("#file", str(clip))
    page.wait_for_function("() => document.getElementById('result-name').textContent.includes('clip-kmeans-k200.gif')",
                           timeout=60_000)
    # the result shown plays: the page's picture of it changes over time
    size = page.evaluate("async () => { const image = document.getElementById('compressed'); await image.decode();"
                         " return [image.naturalWidth, image.naturalHeight]; }")
    assert size == [96, 64]
    pictures = set()
    for _ in range(10):
        pictures.add(page.locator("#stage").screenshot())
        time.sleep(0.08)
    assert len(pictures) >= 3

    with page.expect_download() as download_info:
        page.click("#download")
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.name == "clip-kmeans-k200.gif" and read_image(saved).animation.n_frames == 6

    page.set_input_files("#file", [str(clip), str(still)])
    page.wait_for_function("() => document.querySelectorAll('#queue-list li.done').length === 2", timeout=120_000)
    with page.expect_download() as download_info:
        page.click("#download-all")
    archive = tmp_path / "all.zip"
    download_info.value.save_as(archive)
    with zipfile.ZipFile(archive) as bundle:
        assert bundle.namelist() == ["clip-kmeans-k200.gif", "still-kmeans-k200.png"]
        assert read_image(bundle.read("clip-kmeans-k200.gif")).animation.n_frames == 6
    assert page.problems == []
    page.close()
