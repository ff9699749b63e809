"""A real browser (Debian's headless Chromium, driven by Playwright) uses the web page end to end."""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from dfdetect.runtime.torch_backend import TorchPredictor
from dfdetect.serving.app import create_app
from tests.conftest import face_frames, write_video

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(trained_run: Path) -> Iterator[str]:
    yield from serve(create_app(TorchPredictor.from_checkpoint(trained_run, device="cpu")))


def serve(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn on a free loopback port until the test module ends."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian package `chromium`; .ci/run installs it)")
def test_page_shows_verdict_bar_and_heatmap(server: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (test extra)")
    image = tmp_path / "face.jpg"
    Image.effect_noise((80, 60), 40).convert("RGB").save(image)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(server + "/")
            page.wait_for_function("document.getElementById('model').textContent.includes('own_cnn')")
            assert "fake when p_fake > 0.500 (threshold policy 0.5)" in page.text_content("#model")
            page.set_input_files("#file", str(image))
            page.wait_for_function("/^(real|fake), \\d+%$/.test(document.getElementById('verdict').textContent)")
            verdict = page.text_content("#verdict")
            width = page.eval_on_selector("#bar-real", "e => parseFloat(e.style.width)")
            assert 0 <= width <= 100
            page.wait_for_function("document.getElementById('heatmap').naturalWidth > 0", timeout=30_000)
            size = page.eval_on_selector("#heatmap", "e => [e.naturalWidth, e.naturalHeight]")
            assert size == [80, 60]
            assert page.text_content("#error") == ""
            assert (page.text_content("#caution") or "").startswith("Caution: noisy input")  # a noise image
            shot = page.screenshot(full_page=True)
            assert Image.open(io.BytesIO(shot)).size[0] > 0
            (tmp_path / "page.png").write_bytes(shot)
            assert verdict is not None and verdict.split(",")[0] in {"real", "fake"}
        finally:
            browser.close()


@pytest.fixture(scope="module")
def video_server(trained_run: Path) -> Iterator[str]:
    yield from serve(create_app(TorchPredictor.from_checkpoint(trained_run, device="cpu"), max_video_bytes=5_000_000))


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian package `chromium`; .ci/run installs it)")
def test_page_scores_a_video_and_plots_it_over_time(video_server: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (test extra)")
    pytest.importorskip("av")
    clip = write_video(tmp_path / "clip.mp4", face_frames(10)[0])
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.goto(video_server + "/")
            page.set_input_files("#file", str(clip))
            page.wait_for_function("/^(real|fake), \\d+%$/.test(document.getElementById('verdict').textContent)")
            points = page.eval_on_selector("#curve", "e => e.getAttribute('points').trim().split(' ').length")
            assert points >= 5  # one point per frame with a face
            assert "frames with a face" in (page.text_content("#frames-text") or "")
            assert page.eval_on_selector("#heatmap-figure", "e => e.style.display") == "none"
            assert page.text_content("#error") == ""
        finally:
            browser.close()
