"""Input errors a person can act on: what is wrong, which files (the first 20 and a count), what to do.

Why: a bad folder is the user's problem to fix, not a bug; the message is read in a terminal by
someone who may not read Python. Each error carries its three parts, and ``str()`` lays them
out as plain lines (no repr, no escaped newlines). ``python -m brainscan_exp`` prints it alone
on stderr (:func:`brainscan_exp.console.report_input_error`) instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_LISTED = 20


class InputError(ValueError):
    """Base class for problems with what the user gave the program (folders, files, answers)."""

    def __init__(self, what: str, files: Iterable[object] = (), fix: str = "", details: str = ""):
        self.what, self.files, self.fix, self.details = what, [str(f) for f in files], fix, details
        super().__init__(self.message())

    def message(self) -> str:
        lines = [self.what]
        shown = self.files[:MAX_LISTED]
        lines += [f"  {f}" for f in shown]
        if len(self.files) > len(shown):
            lines.append(f"  ... and {len(self.files) - len(shown)} more ({len(self.files)} in all)")
        if self.fix:
            lines.append(f"What to do: {self.fix}")
        if self.details:
            lines += self.details.splitlines()
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.message()

    def __reduce__(self):  # picklable across launcher processes with its parts
        return (_rebuild, (type(self), self.what, self.files, self.fix, self.details))


def _rebuild(cls, what, files, fix, details):
    return cls(what, files, fix, details)


class DatasetError(InputError):
    """Base class for problems with the input data."""


class LayoutError(DatasetError):
    """The folder does not follow the brief's layout."""


class BadImageError(DatasetError):
    """A file in the dataset cannot be decoded as an image."""


class DuplicateLabelError(DatasetError):
    """The same pixels carry two different labels."""


class AnswerFileError(InputError):
    """An expert's answer file (review round trip) cannot be read or contradicts the queue it answers."""


def find_input_error(exc: BaseException | None) -> InputError | None:
    """The :class:`InputError` behind ``exc`` (Hydra wraps a target's error in its own), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, InputError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
