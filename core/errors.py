"""User-facing errors: every message says what went wrong and what to do."""


class HygieError(Exception):
    """An error the user can act on. The CLI prints its message without a traceback."""


class MediaError(HygieError):
    """A video or audio file cannot be used."""


class PackageError(HygieError):
    """An avatar package is missing, foreign, from another version or tampered with."""


class DeviceError(HygieError):
    """An audio device or virtual camera cannot be opened."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that every `finally` and `except BaseException` cleans up
    (temporary folders, worker processes) exactly as for Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum
