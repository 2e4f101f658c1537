"""The registered model as an MLflow pyfunc: the pushed SavedModel's ``serving_default``.

The ModelRegistrar logs this file as a model from code (``mlflow.pyfunc.log_model(
python_model=<this file>, artifacts={"saved_model": <pushed dir>})``), so
``mlflow.pyfunc.load_model("models:/genre-classifier@champion")`` works without this
project on the path: the file is copied into the logged model and imports only MLflow,
TensorFlow, NumPy and pandas. Input, one row per clip:

- a pandas DataFrame with columns ``waveform`` (mono float32 samples in [-1, 1]) and
  ``sample_rate`` (Hz; the model resamples in its graph), or
- a 1-D NumPy array: one clip at the pipeline's sample rate (``model_config["sample_rate"]``,
  set by the registrar from ``config.audio.sample_rate``).

Output: a DataFrame with ``genre`` and one probability column per genre (the model's own
``genres`` output names them), the clip-level answer TF Serving gives for the same clip.
"""
from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

def _clips(model_input, default_rate: int) -> list[tuple[np.ndarray, int]]:
    if isinstance(model_input, pd.DataFrame):
        missing = {"waveform", "sample_rate"} - set(model_input.columns)
        if missing:
            raise ValueError(f"input DataFrame lacks column(s) {sorted(missing)}; expected waveform, sample_rate")
        return [(np.asarray(w, dtype=np.float32).reshape(-1), int(r))
                for w, r in zip(model_input["waveform"], model_input["sample_rate"])]
    array = np.asarray(model_input, dtype=np.float32)
    if array.ndim == 1:
        return [(array, default_rate)]
    raise ValueError(f"expected a DataFrame (waveform, sample_rate) or a 1-D waveform, got shape {array.shape}")


class GenreSavedModel(PythonModel):
    def load_context(self, context) -> None:
        import tensorflow as tf

        self._model = tf.saved_model.load(context.artifacts["saved_model"])
        self._serve = self._model.signatures["serving_default"]
        self._rate = int((context.model_config or {})["sample_rate"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        import tensorflow as tf

        rows = []
        for waveform, rate in _clips(model_input, self._rate):
            out = self._serve(waveform=tf.constant(waveform), sample_rate=tf.constant(rate, tf.int32))
            genres = [g.decode() for g in out["genres"].numpy()]
            rows.append({"genre": out["genre"].numpy().decode(),
                         **{g: float(s) for g, s in zip(genres, out["scores"].numpy())}})
        return pd.DataFrame(rows)


mlflow.models.set_model(GenreSavedModel())
