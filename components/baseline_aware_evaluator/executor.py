"""TFX's Evaluator, fed a baseline only when the baseline can read the candidate's examples.

The Resolver returns the last blessed model whatever its family: a 16 kHz VGG fed a CNN run's 22.05 kHz examples
crashes TFMA deep inside Beam. So the baseline is dropped (the gate then uses the absolute bar, and says so in one
line) when its input contract differs, or when it trained on any of the candidate's test tracks (model_tracks.py).
Both score the live test split: every span of the Examples' chain, retired tracks left out (span_views.py)."""
from __future__ import annotations

import os
from typing import Any

import tensorflow as tf
from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import artifact_utils, standard_component_specs

from components import contract, model_tracks, small_inputs, span_views
from config.settings import GATE_SPLIT

BASELINE_KEY = standard_component_specs.BASELINE_MODEL_KEY


def comparable_baseline(input_dict: dict[str, list[types.Artifact]]) -> tuple[list[types.Artifact], str]:
    """The baseline list to use (empty or one model) and the decision line to print."""
    baselines = input_dict.get(BASELINE_KEY) or []
    if not baselines:
        return [], "no blessed model yet: the gate uses the absolute bars"
    model = input_dict[standard_component_specs.MODEL_KEY][0]
    baseline = baselines[0]
    why_not = contract.baseline_decision(
        model.get_string_custom_property(contract.MODEL_PROPERTY),
        baseline.get_string_custom_property(contract.MODEL_PROPERTY), f"#{baseline.id}")
    if not why_not and baseline.id != model.id:
        why_not = model_tracks.baseline_decision(model_tracks.load(model.uri), model_tracks.load(baseline.uri),
                                                 f"#{baseline.id}")
    if why_not:
        return [], why_not
    return baselines, (f"comparing with the last blessed model #{baseline.id} (same input format, none of the "
                       "candidate's test tracks in its training data)")


class Executor(evaluator_executor.Executor):
    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        baselines, decision = comparable_baseline(input_dict)
        print(f"[baseline] {decision}", flush=True)
        input_dict = {**input_dict, BASELINE_KEY: baselines}
        if not baselines:
            input_dict.pop(BASELINE_KEY)
        examples = artifact_utils.get_single_instance(input_dict[standard_component_specs.EXAMPLES_KEY])
        evaluation = artifact_utils.get_single_uri(output_dict[standard_component_specs.EVALUATION_KEY])
        scratch = os.path.join(evaluation, ".live_views")  # where TFMA's workers read, local or not
        views = span_views.split_views(examples, GATE_SPLIT, scratch)
        input_dict[standard_component_specs.EXAMPLES_KEY] = views
        self._beam_pipeline_args = small_inputs.beam_args_for(
            self._beam_pipeline_args, small_inputs.split_bytes([v.uri for v in views], [GATE_SPLIT]))
        try:
            super().Do(input_dict, output_dict, exec_properties)
        finally:
            if tf.io.gfile.exists(scratch):
                tf.io.gfile.rmtree(scratch)
