"""The Python API: load an installed model, compress a pair into `.mmc` bytes, decode them.

    codec = mmcodec.load("ir-vi/separate", quality=3)
    blob = codec.compress(rgb="vi.png", ir="ir.png")     # paths or uint8/uint16 arrays
    images = codec.decompress(blob)                        # {"rgb": HxWx3 uint8, "ir": HxW ...}

Big images are coded tile by tile (mmcodec/tiling.py): automatically above a size threshold,
or as asked with `load(..., tile=512)`; `tile=0` codes whole images.
"""
from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmcodec.bitstream import Container, StreamInfo, pack, unpack
from mmcodec.bitstream.container import MAX_DIM, MAX_PIXELS
from mmcodec.bitstream.rans_guard import guard_entropy_decoders, stream_symbol_bound
from mmcodec.data.images import ModalityImage, denormalise, load_modality
from mmcodec.errors import BadInputError, BitstreamError, MMCodecError, ModelMismatchError
from mmcodec.models.registry import InstalledModel, find_model
from mmcodec.tiling import check_tile_option, plan_tiling

ImageSource = str | os.PathLike | np.ndarray | ModalityImage


def _recon_crc(arr: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(arr).tobytes()) & 0xFFFFFFFF


@contextlib.contextmanager
def _bit_exact_threads() -> Iterator[None]:
    """Run the model single-threaded. Some CPU kernels split their sums by thread count (a
    transposed convolution of the hyper-synthesis does at the shipped widths), and the
    decoder must repeat the encoder's arithmetic bit for bit: entropy parameters choose CDFs,
    and the stream carries a CRC of the reconstruction. See docs/bitstream.md, Determinism."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _padded(h: int, w: int, multiple: int) -> tuple[int, int]:
    return (-(-h // multiple) * multiple, -(-w // multiple) * multiple)


class Codec:
    """An installed pair model at one quality, ready to code pairs."""

    def __init__(self, installed: InstalledModel, quality: int | None = None,
                 device: str | torch.device = "cpu", tile: int | None = None) -> None:
        self.installed = installed
        self.device = torch.device(device)
        # Corrupted streams must raise, not crash the process inside the C++ rANS decoder.
        self.model = guard_entropy_decoders(installed.load(self.device))
        qualities = installed.qualities
        self.quality = quality if quality is not None else qualities[(len(qualities) - 1) // 2 + 1 if len(qualities) > 2 else 0]
        if self.quality not in qualities:
            raise BadInputError(f"quality {self.quality} not available for {installed.name}; "
                                f"choose {qualities[0]}..{qualities[-1]}")
        # Tile size in pixels for encoding: None = automatic, 0 = whole image (mmcodec.tiling).
        self.tile = check_tile_option(tile)
        if self.tile and not self.model.supports_tiling:
            raise BadInputError(f"model {self.name} (architecture {installed.arch}) codes whole images only; "
                                "use tile 0")

    @property
    def name(self) -> str:
        return self.installed.name

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.model.modalities

    # -- encoding -------------------------------------------------------------------------
    def compress(self, rgb: ImageSource | None = None, ir: ImageSource | None = None,
                 depth: ImageSource | None = None, quality: int | None = None) -> bytes:
        given = {k: v for k, v in (("rgb", rgb), ("ir", ir), ("depth", depth)) if v is not None}
        if set(given) != set(self.modalities):
            raise BadInputError(f"model {self.name} codes {'+'.join(self.modalities)} pairs; "
                                f"got {'+'.join(given) or 'nothing'}")
        images = {m: v if isinstance(v, ModalityImage) else load_modality(m, v) for m, v in given.items()}
        return self.compress_images(images, quality)

    def compress_images(self, images: dict[str, ModalityImage], quality: int | None = None) -> bytes:
        return self.encode(images, quality)[0]

    @torch.no_grad()
    def encode(self, images: dict[str, ModalityImage], quality: int | None = None
               ) -> tuple[bytes, dict[str, np.ndarray]]:
        """Code a pair; return the .mmc bytes and the reconstruction a decoder will produce
        (integer images in the input format; the stream carries their CRC)."""
        quality = self.quality if quality is None else quality
        if quality not in self.installed.qualities:
            raise BadInputError(f"quality {quality} not available for {self.name}; "
                                f"choose {self.installed.qualities[0]}..{self.installed.qualities[-1]}")
        if set(images) != set(self.modalities):
            raise BadInputError(f"model {self.name} codes {'+'.join(self.modalities)} pairs; "
                                f"got {'+'.join(images) or 'nothing'}")
        sizes = {m: (im.height, im.width) for m, im in images.items()}
        for m, im in images.items():
            if not (im.height <= MAX_DIM and im.width <= MAX_DIM and im.height * im.width <= MAX_PIXELS):
                # never write a file that the decoder's header checks would refuse
                raise BadInputError(f"{m} image {im.width}x{im.height} is larger than the .mmc format allows "
                                    f"({MAX_DIM} pixels per side, {MAX_PIXELS} pixels)")
            if not np.isfinite(im.data).all():
                raise BadInputError(f"{m} image contains NaN or infinite values")
        first, *rest = self.modalities
        for m in rest:
            if sizes[m] != sizes[first]:
                (h0, w0), (h1, w1) = sizes[first], sizes[m]
                raise BadInputError(f"pair sizes differ: {first} is {w0}x{h0}, {m} is {w1}x{h1} "
                                    "(the images of a pair must be aligned and the same size)")
        x = {}
        for m, im in images.items():
            t = torch.from_numpy(im.data)[None].to(self.device)
            ph, pw = _padded(im.height, im.width, self.model.multiple)
            # Replicate padding costs fewer bits than zeros at the border.
            x[m] = t if (ph, pw) == (im.height, im.width) else \
                F.pad(t, (0, pw - im.width, 0, ph - im.height), mode="replicate")
        largest = max((tuple(t.shape[-2:]) for t in x.values()), key=lambda hw: hw[0] * hw[1])
        tiling = plan_tiling(self.model, self.tile, largest, f"model {self.name}")
        with _bit_exact_threads():
            out = self.model.compress(x, quality - 1, **({"tiling": tiling} if tiling else {}))
        infos, recon = [], {}
        for m in self.modalities:
            im = images[m]
            recon[m] = im.to_integer(out.x_hat[m][0, :, :im.height, :im.width].cpu().numpy())
            infos.append(StreamInfo(m, im.height, im.width, im.channels, im.bit_depth, im.value_range,
                                    _recon_crc(recon[m]), im.holes))
        blob = pack(Container(self.name, self.installed.weights_hash, quality, infos, out.streams, out.side, tiling))
        return blob, recon

    # -- decoding -------------------------------------------------------------------------
    @torch.no_grad()
    def decompress(self, blob: bytes | Container, only: str | None = None) -> dict[str, np.ndarray]:
        c = blob if isinstance(blob, Container) else unpack(blob)
        if c.model != self.name:
            raise ModelMismatchError(f"stream was written by model {c.model!r}, not {self.name!r}")
        if c.weights != self.installed.weights_hash:
            raise ModelMismatchError(f"stream was written by {c.model} weights {c.weights}, "
                                     f"installed weights are {self.installed.weights_hash}")
        if c.quality not in self.installed.qualities:
            raise BitstreamError(f"corrupted header: quality {c.quality} out of range")
        infos = {i.name: i for i in c.modalities}
        if set(infos) != set(self.modalities):
            raise BitstreamError(f"corrupted header: modalities {sorted(infos)} do not match model {self.name}")
        if len({(i.height, i.width) for i in c.modalities}) != 1:  # the encoder codes aligned pairs only
            raise BitstreamError("corrupted header: the images of the pair differ in size")
        if only is not None and only not in infos:
            raise BadInputError(f"--only {only}: the stream holds {', '.join(infos)}")
        if c.tiling is not None and not self.model.supports_tiling:
            raise BitstreamError(f"corrupted header: the stream is tiled, model {self.name} codes whole images only")
        sizes = {m: _padded(i.height, i.width, self.model.multiple) for m, i in infos.items()}
        try:
            with stream_symbol_bound(sum(h * w for h, w in sizes.values())), _bit_exact_threads():
                x_hat = self.model.decompress(c.streams, c.side, sizes, c.quality - 1, only=only,
                                              **({"tiling": c.tiling} if c.tiling else {}))
        except MMCodecError:
            raise
        except Exception as exc:  # a corrupted payload can make the model fail anywhere
            raise BitstreamError(f"corrupted payload: decoding failed ({type(exc).__name__})") from None
        result = {}
        for m, t in x_hat.items():
            i = infos[m]
            if not torch.isfinite(t).all():  # garbage symbols can overflow the synthesis transform
                raise BitstreamError(f"corrupted payload: decoded {m} image is not finite")
            arr = denormalise(t[0, :, :i.height, :i.width].cpu().numpy(), i.bit_depth, i.channels, i.value_range,
                              i.holes)
            if _recon_crc(arr) != i.recon_crc:
                raise BitstreamError(f"decoded {m} image does not match the encoder's reconstruction "
                                     "(corrupted payload or decoder desynchronised)")
            result[m] = arr
        return result




def load(name: str | None = None, quality: int | None = None, pair: str = "ir-vi",
         device: str | torch.device = "cpu", tile: int | None = None) -> Codec:
    """Load an installed model by name (or the default of `pair`) at `quality`. `tile`: encode
    in tiles of that many pixels (a multiple of 16), 0 = whole images, None = automatic."""
    installed = find_model(name, pair)
    return Codec(installed, quality, device, tile)


def read_container(path_or_bytes: str | os.PathLike | bytes) -> tuple[Container, int]:
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes)
    else:
        p = Path(path_or_bytes)
        if not p.is_file():
            raise BadInputError(f"file not found: {p}")
        data = p.read_bytes()
    return unpack(data), len(data)


def codec_for_stream(c: Container, device: str | torch.device = "cpu") -> Codec:
    """The installed model a parsed stream names, at the stream's quality."""
    try:
        installed = find_model(c.model)
    except MMCodecError as exc:
        raise ModelMismatchError(str(exc)) from None
    if c.quality not in installed.qualities:  # a header fault, not a user's --quality
        raise BitstreamError(f"corrupted header: quality {c.quality} out of range")
    return Codec(installed, c.quality, device)


def decompress(blob: bytes, only: str | None = None, device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Decode a `.mmc` stream with the model named in its header."""
    c = unpack(blob)
    return codec_for_stream(c, device).decompress(c, only=only)


def info(blob: bytes) -> dict[str, Any]:
    c = unpack(blob)
    return c.info(len(blob))
