"""The page in a real browser: headless Chromium opens it, uploads a clip, reads the answer.

`streamlit run app/page.py` on a free 127.0.0.1 port, pointed at the model server that
`make serve` starts (scripts/serve.py; without Docker, the TF Serving test double, since TF
Serving's binary cannot run here) serving the stand-in model of tests/testkit/serving.py.
Skipped only where Debian's chromium / chromium-driver are not installed
(scripts/install_browser.sh, run by `make test`).
"""
from __future__ import annotations

import pytest
import soundfile as sf

from app import browser
from tests.testkit.serving import stand_in_clip
from tests.served_page import page_url, served  # noqa: F401  (fixtures: the model server, the page)

pytestmark = pytest.mark.skipif(browser.missing_browser() is not None,
                                reason=f"Debian package {browser.missing_browser()} is not installed "
                                       "(scripts/install_browser.sh installs chromium and chromium-driver)")


@pytest.fixture
def driver():
    session = browser.chrome()
    yield session
    session.quit()


def test_upload_in_the_browser_shows_the_genre(page_url, driver, tmp_path):
    clip = tmp_path / "reggae_clip.flac"
    sf.write(clip, stand_in_clip("reggae", seconds=9.0), 22050)
    browser.open_page(driver, page_url)
    text = browser.upload_and_wait(driver, str(clip)).text
    shot = browser.save_screenshot(driver, str(tmp_path / "page.png"))
    assert "What genre is this?" in text
    assert driver.find_element("css selector", browser.RESULT_CSS).text == "Reggae"  # the headline as drawn
    assert "3 of 3 segments voted reggae" in text
    assert "Answered by model 'genre' version 3" in text
    assert (tmp_path / "page.png").stat().st_size > 20_000, shot  # a drawn page, not a blank window


def test_undecodable_file_shows_its_message_in_the_browser(page_url, driver, tmp_path):
    clip = tmp_path / "broken.ogg"
    clip.write_bytes(b"OggS but not really" * 50)
    browser.open_page(driver, page_url)
    text = browser.upload_and_wait(driver, str(clip)).text
    assert "broken.ogg could not be decoded as audio" in text
    assert "Traceback" not in text
