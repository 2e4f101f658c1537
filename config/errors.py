"""Errors a user can cause and fix: what went wrong, where, and what to do. Runners show a UserError as one short
paragraph and exit non-zero, the traceback going only to the log file; anything else is "component X failed"."""
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
    """The UserError behind ``error``, through ``__cause__``/``__context__`` and the wrapping of Beam and TFX."""
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
    """A SystemExit (code 1): the paragraph for the console, the traceback in ``outputs/logs/<log_name>.log``."""
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
