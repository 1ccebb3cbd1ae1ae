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
