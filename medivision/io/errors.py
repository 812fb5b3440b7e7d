"""How every command ends on a user's mistake: one line naming the thing and the fix, and exit status 1.

A wrong path, layout or value, an unreadable or refused file, a bad device, missing weights: the layers
below raise USER_ERRORS with a message that names the file or config key and the fix, and the command's
entry point, wrapped in `one_line_errors`, prints that message instead of a traceback. Anything else is a
bug and keeps its traceback. `HYDRA_FULL_ERROR=1` (Hydra's own switch, honoured by every command, Hydra or
not) shows the full traceback of user errors too.

This sits in io, the lowest layer, because it belongs to every command and to no layer's job in
particular: here each command can import it and it imports nothing of the package.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from hydra.errors import InstantiationException

# The project's own errors (medivision.data.sources.DataError, ...) are ValueErrors; UnpicklingError is what
# torch.load(weights_only=True) raises for a file that holds code.
USER_ERRORS = (ValueError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
               pickle.UnpicklingError)

# What the [train] extra adds to the core install (pyproject.toml); the commands other than enhance need them.
TRAIN_PACKAGES = ("torch", "torchvision", "lightning", "torchmetrics", "wandb", "matplotlib", "onnx", "scipy")
TRAIN_EXTRA = "pip install 'medivision[train]'"

P = ParamSpec("P")
R = TypeVar("R")


def one_line_errors(command: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a command's entry point (below `@hydra.main`, which looks through the wrapper): a user error
    raised inside it, also one that Hydra's `instantiate` wrapped, prints `<command>: <message>` as one line
    on stderr and ends the process with exit status 1 (SystemExit, which Hydra lets through untouched)."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except Exception as error:
                cause = user_error(error)
                if cause is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                print(f"{command}: {one_line(cause)}", file=sys.stderr)
                raise SystemExit(1) from None

        return run

    return decorate


def user_error(error: BaseException) -> BaseException | None:
    """The user error behind `error` (Hydra's instantiate wraps what a constructor raised), or None for a bug."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error if isinstance(error, USER_ERRORS) else None


def one_line(error: BaseException) -> str:
    """The error's message with its lines joined, so that nothing of it hides below the first line."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__


@contextlib.contextmanager
def train_extra(command: str):
    """Around a command's imports: where a package of the [train] extra is missing (a core install), the command
    ends with one line naming the extra instead of an import traceback."""
    try:
        yield
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in TRAIN_PACKAGES:
            raise
        sys.exit(f"{command}: needs PyTorch and the rest of the [train] extra ({error.name} is not installed): "
                 f"{TRAIN_EXTRA}")
