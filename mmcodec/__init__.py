"""mmcodec: learned joint compression of multi-modal image pairs (visible+infrared, RGB+depth).

The codec API (Codec, load, decompress, info) is imported on first use, so that the
torch-free layers (errors, files, bitstream: reading a .mmc header) import without torch.
"""
from __future__ import annotations

import importlib
import warnings
from typing import Any

from mmcodec.errors import BadInputError, BitstreamError, MMCodecError, ModelMismatchError

# compressai's import runs torch.jit.script, whose deprecation notice users should not see;
# compressai is imported from many modules now, so the notice is filtered by its text.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

__version__ = "0.1.0"
__all__ = ["Codec", "load", "decompress", "info", "MMCodecError", "BadInputError", "BitstreamError",
           "ModelMismatchError", "__version__"]
_CODEC_API = ("Codec", "load", "decompress", "info")


def __getattr__(name: str) -> Any:
    if name in _CODEC_API:
        from mmcodec import codec
        return getattr(codec, name)
    try:  # `import mmcodec; mmcodec.codec....` keeps working for submodules
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_CODEC_API))
