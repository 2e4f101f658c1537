"""Errors a user can cause and fix, raised by any part of the pipeline.

A :class:`UserError` carries the three things the person at the console needs: what
went wrong, where (the file, flag or component), and what to do about it. Runners show
it as one short paragraph and exit non-zero; the traceback goes only to the log file.
Components raise it (or a subclass) from their executors; anything else is reported as
"component X failed" with the log file's path.
"""
from __future__ import annotations


class UserError(Exception):
    """A failure the user can act on: ``problem`` in ``where``; ``fix`` says how."""

    def __init__(self, problem: str, *, where: str = "", fix: str = "") -> None:
        self.problem = problem.strip()
        self.where = where.strip()
        self.fix = fix.strip()
        super().__init__(self.paragraph())

    def paragraph(self) -> str:
        """The one paragraph a runner prints: problem, place, fix."""
        text = self.problem
        if self.where:
            stem, dot = (text[:-1], ".") if text.endswith(".") else (text, "")
            text = f"{stem} ({self.where}){dot}"
        if self.fix:
            text += f"\nFix: {self.fix}"
        return text


def find_user_error(error: BaseException) -> "UserError | None":
    """The UserError behind ``error``, following ``__cause__``/``__context__`` and Beam's wrapping.

    Beam re-raises a DoFn's exception wrapped in its own types, and TFX's launcher may
    wrap an executor's; the chain still leads to the original, or its text does.
    """
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, UserError):
            return current
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        stack.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
    return None


def cli_failure(paragraph: str, error: BaseException, log_name: str) -> SystemExit:
    """A SystemExit (code 1) for a command-line tool: the paragraph for the console, the
    traceback in ``outputs/logs/<log_name>.log`` whose path the paragraph ends with."""
    import os
    import time
    import traceback

    from config.settings import DEFAULT_OUTPUT_DIR

    log_dir = DEFAULT_OUTPUT_DIR / "logs"
    os.makedirs(log_dir, exist_ok=True)
    log_path = log_dir / f"{log_name}.log"
    with open(log_path, "a") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n{paragraph}\n")
        traceback.print_exception(type(error), error, error.__traceback__, file=log)
    return SystemExit(f"{paragraph}\nLog: {log_path}")
