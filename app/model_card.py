"""Which model answered: its family and held-out accuracy, from the MLflow model registry.

TF Serving reports only a version number, so the page finds the registry version tagged with it
(``serving_version``) and reads the family, split protocol and gate accuracy from its training run.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

HELD_OUT_SPLIT = "test"  # the split every reported accuracy is on (README: Splits)


@dataclasses.dataclass(frozen=True)
class ModelCard:
    serving_version: int
    family: str = ""
    clip_accuracy: Optional[float] = None
    clips: Optional[int] = None
    protocol: str = ""
    run_id: str = ""
    is_champion: bool = False
    note: str = ""  # why details are missing, when they are

    def summary(self) -> str:
        """One line for the page."""
        parts = [f"version {self.serving_version}"]
        if self.family:
            parts.append(self.family.upper())
        if self.clip_accuracy is not None:
            clips = f" over {self.clips} clips" if self.clips else ""
            parts.append(f"held-out clip accuracy {self.clip_accuracy:.1%}{clips} "
                         f"('{HELD_OUT_SPLIT}' split, {self.protocol or 'unknown'} protocol)")
        return " · ".join(parts)


def lookup(tracking_uri: str, serving_version: int) -> ModelCard:
    """The card of the registered model version pushed as SERVING_VERSION (never raises)."""
    from app.settings import short_uri
    from models import tracking  # mlflow only: no TensorFlow
    registered_model, alias = tracking.REGISTERED_MODEL, tracking.SERVING_ALIAS
    sqlite = tracking_uri.startswith("sqlite:///")  # sqlite:////abs/db or sqlite:///rel/db
    if sqlite and not os.path.exists(tracking_uri[len("sqlite:///"):]):  # opening it would create an empty store
        return ModelCard(serving_version, note=f"no MLflow store at {short_uri(tracking_uri)} (run `make run`, or "
                                               "start the page with --mlflow-uri)")
    try:
        from mlflow.tracking import MlflowClient
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        versions = [v for v in client.search_model_versions(f"name='{registered_model}'")
                    if v.tags.get("serving_version") == str(serving_version)]
        if not versions:
            return ModelCard(serving_version, note=f"version {serving_version} is not in the '{registered_model}' "
                                                   f"registry at {short_uri(tracking_uri)}")
        version = max(versions, key=lambda v: int(v.version))
        run = client.get_run(version.run_id)
        try:  # search results carry no aliases: ask for the alias itself
            is_champion = client.get_model_version_by_alias(registered_model, alias).version == version.version
        except Exception:  # noqa: BLE001 - no such alias yet
            is_champion = False
    except Exception as err:  # noqa: BLE001 - the card is optional; the page still answers
        return ModelCard(serving_version, note=f"MLflow at {short_uri(tracking_uri)} did not answer "
                                               f"({type(err).__name__}: {str(err).splitlines()[0][:200]})")
    metrics, tags = run.data.metrics, run.data.tags
    clips = metrics.get("candidate_clips")
    return ModelCard(serving_version, family=tags.get("model", ""),
                     clip_accuracy=metrics.get("candidate_clip_accuracy"),
                     clips=int(clips) if clips is not None else None, protocol=tags.get("split_protocol", ""),
                     run_id=version.run_id, is_champion=is_champion)
