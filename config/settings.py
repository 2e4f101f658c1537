"""The pipeline's one typed configuration.

Everything a runner, a component or the model code needs to know (genres, audio
format, split protocol, feature parameters, model choice, quality bars, paths) lives
here. Runners build a :class:`PipelineConfig` (from the command line: :mod:`pipeline.flags`), and
components receive it as JSON (``to_json`` / ``from_json``) so that the Kubeflow image sees exactly
the configuration the pipeline was compiled with.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

# The ten GTZAN genres: the default label set (PipelineConfig.genres). Nothing else in the
# project lists them; code that labels reads config.genres, never this constant directly.
GENRES: tuple[str, ...] = (
    "blues", "classical", "country", "disco", "hiphop",
    "jazz", "metal", "pop", "reggae", "rock",
)
# ExampleGen output splits: training, validation (early stopping), held-out test
# (Evaluator, reported accuracy). A track is in exactly one of them.
SPLITS: tuple[str, ...] = ("train", "eval", "test")
# The held-out split both gates (TFMA's Evaluator and the clip gate) score and report.
GATE_SPLIT: str = SPLITS[2]
# The audio file extensions everything reads (ingestion's discovery, the tagger, the client, the page's
# uploader): libsndfile's WAV, AU, FLAC, Ogg Vorbis, MP3 and AIFF, and FFmpeg's (PyAV) MP4/M4A (AAC, ALAC),
# ADTS AAC, Opus, WebM, Matroska, WMA, AIFF-C, Ogg's other codecs, CAF and WavPack (audio/decode.py).
AUDIO_EXTENSIONS: tuple[str, ...] = ("wav", "au", "flac", "ogg", "mp3", "aiff", "aif", "aifc", "m4a", "mp4",
                                     "aac", "opus", "oga", "webm", "mka", "wma", "caf", "wv")
# GTZAN's distributions put the genre folders one level down (Kaggle's, marsyas.info's).
GENRE_PARENTS: tuple[str, ...] = ("genres_original", "genres")
SPLIT_PROTOCOLS: tuple[str, ...] = ("stratified", "hash", "fault-filtered", "fault-filtered-final", "lists-trainval")
# Protocols that split by hash alone and read no list files.
HASH_PROTOCOLS: tuple[str, ...] = ("stratified", "hash")
# What the hash and quota protocols keep together in one split (audio/groups.py).
GROUPINGS: tuple[str, ...] = ("album", "artist", "tag-album", "tag-artist", "track")
# Where a file's genre comes from (audio/labels.py): its genre folder, its own genre tag, or a manifest file.
LABEL_SOURCES: tuple[str, ...] = ("folders", "tags", "manifest")
MODEL_TYPES: tuple[str, ...] = ("cnn", "lstm", "vgg", "ann", "efficientnet", "musicnn", "efficientat",
                                "musicnn_efficientat")
# Families with EfficientAT's mn04 body: they read its release weights (train.efficientat_weights).
MN04_FAMILIES: tuple[str, ...] = ("efficientat", "musicnn_efficientat")

# What each component reads: only these sections (with pipeline_name and genres) go into its
# cache key, so a setting it does not read (a gate bar, the epochs) never re-runs it.
INGESTION_SECTIONS: tuple[str, ...] = ("audio", "split", "labels")
TRANSFORM_SECTIONS: tuple[str, ...] = ("audio", "features")
# The Trainer and the Tuner read labels.source: a track id starts with its genre folder when labels come from folders.
TRAINING_SECTIONS: tuple[str, ...] = ("audio", "serving", "split", "labels", "features", "train", "paths")
# The Tuner reads what the Trainer reads and its own budget; the Trainer never reads the budget.
TUNING_SECTIONS: tuple[str, ...] = (*TRAINING_SECTIONS, "tune")
# KerasTuner's oracles behind --tune-oracle (models/tuning.py).
TUNE_ORACLES: tuple[str, ...] = ("random", "bayesian", "hyperband")
# The fold protocol's fewest folds: one block trains, one stops the training, one is held out (models/folds.py).
MIN_TUNE_FOLDS = 3

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT_DIR = PROJECT_ROOT / "outputs"


@dataclass
class AudioConfig:
    """How ExampleGen turns files into fixed-length mono segments."""

    sample_rate: int = 22050
    segment_seconds: float = 3.0
    # Distance between segment starts; equal to segment_seconds means no overlap.
    hop_seconds: float = 3.0
    # What to do with a trailing partial segment: "drop" it or zero-"pad" it.
    last_segment: str = "drop"
    # A decoded file whose RMS level is below this is quarantined as silent.
    silence_dbfs: float = -60.0
    # Longest accepted file (declared or decoded length); longer ones are quarantined as too_long.
    # 20 minutes keeps any real song and bounds a file's decoded samples (about 100 MB at 22.05 kHz).
    max_clip_seconds: float = 1200.0
    # Segments kept per track, spread evenly over a longer one (0: no limit). 20 keeps GTZAN's
    # 30-s clips whole at segments down to 1.5 s, and lets no track weigh more than 2 GTZAN clips
    # at the default 3-s segments.
    max_segments_per_track: int = 20
    # Device-like copies of every train track added to the train split (components/audio_example_gen/views.py,
    # e.g. ("device",)); eval and test stay as recorded. Empty: none.
    train_views: tuple[str, ...] = ()

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_seconds * self.sample_rate))


@dataclass
class ServingConfig:
    """What the exported serving signatures accept; read at export (Trainer), not by ingestion."""

    # Longest clip the serving signatures accept (INVALID_ARGUMENT beyond it).
    max_clip_seconds: float = 600.0


@dataclass
class SplitConfig:
    """Track-level split protocol. See README "Splits" for the protocols."""

    protocol: str = "stratified"
    # train/eval/test fractions for the hash protocols (hash of track_id, so stable).
    ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)
    # Folder holding train_filtered.txt, valid_filtered.txt, test_filtered.txt.
    split_dir: Optional[str] = None
    # Salt of the hash partition; change it to draw a different split.
    salt: str = "genre-split-v1"
    # Fraction of bad (quarantined) files above which ingestion fails.
    max_bad_fraction: float = 0.05
    # Tracks kept in one split by the stratified and hash protocols: the folder a track is in
    # ("album"), the first folder under the genre ("artist"), the files' own tags ("tag-album",
    # "tag-artist"), or none ("track"). One of GROUPINGS.
    group_by: str = "album"


@dataclass
class LabelsConfig:
    """Where each file's genre comes from (audio/labels.py). See docs/ingestion.md, "Labels and track identity"."""

    # "folders": the first folder under the root is the genre; "tags": the file's own genre tag;
    # "manifest": a CSV or Parquet file (``manifest``) with columns path, genre and optionally artist, album.
    source: str = "folders"
    manifest: Optional[str] = None
    # The manifest's sha256, so that an edit of the manifest re-runs ingestion (the file may lie outside the root).
    manifest_sha256: str = ""
    # (synonym, genre) pairs merged into the label set's names (--genre-map), after normalisation.
    genre_map: tuple[tuple[str, str], ...] = ()
    # Genres with fewer tracks than this are excluded ("rare_genre"), their files recorded.
    min_tracks_per_genre: int = 1

    def __post_init__(self) -> None:
        self.genre_map = tuple(tuple(pair) for pair in self.genre_map)  # JSON gives lists


@dataclass
class FeatureConfig:
    """Spectral front end. Defaults are librosa's; see models/features.py."""

    # The model input the Transform emits: "log_mel", "mfcc", or "summary" (per-segment means and
    # variances of MFCC, chroma and spectral descriptors, one row; models/features.summary_names).
    kind: str = "log_mel"
    n_fft: int = 2048
    hop_length: int = 512
    win_length: Optional[int] = None  # None: n_fft
    window: str = "hann"
    center: bool = True
    pad_mode: str = "constant"  # librosa >= 0.10 default for melspectrogram
    n_mels: int = 128
    fmin: float = 0.0
    fmax: Optional[float] = None  # None: sample_rate / 2
    power: float = 2.0
    mel_htk: bool = False  # False: Slaney mel scale (librosa default)
    mel_norm: Optional[str] = "slaney"  # "slaney" area normalisation or None
    # "db": 10 log10(max(S, amin) / ref), clipped at top_db below the max (librosa);
    # "log10_1p": log10(1 + log_scale * S) (musicnn's front end).
    log: str = "db"
    top_db: Optional[float] = 80.0
    amin: float = 1e-10
    log_scale: float = 10000.0
    n_mfcc: int = 20
    dct_norm: Optional[str] = "ortho"
    # Frames kept per segment (None: all). musicnn's VGG expects 187.
    frames: Optional[int] = None
    # Every segment is scaled to this RMS level (dBFS) before the front end, in Transform and so in
    # serving, so the level a recording was mastered or sent at does not change the answer
    # (models/audio.normalise_level); None: the level passes through. -18 dBFS is the median level of
    # the real GTZAN clips' 3-s segments. The gain is capped at max_level_gain_db, which covers the
    # quietest real segments (-60 dBFS) sent 24 dB quieter.
    level_dbfs: Optional[float] = -18.0
    max_level_gain_db: float = 70.0
    # The rate ``kind`` is computed at, the segment resampled to it in the graph; None: audio.sample_rate.
    # Lets one ingestion feed front ends of two rates (musicnn's 16 kHz beside mn04's 32 kHz).
    sample_rate: Optional[int] = None
    # Further model inputs Transform emits beside ``kind``, each a front end with fixed settings of its own at
    # audio.sample_rate: only "kaldi_log_mel" (mn04's). A model with extra kinds takes a dict of inputs.
    extra_kinds: tuple[str, ...] = ()
    # Every front end sees the segment band-limited to this frequency (resampled to twice it and back, in the
    # graph); None: the whole band. A front end whose bands reach above what the music carries (mn04's to 15 kHz on
    # 22.05-kHz audio) otherwise hears a quiet clip's int16 noise there, and a 16-kHz source's missing band.
    band_limit_hz: Optional[int] = None


def cnn_log_mel() -> FeatureConfig:
    """The CNN's input, which EfficientNet shares: librosa's log-mel defaults with the mel bands stopped at 8 kHz,
    what every source from 16 kHz up carries (docs/model-selection.md, "Training views")."""
    return FeatureConfig(fmax=8000.0)


def musicnn_log_mel() -> FeatureConfig:
    """musicnn's input (16 kHz): 96 mel bands of a 512-point STFT every 256 samples, log10(1 + 10000 x), the
    187 frames of a 3-s patch. The VGG, the LSTM and musicnn take it; so does the musicnn_efficientat pair."""
    return FeatureConfig(n_fft=512, hop_length=256, n_mels=96, log="log10_1p", top_db=None, frames=187)


@dataclass
class TrainConfig:
    model: str = "cnn"
    # Maximum epochs (VGG: of both phases together, see frozen_epochs).
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    # "constant"; "plateau": times reduce_lr_factor after reduce_lr_patience epochs without a
    # better early_stopping_monitor; "cosine": cosine decay from learning_rate to 0 over the epochs.
    lr_schedule: str = "constant"
    reduce_lr_patience: int = 3
    reduce_lr_factor: float = 0.5
    # Early stopping on the eval split ("val_loss" or "val_accuracy"), best weights restored;
    # patience None: no early stopping, the last epoch's weights are kept. val_loss by default:
    # on a small eval split accuracy saturates early (1.0 at epoch 7 of a synthetic-data CNN whose
    # val_loss kept falling to epoch 12), and the restored epoch's eval accuracy is then a maximum
    # over epochs, an optimistic figure for choosing settings.
    early_stopping_monitor: str = "val_loss"
    early_stopping_patience: Optional[int] = 5
    label_smoothing: float = 0.0
    seed: int = 42
    # Caps the number of optimiser steps (None: epochs decide). One step makes a
    # deliberately bad model, used by the gate's e2e test.
    max_steps: Optional[int] = None
    # Stop once the eval split's segment accuracy has reached this on STOP_AFTER_PASSES epochs in a
    # row (None: never; the epochs and early stopping decide). The embedded synthetic set turns it on
    # (pipeline/flags.py): it is learnt within a few epochs, and the presets' budgets are for real clips.
    stop_at_eval_accuracy: Optional[float] = None
    # VGG transfer learning: up to frozen_epochs of the new head on the frozen body's embeddings
    # (computed once, so these epochs cost seconds), then the whole network is fine-tuned for the
    # rest of the budget: `epochs` counts both phases, and epochs the head did not use (early
    # stopping) go to fine-tuning, which so gets at least epochs - frozen_epochs.
    # epochs <= frozen_epochs: the head alone, no fine-tuning.
    frozen_epochs: int = 20
    finetune_learning_rate: float = 1e-4
    # Pretrained models: heads trained on the frozen body's embeddings, each from its own seed, and
    # averaged in the exported model (one body, so serving costs the same). 1: a single head. On 188
    # training clips one head's answer depends on its seed (the LSTM's test clip accuracy spans 0.59-0.76
    # over 15 seeds); a mean of heads depends on it less (models/training.fit_heads_on_embeddings).
    heads: int = 1
    # EfficientNet: a Keras weights file for its body (e.g. efficientnetb0_notop.h5). None: Keras'
    # ImageNet download where the machine can fetch it, else random initialisation (models/efficientnet.py).
    backbone_weights: Optional[str] = None
    # EfficientAT: mn04_as_mAP_432.pt. None: $GENRE_EFFICIENTAT_WEIGHTS, the cache, else the pinned download
    # (models/efficientat/weights.weights_path).
    efficientat_weights: Optional[str] = None
    # Training-only augmentation (never in the serving graph).
    spec_augment: bool = True
    freq_mask_param: int = 12
    time_mask_param: int = 20
    random_gain_db: float = 6.0
    mixup_alpha: float = 0.0
    # Shift each training example along the feature bins by up to this many (0: off; models/augment.band_shift).
    band_shift: int = 0
    # Class balancing: each training example's loss is weighted by (its class's train-split segment
    # count) ** -class_balance, scaled to a mean of 1 (models/training.class_weights). 0: off;
    # 1: every genre weighs as much in total. The eval loss (early stopping) stays unweighted.
    class_balance: float = 0.0
    # tf.distribute strategy (models/distribute.py): "one" (the default device), "mirrored" (local GPUs, or
    # the logical CPU devices), "multi-worker" (TF_CONFIG), "tpu", "auto". batch_size is the global batch,
    # split over the replicas.
    strategy: str = "one"
    # Keras mixed precision: "none" (float32), "bfloat16" or "float16"; the export keeps float32 signatures.
    mixed_precision: str = "none"


@dataclass
class GateConfig:
    """Evaluator thresholds: an absolute bar and no regression against the last blessed model."""

    min_accuracy: float = 0.6
    min_clip_accuracy: float = 0.6
    # The candidate may trail the last blessed model by at most this much accuracy.
    max_accuracy_drop: float = 0.01
    # Fewest held-out test clips the clip gate blesses on: an accuracy over a handful of clips is
    # chance. The default synthetic set (20 tracks x 10 genres) has 35 test clips; 10 still admits
    # the small synthetic sets of the CI tests. The gate also wants every genre in the test split.
    min_test_clips: int = 10
    # Compare with the last blessed model (found by a TFX Resolver). Off only where resolvers
    # cannot run (the open-source Kubeflow Pipelines backend): then only the absolute bars gate.
    compare_to_last_blessed: bool = True


@dataclass
class TuneConfig:
    """Model selection in the pipeline (``--tune``): TFX's Tuner before the Trainer, whose best settings it trains.

    Every trial is scored by the fold protocol (models/folds.py): ``folds`` blocks of the train and eval
    tracks, grouped as the split groups them, each held out once, clip accuracy over all of them.
    """

    enabled: bool = False
    trials: int = 10
    oracle: str = "random"
    # No trial starts after this many minutes of tuning (None: the trial budget alone).
    max_minutes: Optional[float] = None
    folds: int = 3


# The embedded synthetic set's stop: eval segment accuracy at this bar on two epochs in a row, far above the
# gate's default bars (0.6), which the synthetic set's held-out clips then pass with room to spare.
SYNTHETIC_STOP_ACCURACY = 0.95
STOP_AFTER_PASSES = 2

# The stratified split holds one track a genre out for eval and one for test from three tracks on.
MIN_SYNTHETIC_TRACKS = 3


@dataclass
class SyntheticConfig:
    """The embedded default dataset (synthetic/generator.py)."""

    tracks_per_genre: int = 20
    seconds: float = 30.0
    seed: int = 0
    # Written at GTZAN's rate whatever the model: ExampleGen resamples, so one set per output dir
    # serves every family (a 16 kHz copy for the VGG would rewrite the set the CNN was cached on).
    sample_rate: int = 22050


@dataclass
class PathsConfig:
    # Audio root (<root>/<genre>/<genre>.NNNNN.ext); None: generate the synthetic set.
    data_root: Optional[str] = None
    # Empty: DEFAULT_OUTPUT_DIR. Not the path itself, so that a config serialised with
    # default paths (a component's cache key, Kubeflow specs) names no folder of this machine.
    output_dir: str = ""
    # Empty strings mean "under output_dir" (see the properties of PipelineConfig).
    pipeline_root: str = ""
    metadata_path: str = ""
    serving_dir: str = ""
    mlflow_tracking_uri: str = ""


@dataclass
class PipelineConfig:
    pipeline_name: str = "genre-pipeline"
    # The label set: label i is genres[i]. GTZAN's ten by default; `--genres-from-data` or
    # `--genres a,b,c` make it follow a collection's own folders. Every component, the schema,
    # the model head, the gate's slices and the serving outputs read it from here.
    genres: tuple[str, ...] = GENRES
    audio: AudioConfig = field(default_factory=AudioConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    # Beam pipeline args for every Beam-based component. Named runner: Beam 2.68+
    # would otherwise pick Prism, which downloads a binary. Processes, not threads: threaded
    # ingestion was faster (1110x vs 656x real time, BENCHMARKS.md), but Transform crashed once
    # under multi_threading for the VGG (ArrowInvalid reading its own output), while
    # multi_processing ran every model family.
    beam_args: list[str] = field(default_factory=lambda: [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=0",
    ])

    # ----- derived paths -------------------------------------------------
    @property
    def output_dir(self) -> str:
        return self.paths.output_dir or str(DEFAULT_OUTPUT_DIR)

    @property
    def pipeline_root(self) -> str:
        return self.paths.pipeline_root or os.path.join(self.output_dir, "pipeline_root")

    @property
    def metadata_path(self) -> str:
        return self.paths.metadata_path or os.path.join(self.output_dir, "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        return self.paths.serving_dir or os.path.join(self.output_dir, "serving", "genre")

    @property
    def mlflow_tracking_uri(self) -> str:
        if self.paths.mlflow_tracking_uri:
            return self.paths.mlflow_tracking_uri
        return "sqlite:///" + os.path.join(os.path.abspath(self.pipeline_root), "mlflow.db")

    @property
    def synthetic_data_root(self) -> str:
        s = self.synthetic
        return os.path.join(self.output_dir, f"synthetic_gtzan_{s.tracks_per_genre}x{s.seconds:g}s_seed{s.seed}")

    @property
    def schema_dir(self) -> str:
        """The curated raw-data schema for this audio format (schemas/<rate>hz_<seconds>s)."""
        name = f"{self.audio.sample_rate}hz_{self.audio.segment_seconds:g}s"
        path = PROJECT_ROOT / "schemas" / name
        if not (path / "schema.pbtxt").exists():
            raise FileNotFoundError(
                f"No curated schema at {path}/schema.pbtxt for sample rate {self.audio.sample_rate} Hz "
                f"and {self.audio.segment_seconds:g} s segments. Copy an existing schemas/* folder and "
                "set the sample_rate and num_samples domains to match.")
        return str(path)

    # ----- model presets -------------------------------------------------
    def with_model(self, model: str) -> "PipelineConfig":
        """Return a copy whose audio and feature settings follow the chosen model."""
        if model not in MODEL_TYPES:
            raise ValueError(f"Unknown model {model!r}; choose one of {', '.join(MODEL_TYPES)}.")
        cfg = dataclasses.replace(self, train=dataclasses.replace(self.train, model=model))
        if model == "cnn":
            # Mel bands up to 8 kHz, what every source from 16 kHz up carries: with bands to 11 kHz a 16-kHz
            # recording changed 8-12 % of the CNN's answers. No device views: on the float scale they cost 10 of
            # 219 eval clips (seeds 42-44) and kept one eval clip more through a small speaker and a laptop
            # microphone (seed 42); docs/model-selection.md, "Training views".
            cfg.features = cnn_log_mel()
            cfg.audio = dataclasses.replace(cfg.audio, sample_rate=22050)
            # Cosine decay of the rate to 0 over the epochs, last weights kept. On the real clips the
            # eval loss bottoms out by epoch 4-7 while eval accuracy keeps rising as the rate falls, so
            # stopping on the loss kept half-trained models: eval clip accuracy 0.756 / 0.756 (seeds 42 /
            # 43) against 0.667 / 0.711; chosen on the eval split (docs/model-selection.md, "CNN").
            # Band shift up to 8 of 128 mel bins: on the 288 rebalanced clips, eval clip accuracy 0.575
            # against 0.529 without it (seeds 42-44, the same Transform output).
            cfg.train = dataclasses.replace(cfg.train, lr_schedule="cosine", early_stopping_patience=None,
                                            band_shift=8)
        elif model == "ann":
            # Summary statistics per segment: a gain or a masked band is not a shift of a statistic,
            # so no random gain and no SpecAugment (models/ann.py).
            cfg.features = FeatureConfig(kind="summary")
            cfg.audio = dataclasses.replace(cfg.audio, sample_rate=22050)
            # Epochs cost well under a second here: a long budget, ended by early stopping on the eval loss.
            cfg.train = dataclasses.replace(cfg.train, spec_augment=False, random_gain_db=0.0, epochs=100)
        elif model == "efficientnet":
            # The CNN's log-mel (130 x 128 at 22.05 kHz, bands to 8 kHz), as the image: no resize to ImageNet's 224.
            cfg.features = cnn_log_mel()
            cfg.audio = dataclasses.replace(cfg.audio, sample_rate=22050)
            # From random initialisation (these machines). A cosine decay from 2e-3: on the real clips' eval
            # split it beat one from 5e-3, which the CI's synthetic set preferred (docs/model-selection.md,
            # "EfficientNet"; tests/families.py LEARNING_RATE). Not tuned with ImageNet weights.
            cfg.train = dataclasses.replace(cfg.train, lr_schedule="cosine", early_stopping_patience=None,
                                            learning_rate=2e-3, mixup_alpha=0.2)
        elif model == "efficientat":
            # mn04's own front end at 32 kHz (models/efficientat/log_mel.py; not z-scored by Transform), 3-s segments
            # as every family; the heads alone on the frozen body's 384-d pooled embedding, five averaged and
            # device views as musicnn's preset (not tuned on the real clips).
            cfg.features = FeatureConfig(kind="kaldi_log_mel")
            cfg.audio = dataclasses.replace(cfg.audio, sample_rate=32000, train_views=("device",))
            cfg.train = dataclasses.replace(cfg.train, epochs=cfg.train.frozen_epochs, heads=5, learning_rate=3e-3)
        elif model == "musicnn_efficientat":
            # Both bodies on every segment: musicnn's log-mel at 16 kHz (resampled in the graph) and mn04's Kaldi
            # log-mel at the ingested 32 kHz; five heads on the two embeddings joined (753 + 384), musicnn's head
            # preset. Over five folds of the real train and eval clips (seeds 42-44) one head on both embeddings
            # held out 1003 of 1152 clips against musicnn's 970 of 1161 and mn04's 952 of 1152
            # (docs/model-selection.md, "Both bodies").
            cfg.features = dataclasses.replace(musicnn_log_mel(), sample_rate=16000, extra_kinds=("kaldi_log_mel",),
                                               band_limit_hz=8000)
            cfg.audio = dataclasses.replace(cfg.audio, sample_rate=32000, train_views=("device",))
            cfg.train = dataclasses.replace(cfg.train, epochs=cfg.train.frozen_epochs, heads=5, learning_rate=3e-3,
                                            label_smoothing=0.2)
        else:  # vgg, lstm, musicnn: musicnn's input (the VGG's body is MSD_vgg; the LSTM's front end and
            # musicnn's body are MSD_musicnn), so the pretrained filters see what they were trained on
            cfg.features = musicnn_log_mel()
            cfg.audio = dataclasses.replace(cfg.audio, sample_rate=16000)
            # The new head learns ~3x faster at 3e-3 than 1e-3 on the frozen body (measured on
            # real clips); fine-tuning the whole network uses finetune_learning_rate.
            cfg.train = dataclasses.replace(cfg.train, learning_rate=3e-3)
            if model == "lstm":
                # epochs == frozen_epochs: the recurrent head on the frozen front end's outputs alone
                # (seconds per epoch), no fine-tuning. On MSD_musicnn's steps lr 1e-3 (and input dropout
                # 0.5, models/lstm.py): eval clip accuracy 0.657 against 0.608 at 3e-3 (and 0.3);
                # docs/model-selection.md, "LSTM".
                # Five heads averaged: eval clip accuracy 0.739 against 0.705 for one head (15 heads, three bags
                # of five; docs/model-selection.md, "LSTM").
                # No class balancing: eval segments higher on every one of six seeds than with full balancing
                # (0.693 against 0.669), clips tied (0.739 against 0.722); docs/model-selection.md, "LSTM".
                cfg.train = dataclasses.replace(cfg.train, epochs=cfg.train.frozen_epochs,
                                                learning_rate=1e-3, heads=5)
            elif model == "musicnn":
                # The head alone on the frozen body's mean-pooled embeddings (seconds per epoch after one
                # pass of the body); chosen on the eval split (docs/model-selection.md, "musicnn").
                # Five heads averaged: eval clip accuracy 0.765 against 0.744 for one head.
                # No class balancing: eval segments higher on every one of six seeds than with half-strength
                # balancing (0.731 against 0.716), which had beaten full balancing the same way; clips tied
                # (0.784 against 0.775).
                # Label smoothing 0.2: 625 of 717 held-out clips against 604 without (239 train and eval clips,
                # five folds of consecutive tracks, seeds 42-44; higher on every seed); 0.1 gave 618 and 0.3
                # 618 (the fold rule; docs/model-selection.md, "musicnn").
                # Device views, a trade-off chosen: over five folds of the 387 train and eval clips (seeds 42-44)
                # they cost 23 of 1161 clips (0.835 against 0.855); through a small speaker and a laptop microphone
                # the eval clips lost 8 points without them and none with them, and +6 dB of clipping moved no
                # answer (docs/model-selection.md, "Training views").
                cfg.audio = dataclasses.replace(cfg.audio, train_views=("device",))
                cfg.train = dataclasses.replace(cfg.train, epochs=cfg.train.frozen_epochs, heads=5,
                                                label_smoothing=0.2)
        return cfg

    # ----- serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, sections: Optional[tuple[str, ...]] = None) -> str:
        """The whole configuration, or only ``sections`` (plus the name and the label set).

        A component that receives only the sections it reads keeps its cache when any other
        setting changes: the sections left out come back at their defaults in ``from_json``.
        """
        data = self.to_dict()
        if sections is not None:
            keep = {"pipeline_name", "genres", *sections}
            data = {k: v for k, v in data.items() if k in keep}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PipelineConfig":
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in sections:
                raise ValueError(f"Unknown configuration key {key!r}.")
            section_cls = _SECTION_TYPES.get(key)
            if section_cls is not None:
                # JSON has no tuples: every list-valued section field (split.ratios, audio.train_views) is one.
                value = section_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in dict(value).items()})
            elif key == "genres":
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "PipelineConfig":
        return cls.from_dict(json.loads(text))

    def flat_params(self) -> dict[str, Any]:
        """Flattened ``section.key`` view, as logged to MLflow."""
        flat: dict[str, Any] = {}
        for section, values in self.to_dict().items():
            if isinstance(values, dict):
                flat.update({f"{section}.{k}": v for k, v in values.items()})
            else:
                flat[section] = values
        return flat


_SECTION_TYPES = {
    "audio": AudioConfig, "serving": ServingConfig, "split": SplitConfig, "labels": LabelsConfig, "features": FeatureConfig,
    "train": TrainConfig, "gate": GateConfig, "synthetic": SyntheticConfig, "tune": TuneConfig,
    "paths": PathsConfig,
}
