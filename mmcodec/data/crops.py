"""Training data: pairs held in memory, served as random aligned crops."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from mmcodec.data.images import load_modality
from mmcodec.data.pairs import PairRecord
from mmcodec.errors import BadInputError


class PairCrops:
    """Random aligned crops of every modality of a set of pairs, with random flips.

    All images are decoded once into memory (float16) so a training step costs no I/O.

    `darken` ({modality: (probability, min_gain[, channel_jitter])}) multiplies a crop of that
    modality, with that probability, by a gain drawn log-uniformly from [min_gain, 1]: a
    low-light exposure. With `channel_jitter` j each channel also gets its own factor
    exp(U(-j, j)): a white-balance shift (a colour cast). The training sets are mostly daytime
    and near-neutral in colour, and codecs trained on them alone can spend many times the bits
    on dark, tinted night scenes (BENCHMARKS.md, "Low-light augmentation").
    """

    def __init__(self, records: list[PairRecord], modalities: tuple[str, ...], seed: int = 0,
                 progress: bool = True, darken: dict[str, Sequence[float]] | None = None) -> None:
        if not records:
            raise BadInputError("no training pairs")
        self.modalities = modalities
        self.darken = {m: (float(spec[0]), float(spec[1]), float(spec[2]) if len(spec) > 2 else 0.0)
                       for m, spec in (darken or {}).items()}
        self.images: list[dict[str, np.ndarray]] = []
        for rec in tqdm(records, desc="loading pairs", disable=not progress, leave=False):
            ims = {m: load_modality(m, rec.paths[_folder_key(m, rec)]).data.astype(np.float16)
                   for m in modalities}
            shapes = {im.shape[1:] for im in ims.values()}
            if len(shapes) != 1:
                continue  # a misregistered pair in a training set is skipped, not fatal
            self.images.append(ims)
        self.rng = np.random.default_rng(seed)
        # A separate stream for the gains: the same seed gives the same crops with or without
        # `darken`, so an augmented run and its control see identical crops.
        self.gain_rng = np.random.default_rng([seed, 1])

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, batch_size: int, crop: int) -> dict[str, torch.Tensor]:
        out: dict[str, list[np.ndarray]] = {m: [] for m in self.modalities}
        for _ in range(batch_size):
            ims = self.images[self.rng.integers(len(self.images))]
            h, w = next(iter(ims.values())).shape[1:]
            top = int(self.rng.integers(max(h - crop, 0) + 1))
            left = int(self.rng.integers(max(w - crop, 0) + 1))
            flip = bool(self.rng.integers(2))
            for m in self.modalities:
                c = ims[m][:, top:top + crop, left:left + crop]
                if c.shape[1] < crop or c.shape[2] < crop:
                    c = np.pad(c, ((0, 0), (0, crop - c.shape[1]), (0, crop - c.shape[2])), mode="edge")
                c = c[:, :, ::-1] if flip else c
                if m in self.darken:
                    probability, min_gain, jitter = self.darken[m]
                    if self.gain_rng.random() < probability:
                        log_gain = self.gain_rng.uniform(np.log(min_gain), 0.0)
                        if jitter:
                            log_gain = log_gain + self.gain_rng.uniform(-jitter, jitter, (c.shape[0], 1, 1))
                        c = np.clip(c * np.exp(log_gain).astype(np.float16), 0, 1)
                out[m].append(c)
        return {m: torch.from_numpy(np.stack(v).astype(np.float32)) for m, v in out.items()}


def _folder_key(modality: str, rec: PairRecord) -> str:
    return modality if modality in rec.paths else {"rgb": "vi"}.get(modality, modality)
