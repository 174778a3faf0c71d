"""Classical image codecs a user would pick instead of mmcodec, behind one small interface.

Each codec codes one modality image (integer array as on disk) at one rate parameter and
returns the real encoded byte count and the decoded image. Choices (also recorded in
results.json by `ClassicalCodec.settings()`):

- Visible images are coded as RGB with 4:4:4 chroma wherever the encoder allows it (HEVC,
  AVIF, JPEG; JPEG XL and JPEG 2000 have no chroma subsampling here; lossy WebP is always
  4:2:0).
- Grey images (infrared) are coded as true monochrome where the codec supports it (HEVC 4:0:0
  from mode L, JPEG, JPEG XL, JPEG 2000). imagecodecs' WebP rejects one channel and its AVIF
  codes one channel losslessly, so those two get the grey plane replicated to RGB (the
  decoded first channel is scored).
- 16-bit images (depth in mm) go only to codecs with more than 8 bits per sample: HEVC and
  AVIF at 12 bits, JPEG XL and JPEG 2000 at 16 bits. Like mmcodec's own normalisation, the
  image's value range [min, max] is stretched onto the codec's full sample range before
  coding and mapped back after decoding; the 4 bytes that carry min and max are counted.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from mmcodec.errors import BadInputError

RANGE_SIDE_BYTES = 4  # two uint16 (min, max) a decoder needs to undo the range stretch


@dataclass
class Coded:
    nbytes: int               # everything a decoder needs: codec stream (+ range side info)
    decoded: np.ndarray       # same shape and dtype as the input
    encode_s: float
    decode_s: float


@dataclass
class ClassicalCodec:
    name: str
    library: str
    description: str
    param_name: str                              # what the ladder values mean
    ladders: dict[str, list[float]]              # "8bit" / "16bit" -> rate parameters, low to high rate
    encode_fn: Callable[[np.ndarray, float, int], bytes]   # (array, param, bits) -> bytes
    decode_fn: Callable[[bytes], np.ndarray]
    high_bits: int = 0                            # sample bits used for 16-bit input; 0 = 8-bit only
    grey_as_rgb: bool = False                     # replicate grey planes to 3 channels
    settings_extra: dict[str, Any] = field(default_factory=dict)

    def version(self) -> str:
        return _library_version(self.library)

    def supports(self, image: np.ndarray) -> bool:
        return image.dtype == np.uint8 or self.high_bits > 0

    def ladder(self, image_or_dtype: np.ndarray | np.dtype | str) -> list[float]:
        dtype = image_or_dtype.dtype if isinstance(image_or_dtype, np.ndarray) else np.dtype(image_or_dtype)
        return self.ladders["16bit" if dtype == np.uint16 else "8bit"]

    def settings(self) -> dict[str, Any]:
        return {"library": self.library, "version": self.version(), "parameter": self.param_name,
                "ladders": self.ladders, "bits_for_16bit_input": self.high_bits or None,
                "grey_coded_as": "rgb (replicated)" if self.grey_as_rgb else "monochrome",
                **self.settings_extra}

    def code(self, image: np.ndarray, param: float) -> Coded:
        """Encode and decode one image (uint8/uint16, (H, W) or (H, W, 3)) at `param`."""
        if not self.supports(image):
            raise BadInputError(f"{self.name} cannot code {image.dtype} images")
        side = 0
        work, bits = image, 8
        if image.dtype == np.uint16:
            lo, hi = int(image.min()), int(image.max())
            bits = self.high_bits
            top = (1 << bits) - 1
            work = np.rint((image.astype(np.float64) - lo) * top / max(hi - lo, 1)).astype(np.uint16)
            side = RANGE_SIDE_BYTES
        grey = work.ndim == 2
        if grey and self.grey_as_rgb:
            work = np.repeat(work[..., None], 3, axis=2)
        t0 = time.perf_counter()
        data = self.encode_fn(np.ascontiguousarray(work), param, bits)
        t1 = time.perf_counter()
        out = np.asarray(self.decode_fn(data))
        t2 = time.perf_counter()
        if grey and out.ndim == 3:
            out = out[..., 0]
        if out.shape != image.shape:
            raise RuntimeError(f"{self.name} decoded shape {out.shape}, expected {image.shape}")
        if image.dtype == np.uint16:
            top = (1 << bits) - 1
            vals = np.clip(out.astype(np.float64), 0, top) * max(hi - lo, 1) / top + lo
            out = np.rint(vals).astype(np.uint16)
        else:
            out = out.astype(np.uint8)
        return Coded(len(data) + side, out, t1 - t0, t2 - t1)


def _library_version(library: str) -> str:
    if library == "pillow-heif":
        import pillow_heif
        info = pillow_heif.libheif_info()
        return f"pillow-heif {pillow_heif.__version__}, libheif {info.get('libheif')}, {info.get('HEIF')}"
    import imagecodecs
    lib = {"imagecodecs.jpeg8": "libjpeg_turbo", "imagecodecs.webp": "libwebp", "imagecodecs.avif": "libavif",
           "imagecodecs.jpegxl": "libjxl", "imagecodecs.jpeg2k": "openjpeg"}[library]
    parts = dict(p.split("-", 1) for p in imagecodecs.version().split(", ") if "-" in p)
    return f"imagecodecs {imagecodecs.__version__}, {lib} {parts.get(lib, '?')}"


# -- HEVC intra (pillow-heif: libheif + x265) ---------------------------------------------------
# A PSNR-tuned x265 (no psycho-visual RD, no adaptive quantisation): the BPG-like anchor.
X265_PARAMS = {"x265:psy-rd": "0", "x265:psy-rdoq": "0", "x265:aq-mode": "0", "preset": "slow"}


def _hevc_encode(arr: np.ndarray, qp: float, bits: int) -> bytes:
    import pillow_heif
    if arr.ndim == 3:
        mode = "RGB"
    elif bits == 8:
        mode = "L"
    else:
        # pillow-heif takes 16-bit samples and keeps their top 12 bits (SAVE_HDR_TO_12_BIT).
        mode, arr = "I;16", (arr.astype(np.uint16) << 4)
    heif = pillow_heif.from_bytes(mode, (arr.shape[1], arr.shape[0]), arr.tobytes())
    buf = io.BytesIO()
    previous = pillow_heif.options.SAVE_HDR_TO_12_BIT
    pillow_heif.options.SAVE_HDR_TO_12_BIT = True
    try:
        heif.save(buf, chroma=444, enc_params={"x265:qp": str(int(qp)), **X265_PARAMS})
    finally:
        pillow_heif.options.SAVE_HDR_TO_12_BIT = previous
    return buf.getvalue()


def _hevc_decode(data: bytes) -> np.ndarray:
    import pillow_heif
    heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
    out = np.asarray(heif)
    if out.dtype == np.uint16:
        out = (out.astype(np.uint32) + 8) >> 4   # back to the 12-bit samples
    return out


# -- imagecodecs codecs --------------------------------------------------------------------------
def _avif_encode(arr: np.ndarray, level: float, bits: int) -> bytes:
    import imagecodecs
    return imagecodecs.avif_encode(arr, level=int(level), speed=6, pixelformat="444",
                                   bitspersample=bits, numthreads=1)


def _jpegxl_encode(arr: np.ndarray, distance: float, bits: int) -> bytes:
    import imagecodecs
    return imagecodecs.jpegxl_encode(arr, distance=float(distance), effort=7, numthreads=1)


def _jpeg2k_encode(arr: np.ndarray, target_psnr: float, bits: int) -> bytes:
    import imagecodecs
    return imagecodecs.jpeg2k_encode(arr, level=float(target_psnr), codecformat="j2k",
                                     mct=arr.ndim == 3, numthreads=1)


def _webp_encode(arr: np.ndarray, quality: float, bits: int) -> bytes:
    import imagecodecs
    return imagecodecs.webp_encode(arr, level=int(quality), lossless=False, method=6)


def _jpeg_encode(arr: np.ndarray, quality: float, bits: int) -> bytes:
    import imagecodecs
    kw = {"subsampling": "444"} if arr.ndim == 3 else {}
    return imagecodecs.jpeg8_encode(arr, level=int(quality), optimize=True, **kw)


def _decoder(name: str) -> Callable[[bytes], np.ndarray]:
    def decode(data: bytes) -> np.ndarray:
        import imagecodecs
        return getattr(imagecodecs, name)(data)
    return decode


CODECS: dict[str, ClassicalCodec] = {
    "hevc": ClassicalCodec(
        "hevc", "pillow-heif", "HEVC intra (HEIF, x265 PSNR-tuned: psy-rd 0, psy-rdoq 0, aq-mode 0, "
        "preset slow), RGB 4:4:4 BT.601 full range, grey as 4:0:0, 16-bit as 12-bit",
        "x265 QP", {"8bit": [50, 46, 42, 37, 32, 27, 22, 17, 12, 8], "16bit": [51, 46, 41, 36, 31, 26, 21, 16, 11, 6]},
        _hevc_encode, _hevc_decode, high_bits=12,
        settings_extra={"enc_params": X265_PARAMS, "chroma": "444", "matrix": "BT.601 full range (nclx 6)",
                        "container": "HEIF (about 290 bytes of boxes counted)"}),
    "avif": ClassicalCodec(
        "avif", "imagecodecs.avif", "AVIF (libavif/aom), speed 6, YUV 4:4:4, grey replicated to RGB, "
        "16-bit as 12-bit", "quality (level)",
        {"8bit": [8, 20, 35, 50, 62, 72, 80, 87, 93, 98], "16bit": [8, 20, 35, 50, 62, 72, 80, 87, 93, 97]},
        _avif_encode, _decoder("avif_decode"), high_bits=12, grey_as_rgb=True,
        settings_extra={"speed": 6, "pixelformat": "444", "numthreads": 1}),
    "jpegxl": ClassicalCodec(
        "jpegxl", "imagecodecs.jpegxl", "JPEG XL (libjxl), effort 7, VarDCT distance ladder, "
        "grey native, 16-bit native", "butteraugli distance",
        {"8bit": [25, 15, 10, 6, 4, 2.6, 1.7, 1.1, 0.6, 0.3], "16bit": [20, 12, 8, 5, 3, 2, 1.3, 0.8, 0.45, 0.25]},
        _jpegxl_encode, _decoder("jpegxl_decode"), high_bits=16,
        settings_extra={"effort": 7, "numthreads": 1}),
    "jpeg2000": ClassicalCodec(
        "jpeg2000", "imagecodecs.jpeg2k", "JPEG 2000 (OpenJPEG), raw codestream, target-PSNR rate "
        "control, colour transform for RGB, 16-bit native", "target PSNR (dB)",
        {"8bit": [28, 30.5, 33, 35.5, 38, 40.5, 43, 46, 49, 52], "16bit": [34, 38, 42, 46, 50, 54, 58, 62, 66, 70]},
        _jpeg2k_encode, _decoder("jpeg2k_decode"), high_bits=16,
        settings_extra={"codecformat": "j2k", "mct": "on for RGB", "numthreads": 1}),
    "webp": ClassicalCodec(
        "webp", "imagecodecs.webp", "WebP lossy (libwebp), method 6, 4:2:0, grey replicated to RGB",
        "quality (level)", {"8bit": [0, 8, 20, 35, 50, 65, 78, 88, 95, 100]},
        _webp_encode, _decoder("webp_decode"), grey_as_rgb=True,
        settings_extra={"lossless": False, "method": 6}),
    "jpeg": ClassicalCodec(
        "jpeg", "imagecodecs.jpeg8", "JPEG (libjpeg-turbo), 4:4:4, optimised Huffman tables, grey native",
        "quality (level)", {"8bit": [2, 5, 10, 18, 30, 45, 60, 75, 90, 98]},
        _jpeg_encode, _decoder("jpeg8_decode"),
        settings_extra={"subsampling": "444", "optimize": True}),
}


def get_codec(name: str) -> ClassicalCodec:
    if name not in CODECS:
        raise BadInputError(f"unknown codec {name!r}; choose from {', '.join(CODECS)} or mmcodec:<model>")
    return CODECS[name]
