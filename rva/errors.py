"""The typed errors RVA raises; adapters map them to exit codes, gRPC status and HTTP responses."""


class RVAError(Exception):
    """Base of every error RVA raises on purpose."""


class ConfigError(RVAError):
    """The configuration is invalid; the message names the field's path and how to fix it."""


class SourceError(RVAError):
    """A video source cannot be opened or read (missing file, corrupt stream, unreachable camera)."""


class ModelError(RVAError):
    """A detector model cannot be fetched, found or loaded."""
