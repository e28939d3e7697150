"""The exception types pydnn2 raises for problems the user can fix.

Every error names what was expected and what was received, in the user's
terms (the builder call, the channel, the file), so that it can be acted on
without reading pydnn2's source. All of them derive from :class:`Pydnn2Error`,
and each also derives from the built-in type a caller would naturally catch
(``ValueError`` for bad arguments and data, ``FloatingPointError`` for a
diverging loss).

The split: a bad *argument* (a number out of range, an unknown name) is a
:class:`ConfigError`; bad *data* (labels, shapes, NaN, empty sets) a
:class:`DataError`. A builder call that cannot fit the net is a
:class:`NetBuildError`, which is a kind of :class:`ConfigError`.
:class:`TrainingInterrupted` is no mistake but the news that a signal
stopped training, with the checkpoint to resume from.
"""

from __future__ import annotations

from typing import Any


class Pydnn2Error(Exception):
    """Base class of every error pydnn2 raises on purpose."""


class ConfigError(Pydnn2Error, ValueError):
    """An argument outside its allowed range: a negative size or rate, an
    unknown activation, an annealer shared by two learning rules."""


class NetBuildError(ConfigError):
    """A builder call (``add_*``, pathways, merges) that cannot fit the net.

    Raised at the line of the call, naming the call, the incoming shape and
    what would fit.
    """


class DataError(Pydnn2Error, ValueError):
    """Data that cannot be used: unknown channel, wrong shape or dtype,
    NaN/inf values, labels outside ``num_classes``, empty or too small sets."""


class FileFormatError(Pydnn2Error, ValueError):
    """A file that is not a readable pydnn2 file: missing, truncated,
    corrupted, written by a newer format version, or foreign."""


class FileWriteError(Pydnn2Error, OSError):
    """A file pydnn2 writes could not be written (a full disk, a lost network
    folder). The message names the file and the reason ("no space left on
    device"); ``errno`` and ``filename`` are set as on the ``OSError`` behind
    it, and the file at that path was left as it was."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


class MissingDependencyError(Pydnn2Error, ImportError):
    """An optional package a feature needs is not installed; the message names
    the extra that installs it (e.g. ``pip install pydnn2[plot]``)."""


class TrainingDivergedError(Pydnn2Error, FloatingPointError):
    """The training loss became NaN or infinite; the message names the epoch
    and the batch."""


class TrainingInterrupted(Pydnn2Error):
    """Training was stopped by a signal (Ctrl-C or SIGTERM) after finishing its
    current batch and writing a checkpoint; ``train(..., resume=True)`` goes on.

    Attributes
    ----------
    checkpoint : str
        The checkpoint to resume from.
    signal : str
        ``'SIGINT'`` or ``'SIGTERM'``.
    history : dict
        The history up to the interruption (also ``net.history``).
    """

    def __init__(self, message: str, checkpoint: str | None = None, signal: str | None = None,
                 history: dict[str, list] | None = None) -> None:
        super().__init__(message)
        self.checkpoint, self.signal, self.history = checkpoint, signal, history

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with the checkpoint, signal and history (to cross processes)."""
        return type(self), (self.args[0], self.checkpoint, self.signal, self.history)
