"""The pushed models the serving benchmarks measure: the newest version, its Transform output, and re-exports with
each graph of models/signatures.GRAPHS. Shared by serving and tagging, so neither imports the other."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from config.settings import PipelineConfig
from serving.layout import pushed_versions

GRAPH_NAMES = {"keras": "training graph's layers", "serving": "ServingBody"}


def newest_version(model_dir: str, model_name: str) -> int:
    versions = pushed_versions(model_dir)
    if not versions:
        raise SystemExit(f"No pushed model {model_name!r} under {model_dir} "
                         f"(expected {model_dir}/<version>/saved_model.pb). Run the pipeline first (make run) so the "
                         "Pusher writes one, or pass --model-dir DIR.")
    return versions[-1]


def load_pushed(model_dir: str, transform_dir: Optional[str], pipeline_root: str = ""):
    """(Keras model with the transform graph attached, its family's config, version dir) of MODEL_DIR's newest; its
    Transform output is TRANSFORM_DIR, else the newest run under PIPELINE_ROOT."""
    import tensorflow_transform as tft
    import tf_keras as keras

    from models import signatures

    if not transform_dir:
        base = Path(pipeline_root) / "Transform" / "transform_graph"
        runs = sorted(int(p.name) for p in base.glob("*") if p.name.isdigit())
        if not runs:
            raise SystemExit(f"No Transform output under {base}: run the pipeline first (make run ARGS=\"--model "
                             "musicnn\") or pass --transform-dir DIR.")
        transform_dir = str(base / str(runs[-1]))
    version_dir = os.path.join(model_dir, str(newest_version(model_dir, "genre")))
    model = keras.models.load_model(version_dir, compile=False)
    signatures.attach_transform(model, tft.TFTransformOutput(transform_dir))
    return model, PipelineConfig().with_model(model.name), version_dir


def export_graphs(model, config: PipelineConfig, out: str) -> dict[str, str]:
    """``model`` exported with every graph of signatures.GRAPHS as ``OUT/<graph>/1/``; graph -> base dir."""
    from models import signatures

    bases = {graph: os.path.join(out, graph) for graph in GRAPH_NAMES}  # signatures.GRAPHS, the training graph's first
    for graph, base in bases.items():
        model.save(os.path.join(base, "1"), save_format="tf", save_traces=False,
                   signatures=signatures.make_signatures(model, config, graph))
    return bases
