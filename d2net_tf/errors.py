"""Error types raised for bad user input (files, fields, flags)."""


class D2NetInputError(ValueError):
    """Bad user input: a file, field or value that is not what was expected.

    The message always names the file or field and what was expected. Command
    lines turn it into a one-line message and exit status 2.
    """


class DataFormatError(D2NetInputError):
    """A data file (features, annotations, JSON) is missing or malformed."""


class UnsafeFileError(DataFormatError):
    """A pickled file asked to build an object that is not plain data."""


class ModelDirError(D2NetInputError):
    """A model directory cannot be written: another job trains in it, or the disk is full."""
