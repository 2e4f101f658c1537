"""The registered model as an MLflow pyfunc: the pushed SavedModel's ``serving_default``.

Logged as a model from code, so it loads without this project on the path: import only MLflow, TensorFlow, NumPy
and pandas. Input: a DataFrame of ``waveform`` (mono float32 in [-1, 1]) and ``sample_rate``, or one 1-D clip at
``model_config["sample_rate"]``. Output: ``genre`` and one probability column per genre, as TF Serving answers."""
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
