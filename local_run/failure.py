"""How a run ends when it fails: one short paragraph on the console (a UserError reads as its fix), its MLflow runs
and MLMD executions marked failed, now or at the next run's start."""
from __future__ import annotations

import os
import sys
import traceback
from typing import Optional

from config.errors import UserError, find_user_error
from config.settings import PipelineConfig


class RunFailed(SystemExit):
    """The run stopped; ``paragraph`` is what the console showed. Exit code 1 (130 on Ctrl-C)."""

    def __init__(self, paragraph: str, code: int = 1) -> None:
        super().__init__(code)
        self.paragraph = paragraph


def not_started(error: UserError) -> RunFailed:
    """A run refused before it starts (flags, data root, the lock): its paragraph on stderr, and the exit."""
    paragraph = f"Run not started: {error.paragraph()}"
    print(paragraph, file=sys.stderr, flush=True)
    return RunFailed(paragraph)


def error_detail(error: BaseException) -> str:
    """The error's last line, at most 300 characters: a Beam- or TensorFlow-wrapped message repeats its cause's
    traceback above it, which belongs in the log."""
    return (str(error).strip().splitlines() or [""])[-1][:300]


def failure_paragraph(error: BaseException, step: Optional[str], log_path: str) -> str:
    """One short paragraph: what failed, where, the fix, and where the full story is."""
    where = f" in {step}" if step else ""
    user = find_user_error(error)
    if isinstance(error, KeyboardInterrupt):
        text = (f"Interrupted{where}. Run the same command again: the components that finished are "
                "reused from cache.")
    elif user is not None:
        text = f"Run stopped{where}: {user.paragraph()}"
    else:
        text = (f"Run failed{where}: {type(error).__name__}: {error_detail(error)}\nThis is not a known data or "
                "settings problem; the traceback is in the log (or re-run with --verbose).")
    return f"{text}\nLog: {log_path}"


def close_orphans(config: PipelineConfig) -> None:
    """Records a killed earlier run left open: MLflow runs -> KILLED, MLMD executions -> FAILED."""
    from models import tracking
    for run_id in tracking.close_orphaned_runs(config):
        print(f"[run] MLflow run {run_id} was left RUNNING by a run that was killed: marked KILLED", flush=True)
    if os.path.exists(config.metadata_path):
        from pipeline.run_record import fail_orphaned_executions, open_store
        count = fail_orphaned_executions(open_store(config.metadata_path))
        if count:
            print(f"[run] {count} component execution(s) left RUNNING by a killed run: marked FAILED in MLMD",
                  flush=True)


def mark_mlflow_failed(config: PipelineConfig, started: float, step: Optional[str], interrupted: bool) -> None:
    """This run's MLflow runs -> FAILED (KILLED on Ctrl-C), naming the step; never hides the failure itself."""
    try:
        from models import tracking
        for run_id in tracking.mark_failed(config, int(started * 1000), step or "the run", interrupted):
            print(f"[run] MLflow run {run_id} marked {'KILLED' if interrupted else 'FAILED'} "
                  f"({step or 'the run'})", flush=True)
    except Exception:  # noqa: BLE001 - the original failure is what the user must see
        traceback.print_exc()
