"""Dataset errors: each message names the file or folder at fault and says how to fix it."""


class DatasetError(ValueError):
    """Base class for problems with the input data."""


class LayoutError(DatasetError):
    """The folder does not follow the brief's layout."""


class BadImageError(DatasetError):
    """A file in the dataset cannot be decoded as an image."""


class DuplicateLabelError(DatasetError):
    """The same pixels carry two different labels."""
