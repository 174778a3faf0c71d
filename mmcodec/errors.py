"""Error classes. Every user-facing failure is an MMCodecError with a one-line message.

Exit codes follow the CLI contract: 2 for bad input (files, images, bitstreams, models),
3 for a training run that diverged, 1 for internal errors (anything else).
"""
from __future__ import annotations


class MMCodecError(Exception):
    """Base class for expected failures caused by the user's input."""

    exit_code = 2

    def __str__(self) -> str:  # one line, always
        return " ".join(super().__str__().split())


class BadInputError(MMCodecError):
    """A missing, unreadable or inconsistent input image or folder."""


class BitstreamError(MMCodecError):
    """A .mmc file that is not valid: wrong magic, version, CRC, truncated, corrupted."""


class ModelMismatchError(BitstreamError):
    """The stream was written by a model that is not installed or whose weights differ."""


class UnknownModelError(MMCodecError):
    """A model name that the registry does not know."""


class TrainingDivergedError(MMCodecError):
    """Training produced no finite loss/gradient for many steps in a row (lr too high for
    the start point, usually); the last good checkpoint is left as it was."""

    exit_code = 3


class ReconstructionMismatchWarning(UserWarning):
    """A decoded image differs from the encoder's reconstruction although every latent decoded
    exactly (format versions 9-16): the float synthesis rounded differently on this machine.
    `strict` decoding refuses such a stream instead (BitstreamError)."""
