"""Training data: pairs held in memory, served as random aligned crops."""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mmcodec.data.frames import VIDEO_SUFFIXES, read_sequence
from mmcodec.data.images import IMAGE_SUFFIXES, load_modality
from mmcodec.data.pairs import SPLITS, PairRecord, data_root, split_records
from mmcodec.errors import BadInputError
from mmcodec.modalities import CHANNELS


class PairCrops:
    """Random aligned crops of every modality of a set of pairs, with random flips.

    All images are decoded once into memory (float16) so a training step costs no I/O.

    `darken` ({modality: (probability, min_gain[, channel_jitter])}) multiplies a crop of that
    modality, with that probability, by a gain drawn log-uniformly from [min_gain, 1]: a
    low-light exposure. With `channel_jitter` j each channel also gets its own factor
    exp(U(-j, j)): a white-balance shift (a colour cast). The training sets are mostly daytime
    and near-neutral in colour, and codecs trained on them alone can spend many times the bits
    on dark, tinted night scenes (BENCHMARKS.md, "Low-light augmentation").

    `single_images` ({modality: {folder: weight}}) mixes folders of single images (no partner)
    into the crops of that modality: each crop comes from `folder` with probability `weight`,
    and from the pairs otherwise. The modalities of one sample are then no longer aligned, so
    this is for models that code every modality on its own (separate coding). The crops drawn
    from the pairs are the ones a run without `single_images` draws (own random stream).

    Pair geometry: `ratios` ({modality: r}, default 1 for all; the model's `size_ratio`) is
    each modality's resolution relative to the lowest-resolution one (r = 1). A pair fits when
    every side of a modality is r times the base modality's, give or take r - 1 pixels
    (|side - r * base| < r, as the Codec checks); a pair that does not is a BadInputError
    naming it. `batch(n, crop)` draws a crop of side `crop` at (y, x) on the base modality
    and, aligned with it, the crop of side r * crop at (r * y, r * x) on a modality of ratio
    r (edge-padded where the image is smaller), with the same flip for all.

    `downsample` ({modality: f}) area-averages that modality's images f x f when they are
    loaded (rows and columns beyond a multiple of f are dropped): same-size aligned pairs
    with {"ir": 2} become pairs whose visible image has twice the infrared resolution, the
    2:1 geometry Lu et al. trained on (they resized visible to 1280x1024 against 640x512
    infrared). The `ratios` are checked after it.
    """

    def __init__(self, records: list[PairRecord], modalities: tuple[str, ...], seed: int = 0,
                 progress: bool = True, darken: dict[str, Sequence[float]] | None = None,
                 single_images: dict[str, dict[str, float]] | None = None,
                 ratios: dict[str, int] | None = None, downsample: dict[str, int] | None = None) -> None:
        if not records:
            raise BadInputError("no training pairs")
        self.modalities = modalities
        self.ratios = {m: int((ratios or {}).get(m, 1)) for m in modalities}
        if min(self.ratios.values()) != 1:
            raise BadInputError(f"pair geometry {self.ratios}: one modality must have ratio 1")
        self.base = next(m for m in modalities if self.ratios[m] == 1)
        self.downsample = {m: int(f) for m, f in (downsample or {}).items()}
        self.darken = {m: (float(spec[0]), float(spec[1]), float(spec[2]) if len(spec) > 2 else 0.0)
                       for m, spec in (darken or {}).items()}
        self.images: list[dict[str, np.ndarray]] = []
        for rec in tqdm(records, desc="loading pairs", disable=not progress, leave=False):
            ims = {}
            for m in modalities:
                path = rec.paths[_folder_key(m, rec)]
                data = load_modality(m, path).data
                factor = self.downsample.get(m, 1)
                if factor > 1:
                    if min(data.shape[1:]) < factor:
                        raise BadInputError(f"pair {_pair_name(rec)}: {m} {data.shape[2]}x{data.shape[1]} is too "
                                            f"small to downsample by {factor}")
                    data = area_downsample(data, factor)
                ims[m] = data.astype(np.float16)
            if (problem := self._geometry_problem(ims)) is not None:
                raise BadInputError(f"pair {_pair_name(rec)}: {problem}")
            self.images.append(ims)
        self.rng = np.random.default_rng(seed)
        # A separate stream for the gains: the same seed gives the same crops with or without
        # `darken`, so an augmented run and its control see identical crops.
        self.gain_rng = np.random.default_rng([seed, 1])
        self.source_rng = np.random.default_rng([seed, 2])
        self.singles: dict[str, list[tuple[str, float, list[np.ndarray]]]] = {}
        for m, sources in (single_images or {}).items():
            self.singles[m] = [(folder, float(weight), load_single_images(m, folder, progress))
                               for folder, weight in sources.items()]
        if progress:
            print(self.describe(), file=sys.stderr)

    def _geometry_problem(self, ims: dict[str, np.ndarray]) -> str | None:
        """Why the images of one pair do not fit `ratios` (after `downsample`), or None."""
        bh, bw = ims[self.base].shape[1:]
        for m, im in ims.items():
            h, w = im.shape[1:]
            r = self.ratios[m]
            if abs(h - r * bh) < r and abs(w - r * bw) < r:
                continue
            resized = f" after downsample {self.downsample}" if self.downsample else ""
            if r == 1:
                return (f"{m} is {w}x{h} but {self.base} is {bw}x{bh}{resized} "
                        "(the images of a pair must be aligned and the same size)")
            return (f"{m} is {w}x{h}{resized} but must be {r}x the {self.base} size "
                    f"{bw}x{bh} (±{r - 1} pixel per side)")
        return None

    def crop_sizes(self, crop: int) -> dict[str, int]:
        """The side of each modality's crops for a base crop of side `crop`."""
        return {m: self.ratios[m] * crop for m in self.modalities}

    def single_sources(self, modality: str) -> list[tuple[str, float, int]]:
        """(folder, weight, image count) of each single-image source of `modality`."""
        return [(folder, w, len(ims)) for folder, w, ims in self.singles.get(modality, [])]

    def describe(self) -> str:
        """How many images of each source the crops use, e.g. for the training log."""
        parts = [f"{len(self.images)} pairs"]
        for m, sources in self.singles.items():
            parts += [f"{len(ims)} {m} images from {folder} (p={w:g})" for folder, w, ims in sources]
        return "training data: " + ", ".join(parts)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, batch_size: int, crop: int) -> dict[str, torch.Tensor]:
        """`batch_size` aligned samples: crops of side `crop` on the base (ratio-1) modality,
        r * crop on a modality of ratio r."""
        out: dict[str, list[np.ndarray]] = {m: [] for m in self.modalities}
        for _ in range(batch_size):
            ims = self.images[self.rng.integers(len(self.images))]
            h, w = ims[self.base].shape[1:]
            top = int(self.rng.integers(max(h - crop, 0) + 1))
            left = int(self.rng.integers(max(w - crop, 0) + 1))
            flip = bool(self.rng.integers(2))
            for m in self.modalities:
                r = self.ratios[m]
                side = r * crop
                c = ims[m][:, r * top:r * top + side, r * left:r * left + side]
                if c.shape[1] < side or c.shape[2] < side:
                    c = np.pad(c, ((0, 0), (0, side - c.shape[1]), (0, side - c.shape[2])), mode="edge")
                c = c[:, :, ::-1] if flip else c
                if m in self.singles:
                    c = self._maybe_single(m, side, c)
                if m in self.darken:
                    probability, min_gain, jitter = self.darken[m]
                    if self.gain_rng.random() < probability:
                        log_gain = self.gain_rng.uniform(np.log(min_gain), 0.0)
                        if jitter:
                            log_gain = log_gain + self.gain_rng.uniform(-jitter, jitter, (c.shape[0], 1, 1))
                        c = np.clip(c * np.exp(log_gain).astype(np.float16), 0, 1)
                out[m].append(c)
        return {m: torch.from_numpy(np.stack(v).astype(np.float32)) for m, v in out.items()}


    def _maybe_single(self, modality: str, crop: int, pair_crop: np.ndarray) -> np.ndarray:
        """A crop from one of the modality's single-image folders (with its probability), or
        the pair's crop."""
        u = self.source_rng.random()
        for _, weight, ims in self.singles[modality]:
            if u < weight:
                im = ims[self.source_rng.integers(len(ims))]
                return _random_crop(im, crop, self.source_rng)
            u -= weight
        return pair_crop


def area_downsample(im: np.ndarray, factor: int) -> np.ndarray:
    """(C, H, W) -> (C, H // factor, W // factor): the mean of each factor x factor block
    (in float32); rows and columns beyond a multiple of `factor` are dropped."""
    c, h, w = im.shape
    h, w = h - h % factor, w - w % factor
    blocks = im[:, :h, :w].astype(np.float32).reshape(c, h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(2, 4))


def _pair_name(rec: PairRecord) -> str:
    """A pair as a user finds it on disk: its folder of modality folders and its stem."""
    folder = next(iter(rec.paths.values())).parent.parent
    return f"{rec.stem} in {folder}"


def _random_crop(im: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    h, w = im.shape[1:]
    top = int(rng.integers(max(h - crop, 0) + 1))
    left = int(rng.integers(max(w - crop, 0) + 1))
    c = im[:, top:top + crop, left:left + crop]
    if c.shape[1] < crop or c.shape[2] < crop:
        c = np.pad(c, ((0, 0), (0, crop - c.shape[1]), (0, crop - c.shape[2])), mode="edge")
    return c[:, :, ::-1] if rng.integers(2) else c


def single_image_folder(folder: str) -> Path:
    """A single-image source: an absolute path, or a path relative to the data root."""
    p = Path(folder)
    return p if p.is_absolute() else data_root() / p


# Frames taken from a video source: every 8th (at 30 fps neighbours nearly repeat, and memory
# stays bounded: 1,913 frames of 640x480 give 240 crops' sources, 0.4 GB as float16 RGB).
VIDEO_FRAME_STRIDE = 8


# Named splits a single-image source may take its images from. The others hold test or
# validation pairs: training on one of their modalities would leak into what selects or reports.
TRAINING_SPLITS = ("ir-vi-train", "rgbdd-train")


def load_single_images(modality: str, folder: str, progress: bool = False) -> list[np.ndarray]:
    """Every image of a folder as a modality's normalised float16 array (C, H, W); a folder of
    videos gives every VIDEO_FRAME_STRIDE-th frame of each video; a named training split
    (TRAINING_SPLITS) gives its pairs' images of that modality, without their partners (e.g. the
    RGB images of the RGB-D pairs for the visible codec of an ir-vi model)."""
    if folder in SPLITS:
        if folder not in TRAINING_SPLITS:
            raise BadInputError(f"single_images: {folder} is a test or validation split; "
                                f"only {', '.join(TRAINING_SPLITS)} may train")
        records = split_records(folder)
        missing = [r.stem for r in records if _folder_key(modality, r) not in r.paths]
        if missing:
            raise BadInputError(f"single_images: split {folder} has no {modality} images (pair {missing[0]})")
        return [load_modality(modality, r.paths[_folder_key(modality, r)]).data.astype(np.float16)
                for r in tqdm(records, desc=f"loading {folder}", disable=not progress, leave=False)]
    root = single_image_folder(folder)
    if not root.is_dir():
        raise BadInputError(f"single_images: not a directory: {root}")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if files:
        return [load_modality(modality, f).data.astype(np.float16)
                for f in tqdm(files, desc=f"loading {root.name}", disable=not progress, leave=False)]
    videos = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise BadInputError(f"single_images: no images or videos in {root}")
    if modality == "depth":
        raise BadInputError(f"single_images: {root} holds videos, which are 8-bit; depth trains on 16-bit images")
    return [load_modality(modality, frame).data.astype(np.float16)
            for v in tqdm(videos, desc=f"decoding {root.name}", disable=not progress, leave=False)
            for frame in read_sequence(v, "ir" if CHANNELS[modality] == 1 else "rgb", every=VIDEO_FRAME_STRIDE)]


def _folder_key(modality: str, rec: PairRecord) -> str:
    return modality if modality in rec.paths else {"rgb": "vi"}.get(modality, modality)
