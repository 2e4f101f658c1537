"""ModelRegistrar executor: an MLflow model version (a pyfunc holding the pushed SavedModel, pyfunc_model.py) and
the serving alias for the pushed model."""
from __future__ import annotations

import os
from importlib import metadata
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from config.settings import PipelineConfig
from models import tracking


PYFUNC_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyfunc_model.py")
LOGGED_MODEL_NAME = "genre_model"


def register_pushed_model(config: PipelineConfig, run_id: str, pushed_version: str, pushed_path: str) -> str:
    """Log the pushed SavedModel as a pyfunc model on its run, register it, move the alias to it."""
    import mlflow
    # Pinned explicitly: MLflow would otherwise load the model in a subprocess to infer them.
    requirements = [f"{name}=={metadata.version(name)}" for name in ("mlflow", "tensorflow", "numpy", "pandas")]
    with tracking.resume_run(config, run_id):
        mlflow.set_tags({"pushed": "true", "serving_version": pushed_version, "serving_path": pushed_path})
        logged = mlflow.pyfunc.log_model(name=LOGGED_MODEL_NAME, python_model=PYFUNC_FILE,
                                         artifacts={"saved_model": pushed_path}, pip_requirements=requirements,
                                         model_config={"sample_rate": config.audio.sample_rate},
                                         tags={"serving_version": pushed_version})
    client = MlflowClient()
    try:
        client.create_registered_model(tracking.REGISTERED_MODEL,
                                       description="Genre classifier pushed by the TFX pipeline.")
    except MlflowException as err:
        if "RESOURCE_ALREADY_EXISTS" not in str(err.error_code):
            raise
    version = client.create_model_version(tracking.REGISTERED_MODEL, source=logged.model_uri, run_id=run_id,
                                          tags={"serving_version": pushed_version, "serving_path": pushed_path},
                                          model_id=logged.model_id)
    client.set_registered_model_alias(tracking.REGISTERED_MODEL, tracking.SERVING_ALIAS, version.version)
    return version.version


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        config = PipelineConfig.from_json(exec_properties["pipeline_config_json"])
        model = artifact_utils.get_single_instance(input_dict["model"])
        pushed = artifact_utils.get_single_instance(input_dict["pushed_model"])
        run_id = model.get_string_custom_property(tracking.RUN_ID_PROPERTY)
        if not run_id:
            raise ValueError(f"Model {model.uri} carries no '{tracking.RUN_ID_PROPERTY}'; it was not trained by "
                             "TrackedTrainer, so there is no MLflow run to register.")
        pushed_version = pushed.get_string_custom_property("pushed_version")
        pushed_path = pushed.get_string_custom_property("pushed_destination")
        version = register_pushed_model(config, run_id, pushed_version, pushed_path)
        print(f"[registry] {tracking.REGISTERED_MODEL} version {version} -> alias '{tracking.SERVING_ALIAS}' "
              f"(TF Serving version {pushed_version} at {pushed_path})", flush=True)
