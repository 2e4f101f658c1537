"""Which model the tagger picks from a serving directory."""
from __future__ import annotations

import pytest

from config.errors import UserError
from tagging.model import latest_version, saved_model, top_k
from tests.testkit.versions import fake_version


def test_newest_complete_version_is_chosen(tmp_path):
    fake_version(tmp_path, "100")
    fake_version(tmp_path, "20")
    fake_version(tmp_path, "300", complete=False)  # a push still being copied
    (tmp_path / "tmp-400").mkdir()
    assert latest_version(str(tmp_path)).version == "100"
    assert latest_version(str(tmp_path), "20").path == str(tmp_path / "20")


def test_missing_models_are_user_errors_naming_the_fix(tmp_path):
    with pytest.raises(UserError, match="does not exist") as err:
        latest_version(str(tmp_path / "nowhere"))
    assert "make run" in err.value.fix
    with pytest.raises(UserError, match="has no complete version"):
        latest_version(str(tmp_path))
    with pytest.raises(UserError, match="not a SavedModel"):
        saved_model(str(tmp_path))


def test_top_k_is_best_first_and_stable_on_ties():
    assert top_k(["a", "b", "c", "d"], [0.2, 0.4, 0.2, 0.2]) == [("b", 0.4), ("a", 0.2), ("c", 0.2)]


def test_mlflow_champion_resolves_to_its_pushed_folder_and_training_parameters(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from models import tracking
    from tagging.model import mlflow_champion

    fake_version(tmp_path / "serving", "1700000000")
    pushed = str(tmp_path / "serving" / "1700000000")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    experiment = client.create_experiment("tagging-test", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment)
    client.log_param(run.info.run_id, "audio.sample_rate", "16000")
    client.create_registered_model(tracking.REGISTERED_MODEL)
    version = client.create_model_version(tracking.REGISTERED_MODEL, source=pushed, run_id=run.info.run_id,
                                          tags={"serving_version": "1700000000", "serving_path": pushed})
    client.set_registered_model_alias(tracking.REGISTERED_MODEL, tracking.SERVING_ALIAS, version.version)
    ref, params = mlflow_champion(uri)
    assert (ref.path, ref.version) == (pushed, "1700000000")
    assert ref.source == f"mlflow:{tracking.REGISTERED_MODEL}@{tracking.SERVING_ALIAS}"
    assert params["audio.sample_rate"] == "16000"
    with pytest.raises(UserError, match="no model"):
        mlflow_champion(uri, alias="nobody")
