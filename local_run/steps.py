"""The console's step lines: TFX's component log records turned into ``[step]`` lines, with a heartbeat."""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from local_run.console import RunConsole

HEARTBEAT_SECONDS = 30.0


class StepTracker(logging.Handler):
    """Turns TFX's component log records into console lines, with a heartbeat on long steps."""

    def __init__(self, console: RunConsole) -> None:
        super().__init__(level=logging.INFO)
        self.console = console
        self.current: Optional[str] = None
        self.started = 0.0
        self.outcome = ""  # how the current step ended, when not by executing
        self.steps: dict[str, dict] = {}  # component -> seconds and outcome, in order
        self._stop = threading.Event()
        threading.Thread(target=self._heartbeat, name="step-heartbeat", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Component ") and message.endswith(" is running."):
            self.current, self.started, self.outcome = message[len("Component "):-len(" is running.")], time.time(), ""
            print(f"[step] {self.current} ...", flush=True)
        elif message.startswith("A cached execution") and self.current:
            self.outcome = "reused from cache"
        elif message.startswith("Skipping execution for") and self.current:
            self.outcome = "skipped (its condition does not hold: the model was not blessed)"
        elif message.startswith("Component ") and message.endswith(" is finished.") and self.current:
            seconds = time.time() - self.started
            self.steps[self.current] = {"seconds": round(seconds, 1), "outcome": self.outcome or "executed"}
            how = self.outcome or f"done in {seconds:.0f} s"
            print(f"[step] {self.current}: {how}", flush=True)
            self.current = None

    def _heartbeat(self) -> None:
        while not self._stop.wait(5.0):
            quiet = time.time() - self.console.last_shown
            if self.current and quiet >= HEARTBEAT_SECONDS:
                print(f"[step] {self.current} still running ({time.time() - self.started:.0f} s)", flush=True)

    def close(self) -> None:
        self._stop.set()
        super().close()


def track_steps(console: RunConsole) -> StepTracker:
    """A StepTracker listening to absl (TFX's logger); the log file gets TFX's full story at INFO."""
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.INFO)
    tracker = StepTracker(console)
    logging.getLogger("absl").addHandler(tracker)
    return tracker


def stop_tracking(tracker: StepTracker) -> None:
    logging.getLogger("absl").removeHandler(tracker)
    tracker.close()
