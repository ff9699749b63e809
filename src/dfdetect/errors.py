"""Every error a user can cause, in one torch-free module: the CLI turns each into a one-line message."""

from __future__ import annotations


class DfdetectError(Exception):
    """Base of the errors caused by input (files, options, URLs), as opposed to bugs."""


class ConfigError(DfdetectError, ValueError):
    """A configuration value or key that is not valid; the message names it."""


class DatasetError(DfdetectError, ValueError):
    """A dataset folder that does not have the expected layout."""


class ImageLoadError(DfdetectError, ValueError):
    """An image that cannot be used, with the file (or upload name) and the reason."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class ImageTooLargeError(ImageLoadError):
    """An image whose header announces more pixels than allowed (rejected before decoding)."""


class UnsupportedImageError(ImageLoadError):
    """Bytes that are not an image at all, or an image format dfdetect does not read."""


class WeightsError(DfdetectError, ValueError):
    """A weights file that is missing, unreadable or does not fit the model; names the file."""


class CheckpointError(DfdetectError, ValueError):
    """A checkpoint or exported model that is missing or not dfdetect's; names the file."""


class UnknownModelError(DfdetectError, KeyError):
    """A model name that is not registered; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class TuneError(DfdetectError, ValueError):
    """A search space or storage that cannot be used; the message names it."""
