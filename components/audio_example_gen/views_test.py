"""Training views: seeded device-like channels, and AudioExampleGen adding them to the train split only."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from components.audio_example_gen import quarantine, views
from components.audio_example_gen.conftest import IN_MEMORY, make_config, read_examples, run_executor
from synthetic.generator import render_track


# The families whose preset trains on device views (config/settings.py, with_model).
PRESET_VIEWS = {"musicnn": ("device",), "cnn": (), "lstm": (), "ann": ()}


def _track(seconds: float = 3.0) -> np.ndarray:
    return render_track("rock", 0, seconds=seconds, sample_rate=22050, seed=4)


def test_a_device_view_is_seeded_keeps_the_length_and_the_scale():
    x = _track()
    a, b, c = (views.device_view(x, 22050, seed) for seed in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == x.shape and a.dtype == np.float32 and np.abs(a).max() <= 1.0


def test_a_device_view_removes_the_bass_below_its_band():
    x = _track()
    low = signal.butter(4, 60.0, btype="lowpass", fs=22050, output="sos")

    def bass(y: np.ndarray) -> float:
        return float(np.mean(signal.sosfilt(low, y) ** 2) / np.mean(y ** 2))

    for seed in range(5):  # every draw's low edge is at least VIEW_LOW_HZ[0] = 80 Hz
        assert bass(views.device_view(x, 22050, seed)) < 0.1 * bass(x)


def test_a_clipped_view_is_seeded_and_cut_at_full_scale():
    x = 0.5 * _track()
    a, b, c = (views.clipped_view(x, 22050, seed) for seed in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == x.shape and a.dtype == np.float32 and np.abs(a).max() == 1.0
    for seed in range(5):  # the peak is driven at least VIEW_CLIP_DRIVE_DB[0] = 1 dB above full scale: some samples cut
        y = views.clipped_view(x, 22050, seed)
        cut = np.abs(y) == 1.0
        assert 0 < cut.sum() < x.size
        gain = y[~cut] / x[~cut]  # below full scale the view is the track times one gain
        np.testing.assert_allclose(gain, gain[0], rtol=1e-5)
        drive_db = 20 * np.log10(gain[0] * np.abs(x).max())
        assert views.VIEW_CLIP_DRIVE_DB[0] - 1e-4 <= drive_db <= views.VIEW_CLIP_DRIVE_DB[1] + 1e-4


def test_a_clipped_view_of_silence_is_silence():
    assert not views.clipped_view(np.zeros(100, np.float32), 22050, 1).any()


def test_view_seeds_depend_on_track_view_and_number_only():
    assert views.view_seed("rock.00001", "device", 1) == views.view_seed("rock.00001", "device", 1)
    assert len({views.view_seed(t, "device", n) for t in ("rock.00001", "rock.00002") for n in (1, 2)}) == 4


def test_views_are_added_to_the_train_split_only(synthetic_root, tmp_path):
    config = make_config()
    config.audio = dataclasses.replace(config.audio, train_views=("device",))
    examples, report, error = run_executor(synthetic_root, config, tmp_path / "out", IN_MEMORY)
    assert error is None, error
    written = read_examples(examples.uri)
    train = written["train"]
    originals = [r for r in train if r["segment_index"] < views.VIEW_INDEX_STRIDE]
    viewed = [r for r in train if r["segment_index"] >= views.VIEW_INDEX_STRIDE]
    assert originals and len(viewed) == len(originals)
    assert {(r["track_id"], r["segment_index"] + views.VIEW_INDEX_STRIDE) for r in originals} == \
        {(r["track_id"], r["segment_index"]) for r in viewed}
    assert all(r["source_path"].decode().endswith("#device") for r in viewed)
    for split in ("eval", "test"):
        assert written[split] and all(r["segment_index"] < views.VIEW_INDEX_STRIDE for r in written[split])
    summary = json.loads((Path(report.uri) / quarantine.SUMMARY_FILE).read_text())
    assert summary["view_segments"] == len(viewed)
    assert summary["splits"]["train"]["segments"] == len(originals)  # the report counts recorded segments


def test_a_16_bit_tracks_views_are_made_from_its_samples_on_the_float_scale():
    """The lossless path decodes int16; a view is made from it divided by 32768, not from the raw integers
    (which the device view would clip to full scale almost everywhere)."""
    from components.audio_example_gen import ingest, segments

    pcm = segments.quantize(0.5 * _track())
    task = ingest.FileTask(path="", rel_path="rock/rock.00001.wav", genre="rock", track_id="rock.00001", split="train")
    config = dataclasses.replace(make_config().audio, train_views=("device", "clipped"))
    takes = list(ingest.DecodeToExamples(config)._takes(task, pcm))
    assert takes[0][0] is pcm
    assert [t[2] for t in takes[1:]] == ["rock/rock.00001.wav#device", "rock/rock.00001.wav#clipped"]
    as_float = pcm.astype(np.float32) / 32768
    for (heard, _, _), number, name in zip(takes[1:], (1, 2), ("device", "clipped")):
        seed = views.view_seed("rock.00001", name, number)
        np.testing.assert_array_equal(heard, views.VIEWS[name](as_float, 22050, seed))
    assert np.mean(np.abs(takes[1][0]) >= 0.999) < 0.01


@pytest.mark.parametrize("flag,expected", [("device", ("device",)), ("device,device", ("device", "device")),
                                           ("none", ())])
def test_the_train_views_flag(flag, expected):
    import argparse

    from pipeline.flags import add_cli_arguments, config_from_args

    args = add_cli_arguments(argparse.ArgumentParser()).parse_args(["--train-views", flag])
    assert config_from_args(args).audio.train_views == expected


@pytest.mark.parametrize("model", ["musicnn", "cnn", "lstm", "ann"])
def test_without_the_flag_a_family_trains_on_its_presets_views(model):
    import argparse

    from config.settings import PipelineConfig
    from pipeline.flags import add_cli_arguments, config_from_args

    args = add_cli_arguments(argparse.ArgumentParser()).parse_args(["--model", model])
    assert config_from_args(args).audio.train_views == PRESET_VIEWS[model]
    assert PipelineConfig().with_model(model).audio.train_views == PRESET_VIEWS[model]


def test_an_unknown_view_is_refused_by_name(capsys):
    import argparse

    from pipeline.flags import add_cli_arguments

    with pytest.raises(SystemExit):
        add_cli_arguments(argparse.ArgumentParser()).parse_args(["--train-views", "telephone"])
    assert ("no view named telephone; the views are clipped, device, or none to train without views"
            in capsys.readouterr().err)


def test_the_run_summary_says_how_many_view_segments_were_added(capsys):
    from local_run.summary import print_summary

    data = {"files": {"ingested": 20, "quarantined": 0, "excluded": 0}, "tracks": {"train": 14, "eval": 3, "test": 3},
            "quarantined": [], "excluded": {}, "warnings": [], "report": "/r", "view_segments": 140}
    print_summary({"data": data, "pipeline_root": "/p", "seconds": 1.0}, "push")
    assert ("  training views: 140 device-like segments added to the train split (--train-views); eval and test as "
            "recorded") in capsys.readouterr().out.splitlines()


def test_help_names_each_presets_views_and_families():
    from pipeline.flags import _preset_views_text

    # the presets with device views
    assert _preset_views_text() == "device for musicnn, efficientat, musicnn_efficientat, else none"
