"""mmcodec: learned joint compression of multi-modal image pairs (visible+infrared, RGB+depth)."""
import warnings

with warnings.catch_warnings():
    # compressai's import triggers torch.jit deprecation notices; users should not see them.
    warnings.simplefilter("ignore")
    import compressai  # noqa: F401

from mmcodec.codec import Codec, decompress, info, load
from mmcodec.errors import BadInputError, BitstreamError, MMCodecError, ModelMismatchError

__version__ = "0.1.0"
__all__ = ["Codec", "load", "decompress", "info", "MMCodecError", "BadInputError", "BitstreamError",
           "ModelMismatchError", "__version__"]
