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

import dataclasses

import functools
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
    decode_with_shape: bool = False               # decode_fn(data, shape): a raw stream that needs the crop

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
        out = np.asarray(self.decode_fn(data, work.shape) if self.decode_with_shape else self.decode_fn(data))
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
    if library == "imageio-ffmpeg":
        return _ffmpeg_version(_ffmpeg_exe())
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
    return _heif_encode(arr, qp, bits, 444)


def _hevc420_encode(arr: np.ndarray, qp: float, bits: int) -> bytes:
    return _heif_encode(arr, qp, bits, 420)


def _heif_encode(arr: np.ndarray, qp: float, bits: int, chroma: int) -> bytes:
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
        heif.save(buf, chroma=chroma, enc_params={"x265:qp": str(int(qp)), **X265_PARAMS})
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


# -- VVC intra (ffmpeg of imageio-ffmpeg: libvvenc encoder, native VVC decoder) ------------------
# Preset, measured on one 640x480 MSRS pair (00004N, 1 thread, nice'd on a busy 2-core machine):
#   preset   visible QP37 / QP27                      infrared QP37 / QP27
#   medium   2498 B 36.60 dB 1.1 s / 8772 B 39.64 dB 3.1 s   1412 B 41.14 dB 0.5 s / 5193 B 44.52 dB 2.3 s
#   slow     2495 B 36.57 dB 2.4 s / 8860 B 39.71 dB 8.3 s   1384 B 41.16 dB 1.0 s / 5202 B 44.56 dB 5.0 s
#   slower   2480 B 36.63 dB 4.9 s / 8733 B 39.73 dB 18.4 s  1427 B 41.25 dB 2.4 s / 5233 B 44.62 dB 11.7 s
# slow and slower are within ~1% of medium's rate-distortion (no consistent winner) but cost
# 2.2-2.7x and 5-6x its encode time; with QPs down to 8 a 10-point ladder at slow is about
# 3 minutes per pair here, too slow for the benchmark budget, so medium is used.
VVC_PRESET = "medium"
VVC_QP_RANGE = (0, 63)
VVC_NEUTRAL_CHROMA = 512   # 10-bit mid-grey: Cb = Cr = 0 for grey images
_FFMPEG_TIMEOUT_S = 600


def _ffmpeg_exe() -> str:
    """The ffmpeg binary bundled with imageio-ffmpeg (or IMAGEIO_FFMPEG_EXE); BadInputError if absent."""
    import os
    try:
        import imageio_ffmpeg
    except ImportError:
        raise BadInputError("vvc needs the ffmpeg binary of imageio-ffmpeg: pip install imageio-ffmpeg==0.8.1") from None
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise BadInputError(f"vvc: no ffmpeg binary found ({exc})") from None
    if not (exe and os.path.isfile(exe) and os.access(exe, os.X_OK)):
        raise BadInputError(f"vvc: the ffmpeg binary {exe!r} does not exist or is not executable "
                            "(reinstall imageio-ffmpeg==0.8.1 or fix IMAGEIO_FFMPEG_EXE)")
    return exe


def _run_ffmpeg(exe: str, args: list[str], data: bytes) -> bytes:
    import subprocess
    cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", *args]
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=_FFMPEG_TIMEOUT_S)
    except OSError as exc:
        raise BadInputError(f"vvc: cannot run ffmpeg {exe!r}: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise BadInputError(f"vvc: ffmpeg took more than {_FFMPEG_TIMEOUT_S} s") from None
    if proc.returncode != 0 or not proc.stdout:
        lines = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise BadInputError(f"vvc: ffmpeg failed (exit {proc.returncode}): {lines[-1] if lines else 'no output'}")
    return proc.stdout


@functools.lru_cache(maxsize=4)
def _ffmpeg_version(exe: str) -> str:
    import imageio_ffmpeg
    import subprocess
    head = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    ffmpeg = head.split()[2] if head.startswith("ffmpeg version") else "?"
    # libvvenc prints its version when it opens; encode one tiny frame to read it.
    probe = subprocess.run([exe, "-hide_banner", "-nostdin", "-loglevel", "verbose", "-f", "lavfi", "-i",
                            "color=c=gray:s=16x16", "-frames:v", "1", "-pix_fmt", "yuv420p10le",
                            "-c:v", "libvvenc", "-threads", "1", "-f", "null", "-"], capture_output=True, text=True)
    vvenc = next((ln.split("libvvenc version:")[1].strip() for ln in probe.stderr.splitlines()
                  if "libvvenc version:" in ln), "?")
    return f"imageio-ffmpeg {imageio_ffmpeg.__version__}, ffmpeg {ffmpeg}, libvvenc {vvenc}"


def _even(n: int) -> int:
    return n + n % 2


def _to_yuv420_10bit(arr: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB or (H, W) grey -> planar yuv420p10le bytes as a uint16 array.

    BT.601 full range, 8 -> 10 bits by x4 (full range 0..1020), chroma 2x2 box-averaged (centre
    sited). Odd sizes are edge-padded to even first. Grey: luma = grey x 4, chroma = 512."""
    from mmcodec.bench.metrics import rgb_to_ycbcr, subsample_420
    h, w = arr.shape[:2]
    pad = ((0, h % 2), (0, w % 2)) + (((0, 0),) if arr.ndim == 3 else ())
    arr = np.pad(arr, pad, mode="edge")
    if arr.ndim == 2:
        y = arr.astype(np.float64)
        u = v = np.full((arr.shape[0] // 2, arr.shape[1] // 2), VVC_NEUTRAL_CHROMA / 4.0)
    else:
        ycc = rgb_to_ycbcr(arr)
        y, u, v = ycc[..., 0], subsample_420(ycc[..., 1]), subsample_420(ycc[..., 2])
    planes = [np.clip(np.rint(p * 4.0), 0, 1023).astype("<u2") for p in (y, u, v)]
    return np.concatenate([p.ravel() for p in planes])


def _upsample_chroma(c: np.ndarray) -> np.ndarray:
    """4:2:0 -> 4:4:4 for centre-sited chroma: bilinear (taps 3/4, 1/4), then each 2x2 block is
    shifted so its mean equals the decoded sample again (2x2 averaging gives back the decoded
    chroma exactly, before RGB rounding)."""
    def up(a: np.ndarray, axis: int) -> np.ndarray:
        n = a.shape[axis]
        prev = np.take(a, np.r_[0, np.arange(n - 1)], axis=axis)
        nxt = np.take(a, np.r_[np.arange(1, n), n - 1], axis=axis)
        even, odd = 0.75 * a + 0.25 * prev, 0.75 * a + 0.25 * nxt
        return np.stack([even, odd], axis=axis + 1).reshape(a.shape[:axis] + (2 * n,) + a.shape[axis + 1:])
    bil = up(up(c, 0), 1)
    mean = 0.25 * (bil[0::2, 0::2] + bil[1::2, 0::2] + bil[0::2, 1::2] + bil[1::2, 1::2])
    return bil + np.repeat(np.repeat(c - mean, 2, axis=0), 2, axis=1)


def _from_yuv420_10bit(raw: bytes, h: int, w: int, grey: bool) -> np.ndarray:
    from mmcodec.bench.metrics import _BT601
    he, we = _even(h), _even(w)
    n_y, n_c = he * we, (he // 2) * (we // 2)
    samples = np.frombuffer(raw, dtype="<u2")
    if samples.size != n_y + 2 * n_c:
        raise BadInputError(f"vvc: decoder gave {samples.size} samples, expected {n_y + 2 * n_c} for {we}x{he}")
    y = samples[:n_y].reshape(he, we).astype(np.float64) / 4.0
    if grey:
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)[:h, :w]
    u = _upsample_chroma(samples[n_y:n_y + n_c].reshape(he // 2, we // 2).astype(np.float64) / 4.0) - 128.0
    v = _upsample_chroma(samples[n_y + n_c:].reshape(he // 2, we // 2).astype(np.float64) / 4.0) - 128.0
    rgb = np.stack([y, u, v], axis=-1) @ np.linalg.inv(_BT601).T
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)[:h, :w]


def _check_qp(qp: float) -> int:
    lo, hi = VVC_QP_RANGE
    if not (float(qp).is_integer() and lo <= qp <= hi):
        raise BadInputError(f"vvc: QP must be an integer in {lo}..{hi}, got {qp:g}")
    return int(qp)


def _vvc_encode(arr: np.ndarray, qp: float, bits: int) -> bytes:
    q = _check_qp(qp)
    exe = _ffmpeg_exe()
    h, w = arr.shape[:2]
    yuv = _to_yuv420_10bit(arr)
    return _run_ffmpeg(exe, ["-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{_even(w)}x{_even(h)}",
                             "-i", "pipe:0", "-frames:v", "1", "-c:v", "libvvenc", "-preset", VVC_PRESET,
                             "-qp", str(q), "-qpa", "0", "-threads", "1", "-f", "vvc", "pipe:1"], yuv.tobytes())


def _vvc_decode(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    raw = _run_ffmpeg(_ffmpeg_exe(), ["-threads", "1", "-f", "vvc", "-i", "pipe:0", "-frames:v", "1",
                                      "-f", "rawvideo", "-pix_fmt", "yuv420p10le", "pipe:1"], data)
    return _from_yuv420_10bit(raw, shape[0], shape[1], grey=len(shape) == 2)


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


# x265 QP ladders of hevc and hevc420 (16-bit input is coded at 12 bits, hence its own ladder).
HEVC_LADDERS = {"8bit": [50, 46, 42, 37, 32, 27, 22, 17, 12, 8], "16bit": [51, 46, 41, 36, 31, 26, 21, 16, 11, 6]}

_HEVC = ClassicalCodec(
    "hevc", "pillow-heif", "HEVC intra (HEIF, x265 PSNR-tuned: psy-rd 0, psy-rdoq 0, aq-mode 0, "
    "preset slow), RGB 4:4:4 BT.601 full range, grey as 4:0:0, 16-bit as 12-bit",
    "x265 QP", HEVC_LADDERS,
    _hevc_encode, _hevc_decode, high_bits=12,
    settings_extra={"enc_params": X265_PARAMS, "chroma": "444", "matrix": "BT.601 full range (nclx 6)",
                    "container": "HEIF (about 290 bytes of boxes counted)"})

CODECS: dict[str, ClassicalCodec] = {
    "hevc": _HEVC,
    # The same x265 settings with the encoder's 4:2:0 chroma subsampling.
    "hevc420": dataclasses.replace(
        _HEVC, name="hevc420", description="HEVC intra (HEIF, x265 PSNR-tuned as hevc), RGB 4:2:0 BT.601 full "
        "range (the encoder's chroma subsampling), grey as 4:0:0, 16-bit as 12-bit 4:0:0",
        encode_fn=_hevc420_encode, settings_extra={**_HEVC.settings_extra, "chroma": "420"}),
    "vvc": ClassicalCodec(
        "vvc", "imageio-ffmpeg", f"VVC intra (libvvenc via ffmpeg, preset {VVC_PRESET}, fixed QP, -qpa 0: no "
        "perceptual QP adaptation), raw .266 stream (no container) counted, decoded by ffmpeg's native VVC "
        "decoder; RGB as YUV 4:2:0 10-bit BT.601 full range (8-bit x4), chroma 2x2 box-averaged, upsampled "
        "bilinear with 2x2 mean correction; grey as 4:2:0 10-bit with grey in luma and constant neutral "
        "chroma (512), which costs under 90 bytes per 640x480 image (< 0.003 bpp: a whole flat 640x480 picture, luma included, codes in 267-285 bytes, about 200 of them parameter sets); 16-bit depth not applicable "
        "(VVC Main 10 has 10-bit samples; not coded); odd sizes edge-padded to even, padding cropped",
        "vvenc QP", {"8bit": [50, 46, 42, 37, 32, 27, 22, 17, 12, 8]},
        _vvc_encode, _vvc_decode, decode_with_shape=True,
        settings_extra={"preset": VVC_PRESET, "qpa": 0, "threads": 1, "pix_fmt": "yuv420p10le",
                        "matrix": "BT.601 full range, 8-bit samples x4", "container": "none (raw .266 stream)",
                        "grey": "luma = grey x4, chroma planes constant 512",
                        "chroma_upsampling": "bilinear centre-sited + 2x2 mean correction",
                        "16bit": "not supported (VVC 10-bit cannot hold 16-bit samples)"}),
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
