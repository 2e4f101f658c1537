"""The pipeline's one typed configuration: all a runner, a component or the model code needs to know.

Runners build a PipelineConfig (from flags: pipeline.flags); components receive it as JSON, so the Kubeflow image
sees exactly the configuration the pipeline was compiled with."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

# GTZAN's ten genres: the default label set. Code that labels reads config.genres, never this constant.
GENRES: tuple[str, ...] = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
# ExampleGen output splits: training, validation (early stopping), held-out test. A track is in exactly one.
SPLITS: tuple[str, ...] = ("train", "eval", "test")
# The held-out split both gates (TFMA's Evaluator and the clip gate) score and report.
GATE_SPLIT: str = SPLITS[2]
# The audio file extensions everything reads: libsndfile's and FFmpeg's (PyAV) formats (audio/decode.py).
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

# What each component reads: only these sections (with pipeline_name and genres) go into its cache key.
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
    # Longest accepted file; longer ones are quarantined too_long. 20 minutes: any real song, ~100 MB decoded.
    max_clip_seconds: float = 1200.0
    # Segments kept per track, spread evenly over a longer one (0: no limit): no track weighs more than 2 GTZAN clips.
    max_segments_per_track: int = 20
    # Device-like copies of every train track added to the train split (components/audio_example_gen/views.py).
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
    # Tracks kept in one split by the stratified and hash protocols: one of GROUPINGS (audio/groups.py).
    group_by: str = "album"


@dataclass
class LabelsConfig:
    """Where each file's genre comes from (audio/labels.py). See docs/ingestion.md, "Labels and track identity"."""

    # "folders" (the genre folder), "tags" (the file's own genre tag) or "manifest" (a CSV or Parquet ``manifest``).
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

    # The model input Transform emits: "log_mel", "mfcc", or "summary" (per-segment statistics, one row).
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
    # "db": librosa's power_to_db clipped at top_db; "log10_1p": log10(1 + log_scale * S) (musicnn's front end).
    log: str = "db"
    top_db: Optional[float] = 80.0
    amin: float = 1e-10
    log_scale: float = 10000.0
    n_mfcc: int = 20
    dct_norm: Optional[str] = "ortho"
    # Frames kept per segment (None: all). musicnn's VGG expects 187.
    frames: Optional[int] = None
    # Every segment is scaled to this RMS level (dBFS) before the front end, so a recording's level does not matter.
    level_dbfs: Optional[float] = -18.0
    max_level_gain_db: float = 70.0
    # The rate ``kind`` is computed at, resampled in the graph (None: audio.sample_rate): one ingestion, two rates.
    sample_rate: Optional[int] = None
    # Further front ends Transform emits beside ``kind``, at audio.sample_rate: only "kaldi_log_mel" (mn04's).
    extra_kinds: tuple[str, ...] = ()
    # Every front end hears the segment band-limited to this (None: the whole band): no int16 noise in top bands.
    band_limit_hz: Optional[int] = None


def cnn_log_mel() -> FeatureConfig:
    """The CNN's and EfficientNet's input: librosa's log-mel, bands stopped at 8 kHz (what 16-kHz sources carry)."""
    return FeatureConfig(fmax=8000.0)


def musicnn_log_mel() -> FeatureConfig:
    """musicnn's input at 16 kHz (the VGG, the LSTM, musicnn and musicnn_efficientat take it)."""
    return FeatureConfig(n_fft=512, hop_length=256, n_mels=96, log="log10_1p", top_db=None, frames=187)


@dataclass
class TrainConfig:
    model: str = "cnn"
    # Maximum epochs (VGG: of both phases together, see frozen_epochs).
    epochs: int = 30
    # A run warm-started from the champion (same family, label set and input) trains at most this many of them
    # (0: every run trains from the start; models/warm_start.py).
    warm_start_epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3
    # "constant", "plateau" (reduce_lr_* on early_stopping_monitor) or "cosine" (to 0 over the epochs).
    lr_schedule: str = "constant"
    reduce_lr_patience: int = 3
    reduce_lr_factor: float = 0.5
    # Early stopping on the eval split, best weights kept (patience None: off). val_loss: eval accuracy saturates early.
    early_stopping_monitor: str = "val_loss"
    early_stopping_patience: Optional[int] = 5
    label_smoothing: float = 0.0
    seed: int = 42
    # Caps the optimiser steps (None: epochs decide); one step makes the gate test's deliberately bad model.
    max_steps: Optional[int] = None
    # Stop once eval segment accuracy reaches this on STOP_AFTER_PASSES epochs in a row (None: never).
    stop_at_eval_accuracy: Optional[float] = None
    # Transfer learning: up to frozen_epochs of the head on the frozen body, then fine-tuning for the rest of epochs.
    frozen_epochs: int = 20
    finetune_learning_rate: float = 1e-4
    # Pretrained models: heads on the frozen body from their own seeds, averaged in the export (1: a single head).
    heads: int = 1
    # EfficientNet's body weights file; None: Keras' ImageNet download if reachable, else random initialisation.
    backbone_weights: Optional[str] = None
    # EfficientAT's mn04_as_mAP_432.pt; None: models/efficientat/weights.weights_path finds or downloads it.
    efficientat_weights: Optional[str] = None
    # Training-only augmentation (never in the serving graph).
    spec_augment: bool = True
    freq_mask_param: int = 12
    time_mask_param: int = 20
    random_gain_db: float = 6.0
    mixup_alpha: float = 0.0
    # Shift each training example along the feature bins by up to this many (0: off; models/augment.band_shift).
    band_shift: int = 0
    # Loss weight per example: (its class's train segments) ** -class_balance, mean 1 (0: off; 1: genres weigh equally).
    class_balance: float = 0.0
    # tf.distribute strategy, one of models/distribute.py's STRATEGIES; batch_size is the global batch.
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
    # Fewest held-out test clips the clip gate blesses on: an accuracy over a handful of clips is chance.
    min_test_clips: int = 10
    # Compare with the last blessed model; off where TFX resolvers cannot run (open-source Kubeflow Pipelines).
    compare_to_last_blessed: bool = True


@dataclass
class TuneConfig:
    """Model selection (``--tune``): TFX's Tuner before the Trainer, trials scored by folds (models/folds.py)."""

    enabled: bool = False
    trials: int = 10
    oracle: str = "random"
    # No trial starts after this many minutes of tuning (None: the trial budget alone).
    max_minutes: Optional[float] = None
    folds: int = 3


# The embedded synthetic set's stop (STOP_AFTER_PASSES epochs in a row at this bar), far above the gate's bars.
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
    # GTZAN's rate whatever the model: ExampleGen resamples, so one set per output dir serves every family.
    sample_rate: int = 22050


@dataclass
class PathsConfig:
    # Audio root (<root>/<genre>/<genre>.NNNNN.ext); None: generate the synthetic set.
    data_root: Optional[str] = None
    # Empty: DEFAULT_OUTPUT_DIR, so that a serialised default config names no folder of this machine.
    output_dir: str = ""
    # Empty strings mean "under output_dir" (see the properties of PipelineConfig).
    pipeline_root: str = ""
    metadata_path: str = ""
    serving_dir: str = ""
    mlflow_tracking_uri: str = ""


@dataclass
class PipelineConfig:
    pipeline_name: str = "genre-pipeline"
    # The label set: label i is genres[i]; everything that labels reads it from here.
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
    # Beam args of every Beam-based component. A named runner: Beam 2.68+ would pick Prism, which downloads a binary.
    # Processes, not threads: threads ingest faster (BENCHMARKS.md), but Transform crashed under them for the VGG.
    beam_args: list[str] = field(default_factory=lambda: [
        "--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=0"])

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
        frozen, views = cfg.train.frozen_epochs, cfg.audio.train_views
        if model == "cnn":
            # Mel bands up to 8 kHz, what every source from 16 kHz up carries; no device views: they cost eval clips
            # (docs/model-selection.md, "Training views").
            # Cosine decay, last weights kept: eval accuracy keeps rising after the eval loss bottoms out, so stopping
            # on the loss kept half-trained models. Band shift up to 8 of 128 mel bins (docs/model-selection.md, "CNN").
            features, rate = cnn_log_mel(), 22050
            train = dict(lr_schedule="cosine", early_stopping_patience=None, band_shift=8)
        elif model == "ann":
            # Summary statistics per segment: a gain or a masked band is not a shift of a statistic,
            # so no random gain and no SpecAugment (models/ann.py).
            # Epochs cost under a second: a long budget, ended by early stopping.
            features, rate = FeatureConfig(kind="summary"), 22050
            train = dict(spec_augment=False, random_gain_db=0.0, epochs=100)
        elif model == "efficientnet":
            # The CNN's log-mel as the image, no resize to ImageNet's 224.
            # A cosine decay from 2e-3, chosen from random initialisation (docs/model-selection.md, "EfficientNet").
            features, rate = cnn_log_mel(), 22050
            train = dict(lr_schedule="cosine", early_stopping_patience=None, learning_rate=2e-3, mixup_alpha=0.2)
        elif model == "efficientat":
            # mn04's own front end at 32 kHz; five heads on the frozen body and device views, as musicnn's preset.
            features, rate, views = FeatureConfig(kind="kaldi_log_mel"), 32000, ("device",)
            train = dict(epochs=frozen, heads=5, learning_rate=3e-3)
        elif model == "musicnn_efficientat":
            # Both bodies on every segment: musicnn's log-mel at 16 kHz (resampled in the graph) and mn04's at the
            # ingested 32 kHz; musicnn's head preset on the joined embeddings (docs/model-selection.md, "Both bodies").
            features = dataclasses.replace(musicnn_log_mel(), sample_rate=16000, extra_kinds=("kaldi_log_mel",),
                                           band_limit_hz=8000)
            rate, views = 32000, ("device",)
            train = dict(epochs=frozen, heads=5, learning_rate=3e-3, label_smoothing=0.2)
        else:  # vgg, lstm, musicnn: musicnn's input (the VGG's body is MSD_vgg; the LSTM's front end and
            # musicnn's body are MSD_musicnn), so the pretrained filters see what they were trained on
            features, rate = musicnn_log_mel(), 16000
            # The new head learns faster at 3e-3 on the frozen body; fine-tuning uses finetune_learning_rate.
            train = dict(learning_rate=3e-3)
            if model == "lstm":
                # The recurrent head alone on the frozen front end's outputs, no fine-tuning; lr 1e-3, five heads
                # averaged, no class balancing, each chosen on the eval split (docs/model-selection.md, "LSTM").
                train = dict(epochs=frozen, learning_rate=1e-3, heads=5)
            elif model == "musicnn":
                # Five heads alone on the frozen body's embeddings, no class balancing, label smoothing 0.2, each
                # chosen on held-out clips (docs/model-selection.md, "musicnn"). Device views, a trade-off: a few clips
                # lost on the recordings, none through a small speaker and a laptop microphone ("Training views").
                views = ("device",)
                train.update(epochs=frozen, heads=5, label_smoothing=0.2)
        cfg.features = features
        cfg.audio = dataclasses.replace(cfg.audio, sample_rate=rate, train_views=views)
        cfg.train = dataclasses.replace(cfg.train, **train)
        return cfg

    # ----- serialisation -------------------------------------------------
    def to_json(self, sections: Optional[tuple[str, ...]] = None) -> str:
        """The whole config, or only ``sections`` (plus name and label set): a component's cache ignores the rest."""
        data = dataclasses.asdict(self)
        if sections is not None:
            keep = {"pipeline_name", "genres", *sections}
            data = {k: v for k, v in data.items() if k in keep}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PipelineConfig":
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in json.loads(text).items():
            if key not in fields:
                raise ValueError(f"Unknown configuration key {key!r}.")
            section_cls = fields[key].default_factory
            if dataclasses.is_dataclass(section_cls):
                # JSON has no tuples: every list-valued section field (split.ratios, audio.train_views) is one.
                value = section_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in dict(value).items()})
            elif key == "genres":
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)

    def flat_params(self) -> dict[str, Any]:
        """Flattened ``section.key`` view, as logged to MLflow."""
        flat: dict[str, Any] = {}
        for section, values in dataclasses.asdict(self).items():
            if isinstance(values, dict):
                flat.update({f"{section}.{k}": v for k, v in values.items()})
            else:
                flat[section] = values
        return flat

