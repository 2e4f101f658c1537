"""A model's input contract: what its example-reading signature can be fed.

Every model computes its features in-graph from the raw tf.Examples, so two models can be scored on the same
examples exactly when sample rate, segment length and label set agree. The Trainer records the contract on the
Model artifact; the gate compares a candidate only with a baseline whose contract is equal."""
from __future__ import annotations

from typing import Optional

from config.settings import PipelineConfig

MODEL_PROPERTY = "input_contract"


def input_contract(config: PipelineConfig) -> str:
    """``<rate>hz_<samples>samples_<n>genres:<sha>``: equal strings mean interchangeable inputs."""
    import hashlib
    genres = hashlib.sha256(",".join(config.genres).encode()).hexdigest()[:8]
    return f"{config.audio.sample_rate}hz_{config.audio.segment_samples}samples_{len(config.genres)}genres:{genres}"


def describe(contract: str) -> str:
    """A person's reading of a contract string (``16000 Hz, 48000-sample segments``)."""
    if not contract:
        return "an unknown input format (trained before contracts were recorded)"
    rate, _, rest = contract.partition("hz_")
    samples = rest.split("samples_")[0]
    return f"{rate} Hz, {samples}-sample segments"


def baseline_decision(candidate: Optional[str], baseline: Optional[str], baseline_name: str) -> Optional[str]:
    """None when the baseline can be compared with the candidate, else the one line that says why not."""
    if candidate and candidate == baseline:
        return None
    return (f"last blessed model {baseline_name} takes {describe(baseline or '')}, the candidate "
            f"{describe(candidate or '')}: not comparable on the same examples, so this run gates on the "
            "absolute bars only")
