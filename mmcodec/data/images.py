"""Reading and writing single images in the bit depths mmcodec supports.

A modality image is held as a float32 array in [0, 1] with shape (C, H, W) plus what is
needed to write it back exactly in the input's format (bit depth, channel count and, for
16-bit data, the value range used for normalisation).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mmcodec.errors import BadInputError
from mmcodec.files import atomic_output
from mmcodec.modalities import CHANNELS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 or uint16, shape (H, W) or (H, W, 3). Alpha is dropped."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"file not found: {path}")
    if path.is_dir():
        raise BadInputError(f"expected an image file, got a directory: {path}")
    if path.stat().st_size == 0:
        raise BadInputError(f"empty file (0 bytes): {path}")
    try:
        with Image.open(path) as im:
            if im.mode in ("RGB", "RGBA") and any(";16" in _raw_mode(t) for t in im.tile):
                # Pillow would silently drop 16-bit colour to 8 bits.
                raise BadInputError(f"unsupported bit depth: 16-bit colour image {path} (colour images must be 8-bit)")
            im.load()
            arr = _pil_to_array(im, path)
    except UnidentifiedImageError:
        raise BadInputError(f"not a readable image: {path}") from None
    except Image.DecompressionBombError:
        raise BadInputError(f"image too large to decode safely: {path}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadInputError(f"cannot decode image {path}: {exc}") from None
    if arr.ndim == 2 or arr.shape[2] == 3:
        return arr
    raise BadInputError(f"unsupported channel count {arr.shape[2]} in {path}")


def _raw_mode(tile: tuple) -> str:
    """The raw pixel layout of one Pillow tile, e.g. "RGB;16B" for a 16-bit colour PNG."""
    args = tile[3] if len(tile) > 3 else None
    return args if isinstance(args, str) else str(args[0]) if isinstance(args, tuple) and args else ""


def _pil_to_array(im: Image.Image, path: Path) -> np.ndarray:
    mode = im.mode
    if mode in ("1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "YCbCr"):
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            mode = im.mode
        if mode in ("RGBA", "CMYK", "YCbCr"):
            im = im.convert("RGB")
        elif mode in ("LA", "1"):
            im = im.convert("L")
        return np.asarray(im, dtype=np.uint8).copy()
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im)
        if arr.dtype.kind == "f" or arr.min() < 0 or arr.max() > 65535:
            raise BadInputError(f"unsupported pixel values (not 16-bit unsigned) in {path}")
        return arr.astype(np.uint16)
    if mode == "F":
        raise BadInputError(f"unsupported bit depth: floating-point image {path}")
    raise BadInputError(f"unsupported image mode {mode!r} in {path}")


@dataclass
class ModalityImage:
    """One modality of a pair, normalised for a model, with what is needed to undo it."""

    name: str               # "rgb", "ir" or "depth"
    data: np.ndarray        # float32, (C, H, W), values in [0, 1]
    bit_depth: int          # 8 or 16
    channels: int           # channels of the original file (1 or 3)
    value_range: tuple[int, int] = (0, 255)  # integer range mapped onto [0, 1]
    holes: bool = False     # depth with 0 = missing: valid values map to [HOLE_FLOOR, 1], holes to 0

    @property
    def height(self) -> int:
        return int(self.data.shape[1])

    @property
    def width(self) -> int:
        return int(self.data.shape[2])

    def to_integer(self, data: np.ndarray | None = None) -> np.ndarray:
        """Map normalised data back to the original integer format, (H, W) or (H, W, 3)."""
        return denormalise(self.data if data is None else data, self.bit_depth,
                           self.channels, self.value_range, self.holes)


# Depth maps mark missing pixels with 0. Mapping valid depth to [HOLE_FLOOR, 1] and holes to 0
# keeps a gap the codec's errors cannot cross: decoded values below HOLE_FLOOR / 2 are holes,
# so holes stay 0 and no impossible depth between 0 and the nearest valid value appears.
HOLE_FLOOR = 0.1


# Rows converted at a time: float temporaries stay a few MB even for 12-megapixel images.
_BAND_ROWS = 256


def denormalise(data: np.ndarray, bit_depth: int, channels: int,
                value_range: tuple[int, int], holes: bool = False) -> np.ndarray:
    """(C, H, W) floats in [0, 1] -> the integer image, (H, W) or (H, W, 3)."""
    if channels == 1:
        # A grey image coded by a 3-channel codec is written back from its first channel.
        data = data[:1]
    out = np.empty((data.shape[1], data.shape[2]) + ((3,) if channels == 3 else ()),
                   np.uint16 if bit_depth == 16 else np.uint8)
    for r0 in range(0, data.shape[1], _BAND_ROWS):
        band = _denormalise_band(data[:, r0:r0 + _BAND_ROWS], value_range, holes).astype(out.dtype)
        out[r0:r0 + _BAND_ROWS] = band[0] if channels == 1 else np.transpose(band, (1, 2, 0))
    return out


def _denormalise_band(data: np.ndarray, value_range: tuple[int, int], holes: bool) -> np.ndarray:
    lo, hi = value_range
    data = np.clip(data, 0.0, 1.0)
    if holes:
        valid = np.clip((data - HOLE_FLOOR) / (1 - HOLE_FLOOR), 0.0, 1.0) * (hi - lo) + lo
        vals = np.where(data < HOLE_FLOOR / 2, 0.0, valid)
    else:
        vals = data * (hi - lo) + lo
    return np.rint(vals)


def load_modality(name: str, source: str | os.PathLike | np.ndarray) -> ModalityImage:
    """Read (or take) an image and normalise it for the codec of modality `name`."""
    if name not in CHANNELS:
        raise BadInputError(f"unknown modality {name!r}; expected one of {sorted(CHANNELS)}")
    where = "array" if isinstance(source, np.ndarray) else str(source)
    arr = _validate_array(source, where) if isinstance(source, np.ndarray) else read_image(source)
    if arr.ndim == 3:
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            grey, channels = arr[..., 0], 1  # three identical channels: a grey image
        else:
            grey, channels = None, 3
    else:
        grey, channels = arr, 1
    want = CHANNELS[name]
    if want == 1 and channels == 3:
        raise BadInputError(f"{name} image must have one channel, got 3 colour channels: {where}")
    bit_depth = 16 if arr.dtype == np.uint16 else 8
    if name == "rgb" and bit_depth == 16:
        raise BadInputError(f"unsupported bit depth for a visible image: 16-bit ({where}); use 8-bit")
    holes = False
    if bit_depth == 8:
        value_range = (0, 255)
    elif name == "depth" and (grey == 0).any() and (grey > 0).any():
        holes = True
        valid = grey[grey > 0]
        lo, hi = int(valid.min()), int(valid.max())
        value_range = (lo, max(hi, lo + 1))
    else:
        # 16-bit data (radiometric thermal, depth in mm) rarely spans 0..65535: normalising by
        # the image's own range keeps the codec's precision where the values are.
        lo, hi = int(arr.min()), int(arr.max())
        value_range = (lo, max(hi, lo + 1))
    lo, hi = value_range
    if channels == 1:
        plane = (grey.astype(np.float32) - lo) / (hi - lo)
        if holes:
            plane = np.where(grey == 0, 0.0, HOLE_FLOOR + (1 - HOLE_FLOOR) * plane)
        data = np.repeat(plane[None], want, axis=0)
    else:
        # Channel by channel: one float plane of temporaries instead of three copies of the image.
        data = np.empty((3, *arr.shape[:2]), np.float32)
        for c in range(3):
            np.divide(arr[..., c].astype(np.float32), 255.0, out=data[c])
    return ModalityImage(name, np.ascontiguousarray(data, dtype=np.float32), bit_depth, channels, value_range,
                         holes)


def _validate_array(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype.kind == "f":
        raise BadInputError(f"unsupported pixel type {arr.dtype} ({where}): pass uint8 or uint16 images")
    if arr.dtype not in (np.uint8, np.uint16):
        raise BadInputError(f"unsupported pixel type {arr.dtype} ({where}): pass uint8 or uint16 images")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise BadInputError(f"unsupported array shape {arr.shape} ({where}): expected (H, W) or (H, W, 3)")
    if min(arr.shape[:2]) < 1:
        raise BadInputError(f"empty image {arr.shape} ({where})")
    return arr


def write_image(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write uint8/uint16 (H, W) or (H, W, 3) as PNG atomically (temp file + rename)."""
    path = Path(path)
    if arr.dtype == np.uint16 and arr.ndim != 2:
        raise BadInputError("16-bit colour output is not supported")
    im = Image.fromarray(np.ascontiguousarray(arr))  # uint16 (H, W) becomes mode I;16
    try:
        with atomic_output(path) as tmp:
            im.save(tmp, format="PNG")
    except OSError as exc:  # e.g. the parent is not a directory
        raise BadInputError(f"cannot write {path}: {exc.strerror or exc}") from None
