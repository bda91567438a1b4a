"""The page in a real headless Chromium (Debian's package), driven by Playwright: upload a
photo, wait for the result, move the split slider, read the figures, download the file."""

from __future__ import annotations

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
    import uvicorn

    from colorquant.web import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


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
    page.wait_for_function("document.getElementById('colors-out').textContent === '16'", timeout=60_000)

    # choose 8 colours with the slider; the page recompresses
    page.eval_on_selector("#colors", "el => { el.value = '8'; el.dispatchEvent(new Event('input'));"
                                     " el.dispatchEvent(new Event('change')); }")
    page.wait_for_function("document.getElementById('colors-out').textContent === '8'", timeout=60_000)
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
    page.wait_for_function("document.querySelectorAll('#comparison-grid figure').length === 3",
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
    page.wait_for_function("document.getElementById('status').classList.contains('error')", timeout=30_000)
    assert "not a supported image" in page.inner_text("#status")
    page.close()


def test_page_offers_a_registered_fourth_method(live_server, browser, tmp_path, coffee, fourth_method):
    photo = tmp_path / "coffee.png"
    Image.fromarray(coffee[:200, :300]).save(photo)
    page = browser.new_page()
    page.goto(live_server + "/")
    page.wait_for_function("document.querySelectorAll('#method option').length === 4")
    assert page.eval_on_selector_all("#method option", "els => els.map(e => e.textContent)") == [
        "K-Means", "Mini-Batch", "GMM", "Median cut"]
    page.select_option("#method", "mediancut")
    page.select_option("#method-options select[name=box]", "coverage")
    page.set_input_files("#file", str(photo))
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Done')", timeout=60_000)
    assert page.inner_text("#status") == "Done: coffee-mediancut-k16.png"
    page.close()
