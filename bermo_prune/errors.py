"""Errors that are the user's to fix: the CLI prints them on one line and exits with code 2."""

from __future__ import annotations


class InputError(Exception):
    """Bad input (recipe, data, model path): a message that names the file, key or line."""


class RecipeError(InputError):
    """One or more problems in a recipe; ``problems`` holds each one, the message joins them."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"{source}: {self.problems[0]}"
        else:
            message = f"{source}: {len(self.problems)} problems: " + "; ".join(self.problems)
        super().__init__(message)


class DataError(InputError):
    """Bad data: the message names the file and, where there is one, the line."""


class RunInterrupted(Exception):
    """SIGTERM or SIGINT stopped a run at a step boundary, after a checkpoint was written (CLI exit code 4)."""

    def __init__(self, signal_name: str, step: int, run_dir: str | None) -> None:
        self.signal_name, self.step, self.run_dir = signal_name, step, run_dir
        if run_dir is None:
            message = f"stopped by {signal_name} at step {step} (no run directory: nothing was saved)"
        else:
            message = f"{run_dir}: stopped by {signal_name} at step {step}; checkpoint written, continue with --resume"
        super().__init__(message)
