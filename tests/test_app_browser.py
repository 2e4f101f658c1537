"""The page in a real browser: headless Chromium opens it, uploads clips, reads the answer and the player.

`streamlit run app/page.py` on a free 127.0.0.1 port, pointed at the model server that
`make serve` starts (scripts/serve.py; without Docker, the TF Serving test double, since TF
Serving's binary cannot run here) serving the stand-in model of tests/testkit/serving.py.
Skipped only where Debian's chromium / chromium-driver are not installed
(scripts/install_browser.sh, run by `make test`).
"""
from __future__ import annotations

import pytest

from app import browser
from tests.testkit.library_files import encode
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


# A FLAC browsers play as it is; ALAC, WMA and AIFF they do not: the page plays its decoded clip.
FORMATS = ["flac", "alac", "wma", "aiff"]


def test_each_upload_shows_the_genre_and_plays_back_in_the_browser(page_url, driver, tmp_path):
    seconds = 10.0  # whole 3-s segments: 3, also of the WMA, which decodes some 40 ms short
    for fmt in FORMATS:
        clip = encode(tmp_path / f"reggae_{fmt}", stand_in_clip("reggae", seconds=seconds), 22050, fmt)
        browser.open_page(driver, page_url)
        text = browser.upload_and_wait(driver, str(clip)).text
        assert "What genre is this?" in text
        assert driver.find_element("css selector", browser.RESULT_CSS).text == "Reggae", (clip.name, text)
        assert "3 of 3 segments voted reggae" in text, clip.name
        assert "Answered by model 'genre' version 3" in text
        duration, error = browser.player_state(driver)
        assert error is None and abs(duration - seconds) < 1.0, (clip.name, duration, error)
    shot = browser.save_screenshot(driver, str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 20_000, shot  # a drawn page, not a blank window


def test_undecodable_file_shows_its_message_in_the_browser(page_url, driver, tmp_path):
    clip = tmp_path / "broken.ogg"
    clip.write_bytes(b"OggS but not really" * 50)
    browser.open_page(driver, page_url)
    text = browser.upload_and_wait(driver, str(clip)).text
    assert "broken.ogg could not be decoded as audio" in text
    assert "Traceback" not in text
