"""The genre page (Streamlit): upload or record a clip, hear it, see what the served model thinks.

Start it with ``make app`` (or ``python -m app --host HOST:PORT``); settings come from the environment.
"""
from __future__ import annotations

import hashlib
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # `streamlit run app/page.py` puts app/ first on sys.path, not the repository
    sys.path.insert(0, _ROOT)

from serving.protos import skip_tensorflow_runtime  # noqa: E402

skip_tensorflow_runtime()  # before serving.client: its protos would otherwise start TensorFlow (~8 s)

import streamlit as st  # noqa: E402

from app import figures, model_card, playback  # noqa: E402
from app.clip import SUPPORTED, Clip, ClipError, decode  # noqa: E402
from app.settings import AppSettings, short_uri  # noqa: E402
from config.settings import AUDIO_EXTENSIONS, PipelineConfig  # noqa: E402
from serving.client import (GenreClient, ModelInputError, Prediction, ServerUnavailableError,  # noqa: E402
                            ServingClientError)

START_COMMAND = "make serve"
STYLE = """
<style>
.block-container {padding-top: 2rem; max-width: 1200px;}
.genre-kicker {color: #7b8794; font-size: 0.85rem; letter-spacing: .08em; text-transform: uppercase;}
.genre-top {font-size: 3.2rem; font-weight: 700; line-height: 1.1; color: #e4572e; text-transform: capitalize;}
.genre-prob {font-size: 1.1rem; color: #323f4b;}
</style>
"""


_client = st.cache_resource(show_spinner=False)(GenreClient)  # (host, model, timeout, retries): one channel each
_card = st.cache_data(ttl=60, show_spinner=False)(model_card.lookup)


@st.cache_data(max_entries=4, show_spinner=False)
def _log_mel(digest: str, _clip: Clip) -> bytes:  # keyed by the file's digest: the clip itself is not hashed
    return figures.log_mel_png(_clip.waveform, _clip.sample_rate)


def sidebar(settings: AppSettings) -> None:
    with st.sidebar:
        st.subheader("Model server")
        st.markdown(f"gRPC `{settings.host}`, model `{settings.model}`")
        try:
            statuses = _client(settings.host, settings.model, 3.0, 0).model_status()
        except ServerUnavailableError:
            st.warning(f"Not reachable. Start it with `{START_COMMAND}`.")
        except ServingClientError as err:
            st.warning(str(err))
        else:
            served = ", ".join(f"{s.version} ({s.state.lower()})" for s in statuses) or "none"
            st.markdown(f"Versions: {served}")
        st.subheader("Tracking")
        st.caption(f"Model details from MLflow at `{short_uri(settings.mlflow_uri)}`")


def choose_clip() -> tuple[str, bytes, bool] | None:
    """(name, bytes, recorded) of the clip to judge: the uploaded file, else the recording."""
    upload_tab, record_tab = st.tabs(["Upload a file", "Record from the microphone"])
    with upload_tab:
        uploaded = st.file_uploader(f"Audio file ({SUPPORTED})", type=list(AUDIO_EXTENSIONS), key="upload")
    with record_tab:
        recorded = st.audio_input("Record at least a few seconds", key="record")
    source = uploaded or recorded
    if source is None:
        return None
    name = source.name if uploaded else "recording.wav"
    return name, source.getvalue(), uploaded is None


def classify(settings: AppSettings, clip: Clip) -> Prediction | None:
    """Ask the server; a failure becomes one message on the page and None."""
    try:
        with st.spinner(f"Asking the model server at {settings.host}…"):
            return _client(settings.host, settings.model, settings.timeout, 2).predict_waveform(
                clip.waveform, clip.sample_rate)
    except ServerUnavailableError as err:
        st.error(f"Cannot reach the model server at {settings.host} (model '{settings.model}'). Start one with "
                 f"`{START_COMMAND}` in the repository (it serves the latest pushed model on 127.0.0.1:8500), or "
                 "start this page with `--host` / GENRE_SERVING_HOST pointing at a running TF Serving.\n\n"
                 f"Detail: {str(err).split(' Is TF Serving running?')[0]}")
    except ModelInputError as err:
        st.error(f"The model rejected {clip.name}: {str(err).split(': ', 1)[-1]}")
    except ServingClientError as err:
        st.error(f"The model server could not answer for {clip.name}: {err}. If no model is pushed yet, run "
                 f"`make run`, then `{START_COMMAND}`.")
    return None


def show_result(settings: AppSettings, clip: Clip, digest: str, prediction: Prediction) -> None:
    ranked = prediction.ranked()
    top, probability = ranked[0]
    hop = prediction.hop_seconds or PipelineConfig().audio.hop_seconds  # older models do not say
    votes = prediction.segment_scores.argmax(axis=1)
    agreeing = int((votes == prediction.genres.index(top)).sum())
    card = _card(settings.mlflow_uri, prediction.model_version)
    st.markdown(f"<div class='genre-kicker'>Genre</div><div class='genre-top'>{top}</div><div class='genre-prob'>"
                f"{probability:.0%} probability · {agreeing} of {votes.size} segments voted {top}</div>",
                unsafe_allow_html=True)
    st.caption(f"Answered by model '{settings.model}' {card.summary()}"
               + (f" · MLflow run {card.run_id[:8]}" if card.run_id else "")
               + (" · champion" if card.is_champion else "")
               + (f" ({card.note})" if card.note else ""))
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.markdown("**All genres**")
        st.altair_chart(figures.genre_bars(ranked), width="stretch")
    with right:
        st.markdown(f"**Segment by segment** ({votes.size} × {hop:g} s; a dot marks each segment's vote)")
        st.altair_chart(figures.segment_timeline(prediction.segment_scores, prediction.genres, hop), width="stretch")
    st.markdown("**Waveform**")
    st.altair_chart(figures.waveform_chart(clip.waveform, clip.sample_rate), width="stretch")
    st.markdown("**Log-mel spectrogram**")
    st.image(_log_mel(digest, clip), width="stretch", caption="Computed in the page with librosa, for display; the "
             "model computes its own features in its TF graph.")


def main() -> None:
    settings = AppSettings.from_env()
    st.set_page_config(page_title="What genre is this?", page_icon="🎵", layout="wide")
    st.markdown(STYLE, unsafe_allow_html=True)
    st.title("What genre is this?")
    st.caption("Drop in a song or record one: the served model listens in "
               f"{PipelineConfig().audio.segment_seconds:g}-s segments and each segment votes.")
    sidebar(settings)
    chosen = choose_clip()
    if chosen is None:
        st.info(f"Choose a clip ({SUPPORTED}, at least {PipelineConfig().audio.segment_seconds:g} s) "
                "or record one to see its genre.")
        return
    name, data, recorded = chosen
    try:
        clip = decode(name, data, settings.max_seconds, recorded=recorded)
    except ClipError as err:
        st.error(str(err))
        return
    playable, mime = playback.for_browser(data, clip)
    st.audio(playable, format=mime)
    prediction = classify(settings, clip)
    if prediction is not None:
        show_result(settings, clip, hashlib.sha256(data).hexdigest(), prediction)


main()
