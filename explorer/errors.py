"""Errors a user can cause and fix: bad input, missing data, mismatched checkpoints."""


class InputError(ValueError):
    """Bad user input. The message names the field and the allowed range or format."""


class DatasetMissingError(InputError):
    """A dataset is not on disk and could not be downloaded; the message says where to put it."""


class CheckpointMismatchError(InputError):
    """A checkpoint does not fit the model; the message names the mismatching keys/shapes."""
