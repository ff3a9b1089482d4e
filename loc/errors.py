"""Typed errors. The CLI prints ``str(error)`` as one line and exits with code 2."""


class LocError(Exception):
    """Base class for every error a user can act on (bad store, bad option, bad checkpoint)."""


class DataError(LocError):
    """The store or group is missing, lacks a variable, or has too few samples for a request."""


class ConfigError(LocError):
    """An option is out of range or inconsistent (unknown model, bad selection, ...)."""


class CheckpointError(LocError):
    """A checkpoint is missing, unreadable, or does not match the requested model/data."""


class DivergedError(ConfigError):
    """A training's loss became NaN or infinite (the options, e.g. its LR, are too aggressive
    for the data); a sweep treats the candidate as losing."""
