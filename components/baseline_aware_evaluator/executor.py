"""TFX's Evaluator, fed a baseline only when the baseline can read the candidate's examples.

The latest-blessed-model Resolver returns the last blessed model whatever its family.
After `--model vgg` (16 kHz) the next CNN run (22.05 kHz) would get the VGG as baseline,
and TFMA would feed it 22.05 kHz examples and crash deep inside Beam. Here the baseline
is dropped when its input contract (components/contract.py) differs from the candidate's:
TFMA then ignores change thresholds (TFX treats a missing baseline as a rubber stamp)
and gates on the absolute bar, and the run prints that decision in one line. The same
happens when the baseline trained on any of the candidate's test tracks (pipeline/
model_tracks.py): its score there would be in-sample.
"""
from __future__ import annotations

from typing import Any

from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import standard_component_specs

from components import contract, model_tracks

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
        super().Do(input_dict, output_dict, exec_properties)
