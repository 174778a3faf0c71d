"""Coding a visible + infrared video into `.mmv` bytes and back.

    vc = VideoCodec.load("ir-vi-video/lu2022", quality=3)
    blob, recon = vc.encode({"rgb": [HxWx3 uint8, ...], "ir": [HxW uint8, ...]}, gop=10)
    frames = vc.decode(blob)                 # {"rgb": [...], "ir": [...]}, equal to recon
    frames = vc.decode(blob, only="ir")      # reads only the infrared records

I-frames (every `gop`-th frame) are coded by the image pair codec the video model names
(`ir-vi/separate` at the same quality), stored as one one-modality `.mmc` record per modality.
P-frames are coded by the FVC codecs (mmcodec.video.fvc), or skipped: with `skip` (the
default) the encoder compares, per frame and modality, the coded P-frame with repeating the
previous decoded frame and keeps the one of lower RD cost (bits per pixel + lambda * MSE in
code values squared, the training objective at the quality's lambda); a skipped frame is a
record without stream parts. The encoder's references are the
frames the decoder will reconstruct (integer frames, their CRCs in the stream), so decoding
repeats the encoder's arithmetic exactly; both run single-threaded (docs/bitstream.md,
Determinism).
"""
from __future__ import annotations

import time
import warnings
import zlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmcodec.bitstream import Container, StreamInfo, pack, unpack
from mmcodec.bitstream.video_container import (VIDEO_MODALITIES, VideoContainer, pack_p_record, pack_video,
                                               unpack_p_record, unpack_video)
from mmcodec.codec import Codec, _bit_exact_threads
from mmcodec.data.images import load_modality
from mmcodec.errors import (BadInputError, BitstreamError, ModelMismatchError, ReconstructionMismatchWarning,
                            UnknownModelError)
from mmcodec.models.registry import InstalledModel, find_model
from mmcodec.video.fvc import PADDING, CrossContext, VideoPairModel
from mmcodec.video.registry import find_video_model, load_video_model

_BAD_PAYLOAD = (ValueError, RuntimeError, OverflowError)


def _crc(arr: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(arr).tobytes()) & 0xFFFFFFFF


def _tensor(frame: np.ndarray) -> torch.Tensor:
    """uint8 frame -> (1, C, H', W') in [0, 1], replicate-padded to a multiple of PADDING."""
    t = torch.from_numpy(np.ascontiguousarray(frame)).float().div_(255.0)
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    h, w = t.shape[-2:]
    return F.pad(t, (0, (-w) % PADDING, 0, (-h) % PADDING), mode="replicate")


def _frame(x_hat: torch.Tensor, h: int, w: int) -> np.ndarray:
    a = (x_hat[0, :, :h, :w].clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    return np.ascontiguousarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))


class _History:
    """Features of the last two decoded frames of one modality (newest first), and the last
    decoded frame itself (padded)."""

    def __init__(self) -> None:
        self.refs: list[torch.Tensor] = []
        self.prev: torch.Tensor | None = None

    def push(self, features: torch.Tensor, frame: torch.Tensor) -> None:
        self.refs = [features] + self.refs[:1]
        self.prev = frame


def rd_cost(frame: np.ndarray, original: np.ndarray, bits: int, lam: float) -> float:
    """The training objective of one frame: bits per pixel + lambda * MSE (code values squared)."""
    err = frame.astype(np.float64) - original.astype(np.float64)
    return bits / (frame.shape[0] * frame.shape[1]) + lam * float(np.mean(err * err))


class VideoCodec:
    def __init__(self, installed: InstalledModel, quality: int | None = None, skip: bool = True) -> None:
        """`skip`: let the encoder skip a P-frame (repeat the previous decoded frame) where
        that costs less than coding it (module docstring); False codes every P-frame."""
        self.installed = installed
        self.skip = skip
        self.model: VideoPairModel = load_video_model(installed)
        iframe = installed.extra.get("iframe_model", "ir-vi/separate")
        self.image = Codec(find_model(iframe), quality)
        self.quality = self.image.quality
        if self.quality > len(installed.lambdas):
            raise BadInputError(f"quality {self.quality} not available for {installed.name}; "
                                f"choose 1..{len(installed.lambdas)}")

    @classmethod
    def load(cls, name: str | None = None, quality: int | None = None, skip: bool = True) -> "VideoCodec":
        return cls(find_video_model(name), quality, skip)

    @property
    def name(self) -> str:
        return self.installed.name

    # -- I-frames -------------------------------------------------------------------------
    def _intra(self, rgb: np.ndarray, ir: np.ndarray) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
        blob, recon = self.image.encode({"rgb": load_modality("rgb", rgb), "ir": load_modality("ir", ir)},
                                        self.quality)
        c = unpack(blob)
        records = {}
        for info in c.modalities:   # one one-modality .mmc per modality (its latent CRC is sealed alone)
            records[info.name] = pack(Container(c.model, c.weights, c.quality, [info], {info.name: c.streams[info.name]},
                                                c.side, c.tiling, c.exact_params, c.effort))
        if recon["rgb"].ndim == 2:   # a grey visible frame: the video keeps three channels
            recon["rgb"] = np.repeat(recon["rgb"][..., None], 3, axis=2)
        return records, recon

    def _decode_intra(self, records: dict[str, bytes], wanted: tuple[str, ...], h: int, w: int,
                      frame: int) -> dict[str, np.ndarray]:
        parts = {}
        for m in wanted:
            c = unpack(records[m])
            if len(c.modalities) != 1 or c.modalities[0].name != m:
                raise BitstreamError(f"corrupted video stream: frame {frame} ({m}) is not a {m} I-frame")
            parts[m] = c
        first = next(iter(parts.values()))
        infos = []
        for m in self.image.modalities:   # a modality left out gets a placeholder record (never decoded)
            if m in parts:
                infos.append(parts[m].modalities[0])
            else:
                infos.append(StreamInfo(m, h, w, 3 if m == "rgb" else 1, 8, (0, 255), 0,
                                        latent_crc=0 if first.latent_crcs else None))
        merged = Container(first.model, first.weights, first.quality, infos,
                           {m: (parts[m].streams[m] if m in parts else []) for m in self.image.modalities},
                           first.side, first.tiling, first.exact_params, first.effort)
        only = wanted[0] if len(wanted) == 1 else None
        out = self.image.decompress(merged, only=only)
        if "rgb" in out and out["rgb"].ndim == 2:
            out["rgb"] = np.repeat(out["rgb"][..., None], 3, axis=2)
        return out

    # -- encoding ---------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, seqs: dict[str, list[np.ndarray]], gop: int, progress: bool = False,
               timing: dict[str, float] | None = None) -> tuple[bytes, dict[str, list[np.ndarray]]]:
        """Code a pair of sequences (same frame count and size); return the `.mmv` bytes and
        the frames a decoder will output."""
        n = len(seqs["ir"])
        if n != len(seqs["rgb"]) or n == 0:
            raise BadInputError(f"visible has {len(seqs['rgb'])} frames, infrared {n}: they must be equal and > 0")
        h, w = seqs["ir"][0].shape[:2]
        if any(f.shape[:2] != (h, w) for m in seqs for f in seqs[m]):
            raise BadInputError("every frame of both sequences must have the same size")
        if not 1 <= gop <= 65535:
            raise BadInputError(f"--gop must be 1..65535, got {gop}")
        rate = self.quality - 1
        lam = float(self.installed.lambdas[rate])
        records: list[dict[str, bytes]] = []
        recon: dict[str, list[np.ndarray]] = {m: [] for m in VIDEO_MODALITIES}
        history = {m: _History() for m in VIDEO_MODALITIES}
        start = time.perf_counter()
        from tqdm import tqdm
        with _bit_exact_threads():
            for i in tqdm(range(n), desc="compress-video", unit="frame", disable=not progress):
                if i % gop == 0:
                    rec, frames = self._intra(seqs["rgb"][i], seqs["ir"][i])
                    history = {m: _History() for m in VIDEO_MODALITIES}
                else:
                    rec, frames, cross = {}, {}, None
                    for m in VIDEO_MODALITIES:
                        codec = self.model.codecs[m]
                        strings, out = codec.compress(_tensor(seqs[m][i]), history[m].refs, history[m].prev, rate,
                                                      cross if m == "rgb" else None)
                        frames[m] = _frame(out["x_hat"], h, w)
                        if self.skip:
                            repeated = _frame(history[m].prev, h, w)
                            coded_bits = 8 * sum(len(p) for p in strings)
                            if rd_cost(repeated, seqs[m][i], 0, lam) <= rd_cost(frames[m], seqs[m][i], coded_bits, lam):
                                strings, out, frames[m] = [], codec.skipped(history[m].prev), repeated
                        if m == "ir" and self.model.cross:
                            cross = CrossContext(out["features"], out["stages"])
                        rec[m] = pack_p_record(_crc(frames[m]), strings)
                for m in VIDEO_MODALITIES:
                    recon[m].append(frames[m])
                    # The next reference: the integer frame the decoder will have.
                    decoded = _tensor(frames[m])
                    history[m].push(self.model.codecs[m].features(decoded), decoded)
                records.append(rec)
        if timing is not None:
            timing["encode_seconds"] = time.perf_counter() - start
        c = VideoContainer(self.name, self.installed.weights_hash, self.image.name, self.image.installed.weights_hash,
                           self.quality, gop, h, w, VIDEO_MODALITIES, records)
        return pack_video(c), recon

    # -- decoding ---------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, data: bytes | VideoContainer, only: str | None = None, progress: bool = False,
               strict: bool = False, timing: dict[str, float] | None = None) -> dict[str, list[np.ndarray]]:
        if only is not None and only not in VIDEO_MODALITIES:
            raise BadInputError(f"--only {only}: a video stream holds {', '.join(VIDEO_MODALITIES)}")
        wanted = tuple(VIDEO_MODALITIES) if only is None else tuple(
            m for m in VIDEO_MODALITIES if m in self.model.requires(only))
        c = data if isinstance(data, VideoContainer) else unpack_video(data, wanted)
        check_stream(c, self)
        rate = c.quality - 1
        out: dict[str, list[np.ndarray]] = {m: [] for m in wanted}
        history = {m: _History() for m in wanted}
        start = time.perf_counter()
        from tqdm import tqdm
        with _bit_exact_threads():
            for i in tqdm(range(c.frames), desc="decompress", unit="frame", disable=not progress):
                rec = c.records[i]
                try:
                    if c.is_intra(i):
                        frames = self._decode_intra(rec, wanted, c.height, c.width, i)
                        history = {m: _History() for m in wanted}
                    else:
                        frames, cross = {}, None
                        for m in wanted:
                            crc, parts = unpack_p_record(rec[m], i, m)
                            res = self.model.codecs[m].decompress(parts, history[m].refs, history[m].prev, rate,
                                                                  cross if m == "rgb" else None)
                            if m == "ir" and self.model.cross:
                                cross = CrossContext(res["features"], res["stages"])
                            frames[m] = _frame(res["x_hat"], c.height, c.width)
                            if _crc(frames[m]) != crc:
                                msg = (f"frame {i} ({m}) differs from the encoder's reconstruction (the float "
                                       "networks round differently on this machine)")
                                if strict:
                                    raise BitstreamError(msg + "; refused (strict)")
                                warnings.warn(msg, ReconstructionMismatchWarning, stacklevel=2)
                except BitstreamError as exc:
                    if "frame" in str(exc):
                        raise
                    raise BitstreamError(f"frame {i}: {exc}") from None
                except _BAD_PAYLOAD as exc:
                    raise BitstreamError(f"corrupted video stream: frame {i} fails to decode "
                                         f"({type(exc).__name__})") from None
                for m in wanted:
                    out[m].append(frames[m])
                    decoded = _tensor(frames[m])
                    history[m].push(self.model.codecs[m].features(decoded), decoded)
        if timing is not None:
            timing["decode_seconds"] = time.perf_counter() - start
        return out if only is None else {only: out[only]}


def check_stream(c: VideoContainer, vc: VideoCodec) -> None:
    if c.model != vc.name:
        raise ModelMismatchError(f"stream was written by video model {c.model!r}, not {vc.name!r}")
    if c.weights != vc.installed.weights_hash:
        raise ModelMismatchError(f"stream was written by {c.model} weights {c.weights}, installed weights are "
                                 f"{vc.installed.weights_hash}")
    if c.iframe_model != vc.image.name or c.iframe_weights != vc.image.installed.weights_hash:
        raise ModelMismatchError(f"stream's I-frames were coded by {c.iframe_model} weights {c.iframe_weights}, "
                                 f"installed: {vc.image.name} {vc.image.installed.weights_hash}")


def codec_for_video(c: VideoContainer) -> VideoCodec:
    try:
        installed = find_video_model(c.model)
    except UnknownModelError as exc:
        raise ModelMismatchError(str(exc)) from None
    if not 1 <= c.quality <= len(installed.lambdas):
        raise BitstreamError(f"corrupted video header: quality {c.quality} out of range")
    return VideoCodec(installed, c.quality)


def video_info(data: bytes) -> dict[str, Any]:
    return unpack_video(data).info(len(data))
