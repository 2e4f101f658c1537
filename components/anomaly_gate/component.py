"""AnomalyGate: ExampleValidator (TFX 1.21) records anomalies but never stops a run; this gate fails it, listing
every anomaly, so Transform and Trainer never see invalid data."""
from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter

from components.anomaly_gate import executor


class AnomalyGateSpec(types.ComponentSpec):
    PARAMETERS = {}
    INPUTS = {"anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies)}
    OUTPUTS = {}


class AnomalyGate(base_component.BaseComponent):
    """Stops the pipeline on any data anomaly. Make downstream nodes depend on it."""

    SPEC_CLASS = AnomalyGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, anomalies: types.BaseChannel):
        super().__init__(spec=AnomalyGateSpec(anomalies=anomalies))
