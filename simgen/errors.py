"""Typed errors. The CLI prints ``str(error)`` as one line and exits non-zero."""


class SimgenError(Exception):
    """Base class for every error a user can act on (bad input, missing system library, ...)."""


class ConfigError(SimgenError):
    """The scene YAML is malformed or inconsistent; the message names the YAML key."""


class BackendError(SimgenError):
    """No usable Dr.Jit/Mitsuba backend (no GPU when one was asked for, no libLLVM >= 16)."""


class StoreError(SimgenError):
    """The Zarr store is missing, corrupt, or was made from a different configuration."""


class RainModelError(SimgenError):
    """Input outside the validity range of ITU-R P.838-3."""


class UnsafePathError(SimgenError):
    """An output path simgen refuses: not provably its own to replace, the current directory
    or an ancestor of it, overlapping an input, or under a file."""


class WorldError(SimgenError):
    """Scene construction (``simgen.world``) cannot make a scene from its input: an unreadable
    or empty file, an area outside the extract or with no building, a tile over the size cap,
    a carrier frequency no ITU material covers."""
