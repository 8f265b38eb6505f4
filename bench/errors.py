"""Errors that `bench` raises on purpose.

Every error a user can cause (a bad model file, a malformed suite, a wrong input) is a
`BenchError` whose message names the file, key, op or input at fault and what was expected.
The CLI prints the message on one line and exits with code 2; it never shows a traceback
from deep inside numpy for these.
"""

from __future__ import annotations


class BenchError(Exception):
    """Base class: a problem the user can fix, with a message that says where and what."""

    exit_code = 2


class ModelFormatError(BenchError):
    """A model file or folder is missing, truncated, corrupt or not in a known layout."""


class UnsupportedOpError(BenchError):
    """A model uses an op type (or an op form) the engine has no kernel for."""


class OpExecutionError(BenchError):
    """An op failed while executing; the message names the op type, op name and model."""


class NumericalError(BenchError):
    """An op produced inf or nan (reported in fp16 mode to find overflows)."""


class InputError(BenchError):
    """`predict` got a missing, extra, wrongly shaped or wrongly typed input."""


class EngineUnavailableError(BenchError):
    """The engine cannot run on this machine (for example Core ML off macOS)."""


class ModelNotFoundError(BenchError):
    """A model variant id is unknown, or its files are not present locally."""


class RecipeError(BenchError):
    """A quantization recipe is malformed or names layers that do not exist."""


class PipelineError(BenchError):
    """A model set cannot serve the requested generation (missing stage, shape mismatch)."""


class SuiteError(BenchError):
    """A suite file is unknown or malformed, or a case filter is invalid."""


class ResultsError(BenchError):
    """The results folder cannot be written or a results file cannot be read."""


class RunLockedError(ResultsError):
    """Another `bench run` holds the run folder's lock."""


class Interrupted(KeyboardInterrupt):
    """A run was stopped by a signal (SIGINT, SIGTERM or SIGHUP); the exit code is 128 + its number.

    A KeyboardInterrupt, so whatever stops on Ctrl-C stops on any of them."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class ResultsWarning(UserWarning):
    """Rows of a results file were left out (torn, unparsable, or of a case that never finished);
    the message names the file, the line numbers and how many."""


class PublishedNumbersError(BenchError):
    """The published-numbers CSV is missing, unreadable or not in the documented schema."""
