"""Which model tags, and how RunInference calls it.

The model is called through its ``serving_default`` signature, so a row holds exactly what TF Serving would
answer; Beam's Keras handler cannot call a named two-input signature. Loaded models are kept per process:
RunInference's shared handle is keyed anew per pipeline, so a Dask worker would reload it for every job.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import os
import threading
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from config.errors import UserError
from config.settings import AudioConfig, PipelineConfig
from pipeline.worker_heap import reuse_freed_memory
from tagging import files as files_lib

SIGNATURE = "serving_default"
MODEL_REJECTED = "model_rejected"  # quarantine reason: the signature answered INVALID_ARGUMENT
TOP_K = 3
KEPT_MODELS = 2  # SavedModels a process keeps loaded (a long-lived worker may tag with several versions)


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """A SavedModel directory and the version name its rows carry."""

    path: str
    version: str
    source: str  # "serving-dir", "saved-model" or "mlflow:<name>@<alias>"


def _is_complete(version_dir: str) -> bool:
    """A pushed version is usable once saved_model.pb and, if it has variables, their index exist."""
    if not FileSystems.exists(os.path.join(version_dir, "saved_model.pb")):
        return False
    variables = os.path.join(version_dir, "variables")
    return not FileSystems.exists(variables) or FileSystems.exists(os.path.join(variables, "variables.index"))


def latest_version(serving_dir: str, version: Optional[str] = None) -> ModelRef:
    """The newest complete ``<serving_dir>/<number>/`` (or the one asked for)."""
    from tfx.dsl.io import fileio  # lists local and remote folders alike
    if not fileio.exists(serving_dir):
        raise UserError(f"No pushed model: the serving directory {serving_dir} does not exist.",
                        where="tagging --serving-dir",
                        fix="run the pipeline to push a model (make run), pass --serving-dir DIR, --model-dir DIR, "
                            "or --champion with --mlflow-uri URI.")
    numbers = sorted((int(e.rstrip("/")) for e in fileio.listdir(serving_dir) if e.rstrip("/").isdigit()), reverse=True)
    for number in (n for n in numbers if version is None or str(n) == str(version)):
        path = os.path.join(serving_dir, str(number))
        if _is_complete(path):
            return ModelRef(path=path, version=str(number), source="serving-dir")
    raise UserError(f"The serving directory {serving_dir} has no complete version"
                    f"{'' if version is None else f' {version}'} (<dir>/<number>/saved_model.pb).",
                    where="tagging --serving-dir", fix="push a model first (make run) or name another --version.")


def saved_model(path: str) -> ModelRef:
    """A SavedModel directory given directly; its version is its folder name."""
    if not _is_complete(path):
        raise UserError(f"{path} is not a SavedModel directory (no saved_model.pb).", where="tagging --model-dir",
                        fix="pass a version folder of the serving directory, e.g. outputs/serving/genre/<version>.")
    return ModelRef(path=path, version=os.path.basename(path.rstrip("/")), source="saved-model")


def mlflow_champion(tracking_uri: str, alias: Optional[str] = None) -> tuple[ModelRef, dict]:
    """The registry's alias (its pushed folder if still there, else its logged SavedModel) and its training run's
    parameters, so the tagger decodes audio the way that model was trained."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from models import tracking
    name, alias = tracking.REGISTERED_MODEL, alias or tracking.SERVING_ALIAS
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException as err:
        raise UserError(f"MLflow at {tracking_uri} has no model {name!r} with alias {alias!r}: {err.message}",
                        where="tagging --champion",
                        fix="push a model first (make run) or check --mlflow-uri.") from None
    params = client.get_run(version.run_id).data.params if version.run_id else {}
    pushed = version.tags.get("serving_path", "")
    path = pushed if pushed and _is_complete(pushed) else mlflow.artifacts.download_artifacts(version.source)
    label = version.tags.get("serving_version") or f"mlflow-{version.version}"
    return ModelRef(path=path, version=label, source=f"mlflow:{name}@{alias}"), params


def fingerprint(model: ModelRef) -> str:
    """sha256 of what makes the model's answers: saved_model.pb and the variables' index, which holds a checksum of
    every tensor (or the zero-shot weights file): equal for one model wherever it was pushed or downloaded."""
    digest = hashlib.sha256()
    parts = [os.path.join(model.path, "saved_model.pb"), os.path.join(model.path, "variables", "variables.index")]
    for part in parts if FileSystems.exists(parts[0]) else [model.path]:
        if FileSystems.exists(part):
            with FileSystems.open(part, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                while block := f.read(1 << 20):
                    digest.update(block)
    return digest.hexdigest()


_loaded: "collections.OrderedDict[tuple[str, Any], Any]" = collections.OrderedDict()
_load_lock = threading.Lock()
loads: collections.Counter = collections.Counter()  # path -> model loads in this process


def cached_model(key: tuple[str, Any], tf_threads: Optional[int], load: Callable[[], Any]) -> Any:
    """``load()``'s model for KEY (its path first), once per process (module docstring). Before a load, freed
    memory is reused (a Dask worker's malloc setting doubles a model call's cost, pipeline/worker_heap.py) and
    ``tf_threads`` sizes TF's pools so N workers on N cores never oversubscribe."""
    with _load_lock:
        if key in _loaded:
            _loaded.move_to_end(key)
            return _loaded[key]
        import tensorflow as tf
        reuse_freed_memory()
        if tf_threads:
            with contextlib.suppress(RuntimeError):  # TF already running (in-memory runner): keep its pools
                tf.config.threading.set_intra_op_parallelism_threads(tf_threads)
                tf.config.threading.set_inter_op_parallelism_threads(tf_threads)
        _loaded[key] = loaded = load()
        loads[key[0]] += 1
        while len(_loaded) > KEPT_MODELS:
            _loaded.popitem(last=False)
        return loaded


def unload_models() -> None:
    """Forget this process's loaded models (the next job loads its model again, as a new process would)."""
    with _load_lock:
        _loaded.clear()


class GenreSignatureHandler(ModelHandler[Sequence[str], PredictionResult, Any]):
    """RunInference handler: each example is one file, ``(path, rel_path)``, decoded here. A result's example is
    the clip's metadata (or quarantine reason); its inference the answer, or MODEL_REJECTED and a detail."""

    def __init__(self, model: ModelRef, audio: AudioConfig, tf_threads: Optional[int] = None):
        super().__init__()
        self._model, self._audio, self._tf_threads = model, audio, tf_threads

    def load_model(self) -> Any:
        """The SavedModel, with the serving signature the tagger calls."""
        path = self._model.path

        def load() -> Any:
            import tensorflow as tf
            loaded = tf.saved_model.load(path)
            if SIGNATURE not in loaded.signatures:
                raise UserError(f"The SavedModel at {path} has no {SIGNATURE!r} signature "
                                f"(it has {sorted(loaded.signatures)}).", where="tagging model",
                                fix="tag with a model the pipeline pushed (docs/contracts.md).")
            return loaded
        # saved_model.pb's size and time in the key: a folder overwritten in place is loaded anew
        found = FileSystems.match([os.path.join(path, "saved_model.pb")])[0].metadata_list
        stamp = (found[0].size_in_bytes, found[0].last_updated_in_seconds) if found else ()
        return cached_model((path, stamp), self._tf_threads, load)

    def run_inference(self, batch: Sequence[Sequence[str]], model: Any,
                      inference_args: Optional[dict[str, Any]] = None) -> Iterable[PredictionResult]:
        signature = model.signatures[SIGNATURE]
        for clip in files_lib.decode_ahead(batch, self._audio):
            meta = {k: v for k, v in clip.items() if k != "waveform"}
            yield PredictionResult(meta, None if "reason" in clip else self._classify(signature, clip),
                                   self._model.version)

    def _classify(self, signature: Any, clip: dict[str, Any]) -> dict[str, Any]:
        import tensorflow as tf
        try:
            out = signature(waveform=tf.constant(clip["waveform"], tf.float32),
                            sample_rate=tf.constant(clip["sample_rate"], tf.int32))
        except tf.errors.InvalidArgumentError as err:
            from serving.client import readable_error  # the model's sentence, as the server would answer it
            return {"reason": MODEL_REJECTED, "detail": readable_error(err.message)[:500]}
        scores = out["scores"].numpy().astype(np.float64)
        genres = [g.decode() for g in out["genres"].numpy()] if "genres" in out else list(PipelineConfig().genres)
        return {"genre": out["genre"].numpy().decode(), "scores": scores.tolist(), "genres": genres,
                "segments": int(out["segment_scores"].shape[0])}

    def get_num_bytes(self, batch: Sequence[Sequence[str]]) -> int:
        return sum(len(path) for path, _ in batch)  # references only: the audio is read in run_inference

    def get_metrics_namespace(self) -> str:
        return "GenreTagger"


def top_k(genres: Sequence[str], scores: Sequence[float], k: int = TOP_K) -> list[tuple[str, float]]:
    """The k best (genre, score) pairs, best first; ties keep the genre order (as the client's ranked())."""
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return [(genres[i], float(scores[i])) for i in order]
