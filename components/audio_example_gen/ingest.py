"""The Beam part of ingestion: file tasks (planned on the launcher) in, serialized tf.Examples per split out.

Every file also yields one record on the ``files`` output; no exception on one file fails the step, it becomes
that file's quarantine record. This runs in Beam workers: keep TensorFlow and TFX (seconds of CPU to import) out."""
from __future__ import annotations

import dataclasses
import gzip
import time
from typing import Any, BinaryIO, Iterator, Optional, Union

import apache_beam as beam
import numpy as np
from apache_beam.io import tfrecordio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from audio import decode as audio_lib
from audio import filecheck
from components.audio_example_gen import progress, segments, spans, views
from config.settings import AudioConfig

FILES = "files"
METRICS_NAMESPACE = "AudioExampleGen"

INGESTED, QUARANTINED, EXCLUDED, PENDING = "ingested", "quarantined", "excluded", "pending"
# Deflate level of the gzipped TFRecords: 0 writes "stored" blocks, still gzip files every TFX reader opens.
# int16 PCM deflates poorly: Beam's default level cost much of ingestion's CPU for files barely smaller.
GZIP_LEVEL = 0
# Files up to this size are read into memory before decoding (libsndfile's many small reads through a Python file
# object cost CPU); larger files are decoded from the open file.
WHOLE_FILE_BYTES = 16 << 20
# Quarantine reasons decided before decoding (the rest are in audio.REASONS).
UNKNOWN_GENRE = "unknown_genre"
DUPLICATE_TRACK = "duplicate_track"
DUPLICATE_AUDIO = "duplicate_audio"  # duplicates.py; named here with its siblings for the report


@dataclasses.dataclass(frozen=True)
class FileTask:
    path: str
    rel_path: str
    genre: str
    track_id: str
    split: Optional[str] = None
    status: str = PENDING
    reason: str = ""
    detail: str = ""
    label: int = -1  # index of genre in config.genres, set for files to decode
    group: str = ""  # the split group of the track (audio/groups.py), set for files to decode

    def record(self, **extra: Any) -> dict[str, Any]:
        return {"path": self.rel_path, "genre": self.genre, "track_id": self.track_id, "split": self.split,
                "status": self.status, "reason": self.reason, "detail": self.detail, "group": self.group,
                "label": self.label,
                "segments": 0, "seconds": 0.0, "truncated": False, **extra}


def kept_segments(num_samples: int, cfg: AudioConfig) -> tuple[int, list[int], list[int]]:
    """(segments in the track, kept indices, kept starts): segment_starts thinned by spread."""
    starts = segments.segment_starts(num_samples, cfg.segment_samples, cfg.hop_samples, cfg.last_segment)
    indices = segments.spread(len(starts), cfg.max_segments_per_track)
    return len(starts), indices, [starts[i] for i in indices]


def _load(path: str, cfg: AudioConfig) -> audio_lib.DecodedAudio:
    """Decode one file's kept segments; a file larger than WHOLE_FILE_BYTES is decoded from the open file."""
    def wanted(num_samples: int) -> list[tuple[int, int]]:
        return segments.spans(num_samples, kept_segments(num_samples, cfg)[2], cfg.segment_samples)

    # Beam's FileSystems (not tfx fileio, which imports TensorFlow) opens local and remote paths.
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        source: Union[bytes, BinaryIO] = f.read(WHOLE_FILE_BYTES + 1)
        if len(source) > WHOLE_FILE_BYTES:
            source = f
            f.seek(0)
        return audio_lib.load(source, cfg.sample_rate, cfg.segment_samples, cfg.silence_dbfs, cfg.max_clip_seconds,
                              wanted)


def read_audio(path: str, cfg: AudioConfig) -> Union[audio_lib.DecodedAudio, filecheck.Problem]:
    """Open and decode one file; every failure (MemoryError included) comes back as its quarantine problem."""
    try:
        return _load(path, cfg)
    except audio_lib.BadAudio as e:
        return filecheck.Problem(e.reason, e.detail)
    except OSError as e:  # libsndfile's own errors are BadAudio
        return filecheck.unreadable(e)
    except Exception as e:  # noqa: BLE001 - MemoryError or a decoder bug: this file's record, not the step's end
        return filecheck.Problem(audio_lib.DECODE_ERROR, f"{type(e).__name__}: {e}")


class DecodeToExamples(beam.DoFn):
    """FileTask -> serialized tf.Examples on the task's split output, and one file record."""

    def __init__(self, audio: AudioConfig, progress_dir: Optional[str] = None):
        self._audio = audio
        self._progress_dir = progress_dir

    def _count(self, name: str, value: int = 1) -> None:
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, name).inc(value)

    def process(self, task: FileTask):
        yield from self._process(task)
        progress.mark_done(self._progress_dir, task.rel_path)

    def _takes(self, task: FileTask, samples: np.ndarray) -> Iterator[tuple[np.ndarray, int, str]]:
        """(samples, segment_index offset, source path): the recording, then each view of a train track. A view sees
        all that was decoded, so its noise, drive and room stay relative to the track, not to each window."""
        yield samples, 0, task.rel_path
        if task.split == "train" and self._audio.train_views:
            heard_from = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples
            for number, name in enumerate(self._audio.train_views, start=1):
                seed = views.view_seed(task.track_id, name, number)
                heard = views.VIEWS[name](heard_from, self._audio.sample_rate, seed)
                yield heard, number * views.VIEW_INDEX_STRIDE, f"{task.rel_path}#{name}"

    def _process(self, task: FileTask):
        if task.status != PENDING:
            self._count(f"files_{task.status}")
            yield beam.pvalue.TaggedOutput(FILES, task.record())
            return
        cfg = self._audio
        started = time.thread_time()  # CPU of this thread: reading, decoding, checks
        decoded = read_audio(task.path, cfg)
        if isinstance(decoded, filecheck.Problem):
            self._count(f"files_{QUARANTINED}")
            self._count(f"quarantined_{decoded.reason}")
            yield beam.pvalue.TaggedOutput(FILES, dataclasses.replace(
                task, status=QUARANTINED, split=None, reason=decoded.reason, detail=decoded.detail).record())
            return
        decode_cpu = time.thread_time() - started
        in_track, indices, starts = kept_segments(decoded.length, cfg)
        # A windowed file cut short holds only the windows read before the cut.
        found = [(i, decoded.position(s)) for i, s in zip(indices, starts)]
        kept = [i for i, at in found if at is not None]
        offsets = [at for _, at in found if at is not None]
        written = 0
        for samples, index_offset, source_path in self._takes(task, decoded.samples):
            for index, pcm in zip(kept, segments.pieces(samples, offsets, cfg.segment_samples)):
                written += 1
                yield beam.pvalue.TaggedOutput(task.split, segments.make_example(
                    pcm, genre=task.genre, label=task.label, track_id=task.track_id, segment_index=index + index_offset,
                    sample_rate=cfg.sample_rate, source_path=source_path))
        viewed = written - len(kept)  # the views _takes added after the recording
        self._count(f"files_{INGESTED}")
        self._count(f"segments_{task.split}", written)
        yield beam.pvalue.TaggedOutput(FILES, dataclasses.replace(task, status=INGESTED).record(
            segments=len(kept), segments_in_track=in_track, truncated=decoded.truncated,
            seconds=decoded.length / cfg.sample_rate, decoded_seconds=len(decoded.samples) / cfg.sample_rate,
            source_rate=decoded.source_rate, source_channels=decoded.source_channels, lossless=decoded.lossless,
            view_segments=viewed, decode_cpu_seconds=round(decode_cpu, 4), sha256=spans.sha256_of(task.path)))


class _GzipTFRecordSink(tfrecordio._TFRecordSink):  # noqa: SLF001 - Beam's own TFRecord framing
    """Beam's TFRecord sink with a chosen deflate level (Beam always uses zlib's default)."""

    def open(self, temp_path: str):
        raw = FileSystems.create(temp_path, self.mime_type, CompressionTypes.UNCOMPRESSED)
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)

    def close(self, file_handle) -> None:
        raw = file_handle.fileobj  # GzipFile.close() leaves a passed-in file object open
        file_handle.close()
        raw.close()


@beam.ptransform_fn
def WriteTFRecords(examples: beam.PCollection, file_path_prefix: str) -> beam.pvalue.PDone:  # noqa: N802
    """Serialized records -> ``<prefix>-SSSSS-of-NNNNN.gz``, gzip level GZIP_LEVEL."""
    return examples | beam.io.Write(_GzipTFRecordSink(
        file_path_prefix, beam.coders.BytesCoder(), file_name_suffix=".gz", num_shards=0,
        shard_name_template=None, compression_type=CompressionTypes.GZIP))
