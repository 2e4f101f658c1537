"""Drive the page in headless Chromium (Debian's, through Selenium): for the browser test and bench/app_latency.py.

The driver's path is given, so Selenium never tries to download one.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from typing import Iterator, NamedTuple, Optional, Sequence

from app.__main__ import page_env, streamlit_command
from app.settings import AppSettings
from config.local_http import free_port, stop_process, wait_until_healthy

RESULT_CSS = ".genre-top"
ERROR_CSS = "[data-testid='stAlertContentError']"


def missing_browser() -> Optional[str]:
    """None if Chromium and its driver are installed, else which Debian package is missing."""
    binaries = {"chromium": "chromium", "chromium-driver": "chromedriver"}  # Debian package: its binary
    return next((package for package, binary in binaries.items() if shutil.which(binary) is None), None)


@contextlib.contextmanager
def running_page(settings: AppSettings, log_path: str, timeout: float = 180.0) -> Iterator[str]:
    """`streamlit run app/page.py` on a free 127.0.0.1 port while the block runs; yields its URL."""
    port = free_port()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(log_path, "w") as log:
        process = subprocess.Popen(streamlit_command(port), env=page_env(settings), stdout=log,
                                   stderr=subprocess.STDOUT, cwd=root)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(f"{url}/_stcore/health", process, log_path, "the page", timeout=timeout)
            yield url
        finally:
            stop_process(process, grace_seconds=20)


def chrome(width: int = 1280, height: int = 1900, extra_flags: Sequence[str] = ()):
    """A headless Chromium session (root-safe flags, plus EXTRA_FLAGS); the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1", *extra_flags):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)


def open_page(driver, url: str, timeout: float = 120.0) -> None:
    """Load the page and wait until its file uploader is there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(url)
    WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[type='file']")))


class Upload(NamedTuple):
    headline_seconds: float  # upload -> the top genre (or an error) is on the page
    rendered_seconds: float  # upload -> every chart drawn and the spectrogram image loaded
    text: str  # the page's visible text


def upload_and_wait(driver, clip_path: str, timeout: float = 180.0) -> Upload:
    """Upload CLIP_PATH; wait for the result (or an error) with every chart and image drawn."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    started = time.perf_counter()
    seen: list[float] = []

    def rendered(d) -> bool:
        if d.find_elements(By.CSS_SELECTOR, ERROR_CSS):
            seen.append(time.perf_counter())
            return True
        if not d.find_elements(By.CSS_SELECTOR, RESULT_CSS):
            return False
        seen.append(time.perf_counter())
        charts = d.find_elements(By.CSS_SELECTOR, "[data-testid='stVegaLiteChart'] canvas, "
                                                  "[data-testid='stVegaLiteChart'] svg")
        images = d.find_elements(By.CSS_SELECTOR, "[data-testid='stImage'] img")
        return len(charts) >= 3 and bool(images) and all(
            d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i) for i in images)

    driver.find_element(By.CSS_SELECTOR, "input[type='file']").send_keys(os.path.abspath(clip_path))
    WebDriverWait(driver, timeout, poll_frequency=0.05).until(rendered)
    done = time.perf_counter()
    return Upload(seen[0] - started, done - started, driver.find_element(By.TAG_NAME, "body").text)


def player_state(driver, timeout: float = 60.0) -> tuple[float, Optional[int]]:
    """(duration in s, MediaError code or None) of the page's <audio> once it has loaded its metadata or failed
    (then NaN and a code: the player shows 0:00 / 0:00)."""
    from selenium.webdriver.support.ui import WebDriverWait
    script = ("const a = document.querySelector('audio');"
              "return a && (a.readyState >= 1 || a.error) ? [String(a.duration), a.error && a.error.code] : null;")
    duration, error = WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))
    return float(duration), error


def save_screenshot(driver, path: str, max_bytes: Optional[int] = None) -> str:
    """A PNG of the window; with MAX_BYTES, palette-quantised until it fits (for the README)."""
    driver.save_screenshot(path)
    if max_bytes is not None and os.path.getsize(path) > max_bytes:
        from PIL import Image
        for colors in (256, 128, 64):
            Image.open(path).convert("RGB").quantize(colors=colors).save(path, optimize=True)
            if os.path.getsize(path) <= max_bytes:
                break
    return path
