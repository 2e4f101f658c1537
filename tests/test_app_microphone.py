"""The page's microphone path in a real browser: headless Chromium with a fake capture device that plays a clip
(``--use-fake-device-for-media-stream --use-fake-ui-for-media-stream --use-file-for-fake-audio-capture=FILE``),
recorded by the page's own recorder (Streamlit's ``st.audio_input``: the browser's getUserMedia and the
WaveSurfer record plugin, encoded to WAV in the page), sent to the served model and answered on the page.

The model server and the page are tests/served_page.py's fixtures: `make serve`'s script on the TF
Serving test double (TF Serving's binary cannot run here) with the stand-in model of tests/testkit/serving.py, whose
genre follows a segment's loudness. Skipped only where Debian's chromium / chromium-driver are not installed
(scripts/install_browser.sh, run by `make test`).
"""
from __future__ import annotations

import re

import pytest
import soundfile as sf

from app import browser
from tests.testkit.serving import stand_in_clip
from tests.served_page import page_url, served  # noqa: F401  (fixtures: the model server, the page)

pytestmark = pytest.mark.skipif(browser.missing_browser() is not None,
                                reason=f"Debian package {browser.missing_browser()} is not installed "
                                       "(scripts/install_browser.sh installs chromium and chromium-driver)")

GENRE = "metal"  # the stand-in's answer for the played clip's level
CAPTURE_RATE = 48000  # the fake device's file; the page's recorder resamples to its own rate (16 kHz)
RECORD_SECONDS = 7  # two whole 3-s segments, read off the recorder's own clock, not a sleep
TIMEOUT = 180.0


@pytest.fixture
def microphone_driver(tmp_path):
    """Chromium whose only microphone plays a clip the stand-in answers as GENRE, granted without a prompt."""
    played = tmp_path / "played.wav"
    sf.write(played, stand_in_clip(GENRE, seconds=30.0, sample_rate=CAPTURE_RATE), CAPTURE_RATE, subtype="PCM_16")
    session = browser.chrome(extra_flags=("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                                          f"--use-file-for-fake-audio-capture={played}"))
    yield session
    session.quit()


def seconds_on_clock(driver) -> int:
    """The recorder's time code (``mm:ss``) as seconds; 0 while it is not shown."""
    from selenium.webdriver.common.by import By

    codes = driver.find_elements(By.CSS_SELECTOR, "[data-testid='stAudioInputWaveformTimeCode']")
    match = re.search(r"(\d+):(\d+)", codes[0].text) if codes else None
    return int(match.group(1)) * 60 + int(match.group(2)) if match else 0


def test_a_recording_from_the_microphone_is_answered_by_the_served_model(page_url, microphone_driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = microphone_driver
    browser.open_page(driver, page_url)
    driver.find_element(By.XPATH, "//*[@role='tab'][contains(., 'Record from the microphone')]").click()
    record = WebDriverWait(driver, TIMEOUT).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid='stAudioInput'] button[aria-label='Record']")))
    record.click()
    WebDriverWait(driver, TIMEOUT, poll_frequency=0.1).until(lambda d: seconds_on_clock(d) >= RECORD_SECONDS)
    driver.find_element(By.CSS_SELECTOR, "[data-testid='stAudioInput'] button[aria-label='Stop recording']").click()
    WebDriverWait(driver, TIMEOUT).until(lambda d: d.find_elements(By.CSS_SELECTOR, browser.RESULT_CSS)
                                         or d.find_elements(By.CSS_SELECTOR, browser.ERROR_CSS))
    WebDriverWait(driver, TIMEOUT).until(lambda d: len(d.find_elements(  # bars, timeline, waveform, spectrogram
        By.CSS_SELECTOR, "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg")) >= 3 and any(
        d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image)
        for image in d.find_elements(By.CSS_SELECTOR, "[data-testid='stImage'] img")))
    shot = browser.save_screenshot(driver, str(tmp_path / "microphone.png"))
    text = driver.find_element(By.TAG_NAME, "body").text
    assert not driver.find_elements(By.CSS_SELECTOR, browser.ERROR_CSS), text
    assert driver.find_element(By.CSS_SELECTOR, browser.RESULT_CSS).text == GENRE.capitalize(), shot
    segments = re.search(r"(\d+) of (\d+) segments voted " + GENRE, text)
    assert segments and int(segments.group(2)) >= 2 and segments.group(1) == segments.group(2), text
    assert "Answered by model 'genre' version 3" in text
