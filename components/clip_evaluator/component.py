"""ClipEvaluator: TFMA scores segments, but a listener (and the serving signature) judges a whole clip.

Scores candidate and last blessed model on the test split at clip level (mean segment probabilities per track),
gates on an absolute bar and no regression, and combines that with TFMA's blessing into the one ModelBlessing that
Pusher and the next run's resolver read; logs both to the model's MLflow run."""
from __future__ import annotations

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.clip_evaluator import executor


class ClipEvaluatorSpec(types.ComponentSpec):
    PARAMETERS = {"pipeline_config_json": ExecutionParameter(type=str)}
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "model": ChannelParameter(type=standard_artifacts.Model),
        "baseline_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
        "tfma_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation)}
    OUTPUTS = {"blessing": ChannelParameter(type=standard_artifacts.ModelBlessing)}


class ClipEvaluator(base_component.BaseComponent):
    SPEC_CLASS = ClipEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel, tfma_blessing: types.BaseChannel,
                 evaluation: types.BaseChannel, pipeline_config_json: str,
                 baseline_model: Optional[types.BaseChannel] = None):
        super().__init__(spec=ClipEvaluatorSpec(
            examples=examples, model=model, baseline_model=baseline_model, tfma_blessing=tfma_blessing,
            evaluation=evaluation, pipeline_config_json=pipeline_config_json,
            blessing=types.Channel(type=standard_artifacts.ModelBlessing)))
