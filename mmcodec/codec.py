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
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmcodec.bitstream import Container, StreamInfo, pack, unpack
from mmcodec.bitstream.container import DEFAULT_MAX_PIXELS, MAX_DIM, MAX_PIXELS, check_pixel_budget, latent_seal
from mmcodec.latent_codecs.rans_guard import guard_entropy_decoders, stream_symbol_bound
from mmcodec.data.images import ModalityImage, denormalise, load_modality
from mmcodec.latent_codecs import entropy_parameter_path, has_exact_entropy_parameters
from mmcodec.errors import (BadInputError, BitstreamError, MMCodecError, ModelMismatchError,
                            ReconstructionMismatchWarning)
from mmcodec.modality_codec import observe_latents
from mmcodec.models.base import CompressedPair, PairModel
from mmcodec.models.registry import InstalledModel, find_model
from mmcodec.refine import DEFAULT_EFFORT, EFFORT_LEVELS, check_effort, rd_cost, refine, supports_refinement
from mmcodec.tiling import check_tile_option, plan_tiling

ImageSource = str | os.PathLike | np.ndarray | ModalityImage


# What decoding a damaged payload can raise once the header checks have passed: the stream
# parsers' ValueError (wrong part count, side information a codec does not take), torch's
# RuntimeError (tensors whose decoded shapes or values do not fit), OverflowError (huge
# decoded values). Anything else (TypeError, KeyError, AttributeError, ...) is a bug and
# must surface as an internal error, not be blamed on the file. The rANS decoder itself does
# not raise on garbage (it desynchronises; the reconstruction CRC catches that).
_BAD_PAYLOAD = (ValueError, RuntimeError, OverflowError)


def _recon_crc(arr: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(arr).tobytes()) & 0xFFFFFFFF


def _latent_crc(y_hat: torch.Tensor, seal: int) -> int:
    """CRC-32 of one modality's decoded latent, continuing from its `latent_seal` in the stream.

    Hashed: ŷ as the latent codec returns it, before the inverse gain, as float32 in C order
    (1, M, h, w), little-endian, with -0 written as +0. Why this is exact on every machine:
    for exact streams (integer entropy parameters, every hyperprior-family codec) ŷ = s + μ,
    where s is the integer the rANS decoder returns and μ comes from the integer networks (a
    multiple of 2^-16 computed in integer-valued float64, identical on every IEEE-754 CPU,
    BLAS and GPU; docs/bitstream.md, Determinism); s + μ is one float32 addition, correctly
    rounded, so its bits are the same everywhere. Nothing computed by a float network enters
    (the inverse gain, a float product, and g_s come after). The sign of zero is normalised
    because the encoder forms round(y - μ) + μ and the decoder s + μ: equal values, but
    round(-0.3) + (-0.0) is -0.0 where 0 + (-0.0) is +0.0. For float-path streams (channel-
    slice codecs: CCEM, RGB-D TCM; versions without integer parameters) μ and the latent
    residual prediction are float network outputs: ŷ, like those streams' entropy decoding
    itself, is exact on the encoder's platform only."""
    canonical = (y_hat.detach().to(device="cpu", dtype=torch.float32) + 0.0).contiguous().numpy()
    return zlib.crc32(canonical.astype("<f4", copy=False).data, seal) & 0xFFFFFFFF


class _LatentRecord:
    """The latents (and side information) a model's pipelines code or decode during one
    call, by modality (`observe_latents`; `PairModel.latent_modality` names the pipeline).
    With `stream` (a container with latent CRCs) each decoded latent is checked as soon as it
    exists, before its synthesis runs: a mismatch is a corrupted or desynchronised stream."""

    def __init__(self, model: PairModel, stream: Container | None = None) -> None:
        self.model, self.stream = model, stream
        self.latents: dict[str, torch.Tensor] = {}
        self.sides: dict[str, bytes] = {}

    def __call__(self, pipeline: object, y_hat: torch.Tensor, side: bytes) -> None:
        m = self.model.latent_modality(pipeline)
        if m is None:
            raise RuntimeError(f"{type(self.model).__name__} codes a latent with a pipeline it does not name "
                               "(PairModel.latent_modality)")
        self.latents[m], self.sides[m] = y_hat, side
        if self.stream is None:
            return
        expected = next(i.latent_crc for i in self.stream.modalities if i.name == m)
        if _latent_crc(y_hat, latent_seal(self.stream, m, side)) != expected:
            raise BitstreamError(f"decoded {m} latent does not match the encoder's "
                                 "(corrupted payload or decoder desynchronised)")


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

    # Encode with the integer entropy-parameter path wherever the model has one (format
    # versions 3 and 4). False writes the float-path streams of earlier mmcodec (versions 1
    # and 2): for comparisons and tests.
    exact_entropy_parameters: bool = True
    # Write a CRC of each modality's decoded latent (format versions 9-16). False writes the
    # files of mmcodec before latent CRCs (versions 1-8), byte for byte: for tests.
    latent_crcs: bool = True
    # Torch threads for encoder refinement (effort > 0). None: the caller's setting, captured
    # before coding drops to one thread. Refinement output is coded exactly, so it need not be
    # single-threaded; a given thread count still gives the same file.
    refine_threads: int | None = None
    # Code a grey visible image (three equal channels) with the model's infrared codec where
    # the model has one (SeparateCoding.grey_visible_view; FLAG_GREY_VIA_IR in the header).
    # False codes it with the visible codec, as mmcodec did before: for comparisons.
    grey_via_ir: bool = True

    def __init__(self, installed: InstalledModel, quality: int | None = None,
                 device: str | torch.device = "cpu", tile: int | None = None) -> None:
        self.installed = installed
        self.device = torch.device(device)
        # Corrupted streams must raise, not crash the process inside the C++ rANS decoder.
        self.model = guard_entropy_decoders(installed.load(self.device))
        view = getattr(self.model, "grey_visible_view", None)
        self._grey_view = view() if view is not None else None
        qualities = installed.qualities
        self.quality = quality if quality is not None else installed.default_quality
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
    def routes_grey_visible(self) -> bool:
        """Whether this codec codes grey visible images with the model's infrared codec."""
        return self.grey_via_ir and self._grey_view is not None

    def _model_for(self, grey_via_ir: bool) -> PairModel:
        """The model that codes a stream: the grey-visible view where the visible image is grey
        and routed to the infrared codec, else the model itself."""
        return self._grey_view if grey_via_ir else self.model

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.model.modalities

    def padded_size(self, modality: str, height: int, width: int) -> tuple[int, int]:
        """The (H, W) the model codes an image of `modality` at (each modality has its own
        padding multiple, e.g. 64 for the visible and 32 for the infrared of a 2:1 model)."""
        return _padded(height, width, self.model.padding_multiple(modality))

    def geometry_mismatch(self, sizes: dict[str, tuple[int, int]]) -> str | None:
        """Why the (H, W) of each modality do not fit the model's pair geometry, or None.

        A modality with `size_ratio` r must have r times the size of the ratio-1 modalities
        on each side, give or take r - 1 pixels (|side - r * base side| < r): the base image
        is the high-resolution one divided by r and rounded either way. Same-size models
        (r = 1 everywhere) need equal sizes; a 2:1 model takes infrared 47x35 with visible
        94x70, 93x69 or 95x71 (and 93x71, 95x70, ...).
        """
        ratios = {m: self.model.size_ratio(m) for m in sizes}
        base = next(m for m in sizes if ratios[m] == 1)
        bh, bw = sizes[base]
        for m, (h, w) in sizes.items():
            r = ratios[m]
            if abs(h - r * bh) < r and abs(w - r * bw) < r:
                continue
            if all(v == 1 for v in ratios.values()):
                return (f"pair sizes differ: {base} is {bw}x{bh}, {m} is {w}x{h} "
                        "(the images of a pair must be aligned and the same size)")
            return (f"pair sizes do not fit model {self.name}: {m} must be {r}x the {base} size "
                    f"(±{r - 1} pixel per side), {r * bw}x{r * bh} for {base} {bw}x{bh}; got {m} {w}x{h}")
        return None

    # -- encoding -------------------------------------------------------------------------
    def model_inputs(self, images: dict[str, ModalityImage]) -> dict[str, torch.Tensor]:
        """Batched tensors on the codec's device, padded to the model's multiple."""
        x = {}
        for m, im in images.items():
            t = torch.from_numpy(im.data)[None].to(self.device)
            ph, pw = self.padded_size(m, im.height, im.width)
            # Replicate padding costs fewer bits than zeros at the border.
            x[m] = t if (ph, pw) == (im.height, im.width) else \
                F.pad(t, (0, pw - im.width, 0, ph - im.height), mode="replicate")
        return x

    def resolve_effort(self, effort: int | None) -> int:
        """`effort`, or the default: DEFAULT_EFFORT for models with encoder refinement, else 0."""
        if effort is None:
            return DEFAULT_EFFORT if supports_refinement(self.model) else 0
        return check_effort(effort)

    def compress(self, rgb: ImageSource | None = None, ir: ImageSource | None = None,
                 depth: ImageSource | None = None, quality: int | None = None, effort: int | None = None) -> bytes:
        """Code a pair into .mmc bytes. `effort` 0-3 refines the latents at encode time
        (mmcodec.refine: more CPU at the encoder, fewer bits; decoding is unchanged);
        None = `resolve_effort`'s default."""
        effort = self.resolve_effort(effort)
        given = {k: v for k, v in (("rgb", rgb), ("ir", ir), ("depth", depth)) if v is not None}
        if set(given) != set(self.modalities):
            raise BadInputError(f"model {self.name} codes {'+'.join(self.modalities)} pairs; "
                                f"got {'+'.join(given) or 'nothing'}")
        images = {m: v if isinstance(v, ModalityImage) else load_modality(m, v) for m, v in given.items()}
        return self.compress_images(images, quality, effort)

    def compress_images(self, images: dict[str, ModalityImage], quality: int | None = None,
                        effort: int = 0) -> bytes:
        return self.encode(images, quality, effort)[0]

    @torch.no_grad()
    def encode(self, images: dict[str, ModalityImage], quality: int | None = None, effort: int = 0,
               report: dict[str, Any] | None = None, progress: bool = False) -> tuple[bytes, dict[str, np.ndarray]]:
        """Code a pair; return the .mmc bytes and the reconstruction a decoder will produce
        (integer images in the input format; the stream carries their CRC).

        `effort` > 0 refines the latents at encode time (mmcodec.refine, EFFORT_LEVELS);
        `report`, if given, receives the RD cost before and after and the seconds spent."""
        effort = check_effort(effort)
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
        mismatch = self.geometry_mismatch({m: sizes[m] for m in self.modalities})
        if mismatch is not None:
            raise BadInputError(mismatch)
        x = self.model_inputs(images)
        grey_via_ir = self.routes_grey_visible and images["rgb"].channels == 1
        model = self._model_for(grey_via_ir)
        if grey_via_ir:
            x["rgb"] = x["rgb"][:, :1]   # one plane of the three equal ones
        largest = max((tuple(t.shape[-2:]) for t in x.values()), key=lambda hw: hw[0] * hw[1])
        tiling = plan_tiling(model, self.tile, largest, f"model {self.name}")
        exact = self.exact_entropy_parameters and has_exact_entropy_parameters(model)
        tiled = {"tiling": tiling} if tiling else {}
        refine_threads = self.refine_threads or torch.get_num_threads()
        with _bit_exact_threads(), entropy_parameter_path(model, exact):
            out = self._compress(model, x, quality - 1, **tiled)
            if effort:
                out = self._refined(model, out, x, images, quality, effort, tiled, report, progress, refine_threads)
        infos, recon = [], {}
        for m in self.modalities:
            im = images[m]
            recon[m] = im.to_integer(out.x_hat[m][0, :, :im.height, :im.width].cpu().numpy())
            infos.append(StreamInfo(m, im.height, im.width, im.channels, im.bit_depth, im.value_range,
                                    _recon_crc(recon[m]), im.holes, 0 if self.latent_crcs else None,
                                    grey_via_ir=grey_via_ir and m == "rgb"))
        c = Container(self.name, self.installed.weights_hash, quality, infos, out.streams, out.side, tiling,
                      exact_params=exact, effort=effort)
        if self.latent_crcs:   # the seal zeroes the CRC fields: the placeholders above do not count
            for info in infos:
                info.latent_crc = _latent_crc(out.latents[info.name],
                                              latent_seal(c, info.name, out.latent_side[info.name]))
        return pack(c), recon

    def _compress(self, model: PairModel, x: dict[str, torch.Tensor], rate: int, **kwargs: Any) -> CompressedPair:
        """`model.compress`, with `latents` filled in from the pipelines where the model left it None."""
        record = _LatentRecord(model)
        with observe_latents(record):
            out = model.compress(x, rate, **kwargs)
        if out.latents is None:
            out.latents, out.latent_side = record.latents, record.sides
        if out.latent_side is None:
            out.latent_side = {m: b"" for m in out.latents}
        missing = [m for m in self.modalities if m not in out.latents]
        if missing:
            raise RuntimeError(f"model {self.name} coded no latent for {', '.join(missing)}")
        return out

    def _refined(self, model: PairModel, out: CompressedPair, x: dict[str, torch.Tensor],
                 images: dict[str, ModalityImage],
                 quality: int, effort: int, tiled: dict, report: dict[str, Any] | None,
                 progress: bool, threads: int | None = None) -> CompressedPair:
        """Refine the latents (mmcodec.refine) and keep them wherever their real cost, stream
        bits + lambda * D of the real reconstruction, beats the unrefined encoder's: per
        modality for models whose modalities are coded independently, per pair otherwise."""
        if not supports_refinement(model):
            raise BadInputError(f"model {self.name} (architecture {self.installed.arch}) has no encoder refinement; "
                                "use effort 0")
        lam = self.installed.lambdas[quality - 1]
        distortions = self.installed.budget.get("distortion", {})
        valid = {m: (im.height, im.width) for m, im in images.items()}
        latents, rep = refine(model, x, quality - 1, lam, distortions, valid, EFFORT_LEVELS[effort],
                              progress=progress, threads=threads, **tiled)
        refined = self._compress(model, x, quality - 1, latents=latents, **tiled)

        def real_cost(pair: CompressedPair) -> dict[str, float]:
            bits = {m: 8.0 * sum(map(len, pair.streams[m])) for m in self.modalities}
            bits[self.modalities[-1]] += 8.0 * len(pair.side)
            return {m: float(c) for m, c in rd_cost(bits, pair.x_hat, x, valid, lam, distortions).items()}

        before, after = real_cost(out), real_cost(refined)
        if getattr(model, "independent_modalities", False):
            keep = {m: after[m] < before[m] for m in self.modalities}
            chosen = CompressedPair({m: (refined if keep[m] else out).streams[m] for m in self.modalities},
                                    {m: (refined if keep[m] else out).x_hat[m] for m in self.modalities},
                                    latents={m: (refined if keep[m] else out).latents[m] for m in self.modalities},
                                    latent_side={m: (refined if keep[m] else out).latent_side[m]
                                                 for m in self.modalities})
        else:
            better = sum(after.values()) < sum(before.values())
            keep = {m: better for m in self.modalities}
            chosen = refined if better else out
        if report is not None:
            report.update(effort=effort, iterations=rep.iterations, seconds=round(rep.seconds, 3),
                          diverged=rep.diverged,
                          rd_cost_before=round(sum(before.values()), 5),
                          rd_cost_after=round(sum((after if keep[m] else before)[m] for m in self.modalities), 5),
                          refined=keep)
        return chosen

    # -- decoding -------------------------------------------------------------------------
    @torch.no_grad()
    def decompress(self, blob: bytes | Container, only: str | None = None, strict: bool = False,
                   max_pixels: int | None = DEFAULT_MAX_PIXELS) -> dict[str, np.ndarray]:
        """Decode a stream to integer images (only `only`, if given).

        Streams with latent CRCs (format versions 9-16): a decoded latent that differs from the
        encoder's is refused (BitstreamError); an image that differs from the encoder's
        reconstruction although every latent matched (the float synthesis rounded differently
        on this machine, e.g. ±1 in a few pixels) is returned with a
        ReconstructionMismatchWarning, or refused with `strict=True`. Older streams (versions
        1-8) have only the reconstruction CRC: any mismatch is refused, as before.
        `max_pixels`: refuse a stream whose images add up to more pixels (0 or None: no bound
        beyond the format's), before anything is allocated."""
        if isinstance(blob, Container):
            c = blob
            check_pixel_budget(c, max_pixels)
        else:
            c = unpack(blob, max_pixels)
        if c.model != self.name:
            raise ModelMismatchError(f"stream was written by model {c.model!r}, not {self.name!r}")
        if not self.installed.decodes(c.weights, c.quality):
            raise ModelMismatchError(f"stream was written by {c.model} weights {c.weights}, "
                                     f"installed weights are {self.installed.weights_hash}")
        if c.quality not in self.installed.qualities:
            raise BitstreamError(f"corrupted header: quality {c.quality} out of range")
        infos = {i.name: i for i in c.modalities}
        if set(infos) != set(self.modalities):
            raise BitstreamError(f"corrupted header: modalities {sorted(infos)} do not match model {self.name}")
        # The encoder writes only pairs that fit the model's geometry; a header that does not
        # is damaged (and could make the model work for minutes on a huge claimed size).
        if self.geometry_mismatch({m: (infos[m].height, infos[m].width) for m in self.modalities}):
            if all(self.model.size_ratio(m) == 1 for m in self.modalities):
                raise BitstreamError("corrupted header: the images of the pair differ in size")
            raise BitstreamError(f"corrupted header: the image sizes do not fit the pair geometry of {self.name}")
        if only is not None and only not in infos:
            raise BadInputError(f"--only {only}: the stream holds {', '.join(infos)}")
        if c.tiling is not None and not self.model.supports_tiling:
            raise BitstreamError(f"corrupted header: the stream is tiled, model {self.name} codes whole images only")
        if c.exact_params and not has_exact_entropy_parameters(self.model):
            raise BitstreamError(f"corrupted header: format version {c.version} (integer entropy parameters) "
                                 f"for model {self.name}, which has none")
        sizes = {m: self.padded_size(m, i.height, i.width) for m, i in infos.items()}
        grey_via_ir = "rgb" in infos and infos["rgb"].grey_via_ir
        if grey_via_ir and self._grey_view is None:
            raise BitstreamError(f"corrupted header: grey visible image coded by an infrared codec, which model "
                                 f"{self.name} does not have")
        model = self._model_for(grey_via_ir)
        # Each decoded latent is checked against the stream's latent CRC before its synthesis.
        record = _LatentRecord(model, c) if c.latent_crcs else None
        try:
            with stream_symbol_bound(sum(h * w for h, w in sizes.values())), _bit_exact_threads(), \
                    entropy_parameter_path(model, c.exact_params), \
                    (observe_latents(record) if record is not None else contextlib.nullcontext()):
                x_hat = model.decompress(c.streams, c.side, sizes, c.quality - 1, only=only,
                                         **({"tiling": c.tiling} if c.tiling else {}))
        except (NotImplementedError, RecursionError):
            raise  # RuntimeErrors that only code can cause
        except _BAD_PAYLOAD as exc:
            raise BitstreamError(f"corrupted payload: decoding failed ({type(exc).__name__})") from None
        result = {}
        for m, t in x_hat.items():
            i = infos[m]
            if record is not None and m not in record.latents:
                raise RuntimeError(f"model {self.name} decoded {m} without decoding its latent")
            if not torch.isfinite(t).all():  # garbage symbols can overflow the synthesis transform
                raise BitstreamError(f"corrupted payload: decoded {m} image is not finite")
            arr = denormalise(t[0, :, :i.height, :i.width].cpu().numpy(), i.bit_depth, i.channels, i.value_range,
                              i.holes)
            if _recon_crc(arr) != i.recon_crc:
                if record is None:  # no latent CRC (versions 1-8): nothing tells rounding from damage
                    raise BitstreamError(f"decoded {m} image does not match the encoder's reconstruction "
                                         "(corrupted payload or decoder desynchronised)")
                if strict:
                    raise BitstreamError(f"decoded {m} image does not match the encoder's reconstruction "
                                         "although its latent does (the synthesis rounds differently on this "
                                         "machine); refused (strict)")
                warnings.warn(f"decoded {m} image differs from the encoder's reconstruction although its latent "
                              "matches (the synthesis rounds differently on this machine, typically ±1 in a few "
                              "pixels); kept (strict refuses)", ReconstructionMismatchWarning, stacklevel=2)
            result[m] = arr
        return result




def load(name: str | None = None, quality: int | None = None, pair: str = "ir-vi",
         device: str | torch.device = "cpu", tile: int | None = None) -> Codec:
    """Load an installed model by name (or the default of `pair`) at `quality`. `tile`: encode
    in tiles of that many pixels (a multiple of 16), 0 = whole images, None = automatic."""
    installed = find_model(name, pair)
    return Codec(installed, quality, device, tile)


def read_container(path_or_bytes: str | os.PathLike | bytes,
                   max_pixels: int | None = None) -> tuple[Container, int]:
    """Read and validate a stream (`unpack`); `max_pixels` as in `Codec.decompress`."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes)
    else:
        p = Path(path_or_bytes)
        if not p.is_file():
            raise BadInputError(f"file not found: {p}")
        data = p.read_bytes()
    return unpack(data, max_pixels), len(data)


def codec_for_stream(c: Container, device: str | torch.device = "cpu") -> Codec:
    """The installed model a parsed stream names, at the stream's quality."""
    try:
        installed = find_model(c.model)
    except MMCodecError as exc:
        raise ModelMismatchError(str(exc)) from None
    if c.quality not in installed.qualities:  # a header fault, not a user's --quality
        raise BitstreamError(f"corrupted header: quality {c.quality} out of range")
    return Codec(installed, c.quality, device)


def decompress(blob: bytes, only: str | None = None, device: str | torch.device = "cpu", strict: bool = False,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> dict[str, np.ndarray]:
    """Decode a `.mmc` stream with the model named in its header. `strict`, `max_pixels`: see
    `Codec.decompress` (the pixel bound is checked before the model is loaded)."""
    c = unpack(blob, max_pixels)
    return codec_for_stream(c, device).decompress(c, only=only, strict=strict, max_pixels=max_pixels)


def info(blob: bytes) -> dict[str, Any]:
    c = unpack(blob)
    return c.info(len(blob))
