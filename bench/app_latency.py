"""The page in a browser: time from upload to rendered result for a 30-s clip, and for the same clip as ALAC.

    python -m bench.app_latency [--model-dir DIR] [--mlflow-uri URI] [--clip FILE] [--uploads 5]
                                [--screenshot docs/app.png]                (make bench-app)

Headless Chromium opens the Streamlit page against the TF Serving test double serving DIR's newest version
(so run `make run` first), each upload on a fresh page, the clip and its ALAC .m4a copy in turn (browsers do not
play ALAC: the page plays its decoded clip, written as WAV). The same clip through serving/client.py alone shows
the share the model server and protocol take. The clip: FILE, else a real GTZAN clip beside the repository, else a
synthetic 30-s track.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from app import browser
from app.settings import AppSettings
from bench.pushed_models import newest_version
from bench.report import ROOT, add_no_write, publish
from bench.serving import interleaved_calls
from config.settings import PipelineConfig
from serving.audio_file import read_audio
from synthetic.formats import encode

SHARED_CLIP = ROOT.parent / "shared" / "data" / "gtzan" / "audio" / "jazz" / "jazz.00000.flac"
README_SHOT_BYTES = 290_000


def pick_clip(arg: str | None, tmp: str) -> tuple[str, str]:
    """(path, description) of the 30-s clip to upload."""
    if arg:
        return arg, os.path.basename(arg)
    if SHARED_CLIP.exists():
        return str(SHARED_CLIP), f"real GTZAN clip {SHARED_CLIP.name}"
    import soundfile as sf

    from synthetic.generator import render_track
    path = os.path.join(tmp, "synthetic_jazz.wav")
    sf.write(path, render_track("jazz", 0, 30.0, 22050), 22050)
    return path, "synthetic 30-s jazz track (synthetic/generator.py)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.app_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help="TF Serving layout base dir (default: the push destination)")
    parser.add_argument("--clip", help="audio file to upload (default: a real GTZAN clip, else synthetic)")
    parser.add_argument("--clip-note", default="", help="what the --clip file is, for BENCHMARKS.md")
    parser.add_argument("--uploads", type=int, default=5, help="timed uploads (default: %(default)s)")
    parser.add_argument("--screenshot", help="where to save the page after the last upload (default: docs/app.png; "
                        "none with --no-write)")
    parser.add_argument("--mlflow-uri", default=PipelineConfig().mlflow_tracking_uri,
                        help="tracking store the page reads the model card from (default: the run's own)")
    add_no_write(parser)
    args = parser.parse_args(argv)
    if missing := browser.missing_browser():
        sys.exit(f"Debian package {missing} is not installed: run scripts/install_browser.sh (make bench-app does).")

    from serving.client import GenreClient
    from serving.stand_in_server import start_server

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        clip, clip_text = pick_clip(args.clip, tmp)
        clip_text += f" ({args.clip_note})" if args.clip_note else ""
        base = args.model_dir or PipelineConfig().serving_dir  # newest_version exits naming the fix when none is pushed
        model_text = (f"the pushed model in {os.path.basename(os.path.dirname(base))}/{os.path.basename(base)}, "
                      f"version {newest_version(base, 'genre')}")
        server, port = start_server(base, "genre", port=0)
        stack.callback(server.stop, None)
        host = f"127.0.0.1:{port}"
        settings = AppSettings(host=host, mlflow_uri=args.mlflow_uri)
        url = stack.enter_context(browser.running_page(settings, os.path.join(tmp, "streamlit.log")))
        driver = browser.chrome(height=1560)  # the whole result, little empty space below it
        stack.callback(driver.quit)
        load_before = os.getloadavg()[0]
        browser.open_page(driver, url)
        warm = browser.upload_and_wait(driver, clip)  # first run imports librosa, altair: not counted
        alac = str(encode(Path(tmp) / f"{Path(clip).stem}_alac", *read_audio(clip), "alac"))
        headline, rendered = {clip: [], alac: []}, {clip: [], alac: []}
        for _ in range(args.uploads):
            for path in (clip, alac):  # the ALAC last: the screenshot shows a clip played from its decoded copy
                browser.open_page(driver, url)
                result = browser.upload_and_wait(driver, path)
                if "segments voted" not in result.text:
                    sys.exit(f"the page showed no result:\n{result.text[:2000]}")
                headline[path].append(result.headline_seconds)
                rendered[path].append(result.rendered_seconds)
        if shot := args.screenshot or (None if args.no_write else str(ROOT / "docs" / "app.png")):
            os.makedirs(os.path.dirname(os.path.abspath(shot)), exist_ok=True)
            browser.player_state(driver)  # the player showing the clip's length
            browser.save_screenshot(driver, shot, max_bytes=README_SHOT_BYTES)
        with GenreClient(host) as client:
            grpc_ms = interleaved_calls({"grpc": lambda: client.predict_file(clip)}, args.uploads, warmup=1)["grpc"]
        load_after = os.getloadavg()[0]

    def cell(values: list[float]) -> str:
        return f"{np.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    body = f"""
Clip: {clip_text}, 30 s. Model: {model_text}, served by the TF Serving test double on 127.0.0.1
(TF Serving's binary cannot run here). Browser: headless Chromium (Debian), Selenium; page:
`streamlit run app/page.py`; every upload on a freshly loaded page; one warm-up upload not counted
(it took {warm.rendered_seconds:.2f} s). 1-minute load average {load_before:.1f} -> {load_after:.1f} (2 cores
shared with other jobs).

| step, same clip, {args.uploads} runs | median s (min-max) |
|---|---|
| page: upload -> top genre shown | {cell(headline[clip])} |
| page: upload -> all charts drawn and the log-mel image loaded | {cell(rendered[clip])} |
| page, the clip as ALAC .m4a: upload -> top genre shown | {cell(headline[alac])} |
| page, the clip as ALAC .m4a: upload -> all charts drawn and the log-mel image loaded | {cell(rendered[alac])} |
| for comparison: serving/client.py alone, decode + gRPC Predict | {cell(grpc_ms[:, 0] / 1e3)} |

The difference between the page rows and the client row is the page's own work: the upload to
Streamlit, decoding and checks, the waveform and genre charts, the librosa log-mel image
(display only) and drawing it all in the browser; for the ALAC copy, which browsers do not play, also
writing the decoded clip as WAV for the player.
"""
    publish(body, not args.no_write, "app", "Web page: upload to rendered result, 30-s clip", "make bench-app")
    if shot:
        print(f"Screenshot: {shot}")


if __name__ == "__main__":
    main()
