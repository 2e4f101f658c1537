"""The genre pipeline: one `create_pipeline()` for the local and the Kubeflow runner.

    AudioExampleGen -> StatisticsGen -> ExampleValidator (ImportSchemaGen) -> AnomalyGate
      -> Transform -> [--tune: Tuner] -> Trainer (warm-started from the champion: a second Resolver, unless
         config.train.warm_start_epochs is 0) -> Evaluator (TFMA, against the last blessed model, which a
         Resolver finds unless config.gate.compare_to_last_blessed is off)
      -> ClipEvaluator (clip-level gate; the blessing that counts)
      -> [Cond blessed] Pusher -> ModelRegistrar (MLflow)

Module code is referenced by import path, so the same definition runs wherever the project is importable (this
checkout, or the Kubeflow image)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import tensorflow_model_analysis as tfma
from google.protobuf import wrappers_pb2
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components import code_fingerprint
from components.anomaly_gate.component import AnomalyGate
from components.audio_example_gen.component import AudioExampleGen
from components.audio_example_gen.spans import RETIRED
from components.baseline_aware_evaluator.component import BaselineAwareEvaluator
from components.bounded_transform.component import BoundedTransform
from components.clip_evaluator.component import ClipEvaluator
from components.model_registrar.component import ModelRegistrar
from components.small_inputs import StatisticsGenExecutor
from components.tracked_trainer.base_model import WarmStartModelStrategy
from components.tracked_trainer.component import TrackedTrainer
from config.settings import (GATE_SPLIT, INGESTION_SECTIONS, PROJECT_ROOT, SPLITS, TRAINING_SECTIONS,
                             TRANSFORM_SECTIONS, TUNING_SECTIONS, PipelineConfig)
from models.warm_start import fit_key
from pipeline.beam_args import for_tfx
from pipeline.schema import schema_file as raw_schema_file

STAGES = ("validate", "train", "push")
PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.training.run_fn"
TUNER_FN = "models.tuning.tuner_fn"
EVAL_SIGNATURE = "from_examples"
CLIP_EVALUATOR_ID = "ClipEvaluator"
RESOLVER_ID = "latest_blessed_model_resolver"
WARM_START_RESOLVER_ID = "warm_start_model_resolver"
TOP1_PREFIX = "top1_"  # TFMA's per-genre metrics: top1_precision, top1_recall


def transform_code_fingerprint(root: Path = PROJECT_ROOT) -> str:
    """A hash of the code Transform runs (PREPROCESSING_FN's imports), for its custom_config: TFX's cache cannot see
    code named by import path, and an edit to a model then re-runs the Trainer, not Transform."""
    return code_fingerprint.function_fingerprint(PREPROCESSING_FN, root)


def model_code_fingerprint(*function_paths: str, root: Path = PROJECT_ROOT) -> str:
    """A hash of the code the Trainer (RUN_FN) or the Tuner (RUN_FN, TUNER_FN: a trial trains as the Trainer does)
    runs: every model file (any family may train), the feature code and the functions' imports."""
    files = [path for path in (root / "models").glob("*.py") if not code_fingerprint.is_test_file(path, root)]
    for function_path in (PREPROCESSING_FN, *function_paths):
        files += code_fingerprint.import_closure(code_fingerprint.function_module(function_path), root)
    return code_fingerprint.files_fingerprint(files, root)


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """TFMA: accuracy with an absolute bar and a no-regression bar, per-genre top-1 metrics, slices by genre."""
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.gate.min_accuracy}))
    if config.gate.compare_to_last_blessed:
        accuracy_threshold.change_threshold.CopyFrom(tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -config.gate.max_accuracy_drop - 1e-9}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=EVAL_SIGNATURE, label_key="label", prediction_key="probabilities")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["genre"])],
        # The Keras model was compiled with a one-hot loss; TFMA gets integer labels, so only
        # the metrics listed here are computed, not the model's compiled ones.
        options=tfma.proto.config_pb2.Options(include_default_metrics=wrappers_pb2.BoolValue(value=False)),
        metrics_specs=[
            tfma.MetricsSpec(metrics=[
                # The bar applies to the whole test split; genre slices are reported, not gated.
                tfma.MetricConfig(class_name="SparseCategoricalAccuracy", per_slice_thresholds=[
                    tfma.proto.config_pb2.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=accuracy_threshold)]),
                tfma.MetricConfig(class_name="ExampleCount"),
                tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot")]),
            # Top-1 precision and recall per genre: with top_k 1 and threshold 0, genre c counts as predicted exactly
            # when it is the argmax. The explicit threshold matters: TFMA's default (-inf) counts every segment as
            # predicted c when c is never the argmax (recall 1.0); pipeline/eval_config_test.py checks both.
            tfma.MetricsSpec(
                binarize=tfma.proto.config_pb2.BinarizationOptions(
                    class_ids={"values": list(range(len(config.genres)))}),
                metrics=[tfma.MetricConfig(class_name=name, config=json.dumps(
                    {"top_k": 1, "thresholds": [0.0], "name": TOP1_PREFIX + name.lower()}))
                         for name in ("Precision", "Recall")])])


def blessed_models() -> dict[str, tfx.dsl.Channel]:
    """A resolver's ``model`` and ``model_blessing`` inputs: only ClipEvaluator's blessing marks a model as released;
    TFMA's alone does not."""
    return dict(model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
                model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                               producer_component_id=CLIP_EVALUATOR_ID, output_key="blessing"))


def create_pipeline(config: PipelineConfig, data_root: str, *, until: str = "push",
                    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
                    enable_cache: bool = True) -> tfx.dsl.Pipeline:
    """Wire the components. ``until`` stops after data validation or training (tests, dry runs)."""
    if until not in STAGES:
        raise ValueError(f"until must be one of {STAGES}, not {until!r}")
    config_json = config.to_json()
    example_gen = AudioExampleGen(input_base=data_root, pipeline_config_json=config.to_json(INGESTION_SECTIONS))
    # The curated schema, or one derived from it for a label set other than GTZAN's (pipeline/schema.py).
    schema_gen = tfx.components.ImportSchemaGen(schema_file=raw_schema_file(config))
    # With the schema, TFDV treats audio as raw bytes and skips top-k counts of them.
    # A run's Examples are a span: what changed since the last run (components/audio_example_gen/spans.py), so
    # StatisticsGen and the validation see the new span; its tombstones (RETIRED) are copies of earlier records.
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"],
                                                  schema=schema_gen.outputs["schema"], exclude_splits=[RETIRED])
    statistics_gen.executor_spec = executor_spec.BeamExecutorSpec(StatisticsGenExecutor)  # in-process when small
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"], exclude_splits=[RETIRED])
    anomaly_gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"])
    components = [example_gen, statistics_gen, schema_gen, example_validator, anomaly_gate]

    if until != "validate":
        transform = BoundedTransform(
            examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
            preprocessing_fn=PREPROCESSING_FN,
            splits_config=tfx.proto.SplitsConfig(analyze=["train"], transform=list(SPLITS)),
            # StatisticsGen has the raw statistics already; Transform's own pre- and post-transform
            # statistics would make Beam's DirectRunner hold every transformed example in memory.
            disable_statistics=True,
            custom_config={"pipeline_config": config.to_json(TRANSFORM_SECTIONS), "code": transform_code_fingerprint()})
        transform.add_upstream_node(anomaly_gate)  # anomalies stop the run before any feature work
        components += [transform]
        # What the Tuner's trials and the Trainer both train on.
        training_inputs = dict(examples=transform.outputs["transformed_examples"],
                               transform_graph=transform.outputs["transform_graph"],
                               schema=schema_gen.outputs["schema"], train_args=tfx.proto.TrainArgs(splits=["train"]),
                               eval_args=tfx.proto.EvalArgs(splits=["eval"]))
        best_hyperparameters = None
        if config.tune.enabled:
            tuner = tfx.components.Tuner(
                tuner_fn=TUNER_FN, **training_inputs,
                custom_config={"pipeline_config": config.to_json(TUNING_SECTIONS), "code": model_code_fingerprint(RUN_FN, TUNER_FN)})
            best_hyperparameters = tuner.outputs["best_hyperparameters"]
            components.append(tuner)
        base_model = None
        if config.train.warm_start_epochs:  # the champion of this family and input, unless it trained on these examples
            warm_start = tfx.dsl.Resolver(strategy_class=WarmStartModelStrategy, config={"key": fit_key(config)},
                                          **blessed_models(), examples=transform.outputs["transformed_examples"]
                                          ).with_id(WARM_START_RESOLVER_ID)
            base_model = warm_start.outputs["model"]
            components.append(warm_start)
        trainer = TrackedTrainer(
            run_fn=RUN_FN, **training_inputs, hyperparameters=best_hyperparameters,  # None: the preset
            base_model=base_model,
            # Gate settings are not the Trainer's business: changing a bar re-runs the gate only.
            custom_config={"pipeline_config": config.to_json(TRAINING_SECTIONS), "code": model_code_fingerprint(RUN_FN)})
        components.append(trainer)

    if until == "push":
        baseline = None
        if config.gate.compare_to_last_blessed:
            model_resolver = tfx.dsl.Resolver(strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
                                              **blessed_models()).with_id(RESOLVER_ID)
            baseline = model_resolver.outputs["model"]
            components.append(model_resolver)
        evaluator = BaselineAwareEvaluator(
            examples=example_gen.outputs["examples"], model=trainer.outputs["model"], baseline_model=baseline,
            eval_config=eval_config(config), example_splits=[GATE_SPLIT])
        clip_evaluator = ClipEvaluator(
            examples=example_gen.outputs["examples"], model=trainer.outputs["model"], baseline_model=baseline,
            tfma_blessing=evaluator.outputs["blessing"], evaluation=evaluator.outputs["evaluation"],
            pipeline_config_json=config_json).with_id(CLIP_EVALUATOR_ID)
        components += [evaluator, clip_evaluator]
        with tfx.dsl.Cond(clip_evaluator.outputs["blessing"].future()[0].custom_property("blessed") == 1):
            pusher = tfx.components.Pusher(
                model=trainer.outputs["model"], model_blessing=clip_evaluator.outputs["blessing"],
                push_destination=tfx.proto.PushDestination(
                    filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_dir)))
            registrar = ModelRegistrar(
                model=trainer.outputs["model"], pushed_model=pusher.outputs["pushed_model"],
                pipeline_config_json=config_json)
        components += [pusher, registrar]

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root, components=components,
        enable_cache=enable_cache, metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=for_tfx(config.beam_args))
