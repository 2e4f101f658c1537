"""The run summary's account of model selection: what the Tuner chose and every trial's fold score, read from
this run's Tuner artifacts so a Tuner taken from the cache reports the search that made its choice."""
from __future__ import annotations

import json
import os
from typing import Any

from models import hyperparameters
from pipeline.run_record import RunRecord

TUNER = "Tuner"


def _only_file(uri: str) -> Any:
    [name] = os.listdir(uri)
    with open(os.path.join(uri, name)) as f:
        return json.load(f)


def tuning_summary(record: RunRecord) -> dict[str, Any]:
    """``{"tuning": {"chosen": {...}, "trials": [{"trial", "score", "values"}, ...]}}``, best first; {} without
    a Tuner in the run."""
    best = record.output(TUNER, "HyperParameters")
    results = record.output(TUNER, "TunerResults")
    if best is None or results is None:
        return {}
    # Numbered from 1, as the [tune] lines number them (KerasTuner's trial ids count from 0).
    trials = [{"trial": int(row.pop("trial_id")) + 1, "score": row.pop("score"), "values": hyperparameters.chosen(row)}
              for row in _only_file(results.uri)]
    return {"tuning": {"chosen": hyperparameters.chosen(_only_file(best.uri)), "trials": trials}}


def tuning_lines(summary: dict[str, Any]) -> list[str]:
    """The summary's lines for the search, or none."""
    tuning = summary.get("tuning")
    if not tuning:
        return []
    lines = [f"tuned: {hyperparameters.describe(tuning['chosen'])} (chosen from {len(tuning['trials'])} trials by "
             "fold clip accuracy over the train and eval clips; the preset stays unless a trial leads it by more "
             f"than {hyperparameters.PRESET_MARGIN:.0%})"]
    lines += [f"  trial {t['trial']}: {t['score']:.3f} {hyperparameters.describe(t['values'])}"
              for t in tuning["trials"]]
    return lines
