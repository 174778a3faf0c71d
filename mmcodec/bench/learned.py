"""Evaluation of a learned model on real bitstreams: the one path behind `mmcodec bench`'s
mmcodec:<model> cells and the training ledger (mmcodec.train.campaign).

Bytes are the written .mmc file's: per modality its entropy-coded streams, over that image's
pixels; for the pair the whole file (header, side information, CRC) over the largest image's
pixels (every image's for a same-size pair), as `mmcodec info` reports them. Distortion is
measured on the decoder's output; without `decode` on the encoder's reconstruction, which
the stream's CRC makes identical to it.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from mmcodec.bench import metrics as M
from mmcodec.bitstream import unpack
from mmcodec.codec import Codec
from mmcodec.data.images import ModalityImage, load_modality
from mmcodec.data.pairs import PairRecord


def code_pair(codec: Codec, images: dict[str, ModalityImage], quality: int, effort: int = 0,
              references: dict[str, np.ndarray] | None = None, decode: bool = True,
              msssim: bool = True) -> dict[str, Any]:
    """Code one pair at `quality`; {"rows": {modality: row}, "file_bytes": n, "pair_bpp": bpp}.

    A row holds bytes, bpp, encode_s, decode_s (None without `decode`) and
    mmcodec.bench.metrics.modality_metrics against `references` (integer images as on disk;
    default: each image's own integer form). `msssim=False` leaves out the MS-SSIM keys."""
    t0 = time.perf_counter()
    blob, reconstruction = codec.encode(images, quality, effort)
    t1 = time.perf_counter()
    decoded = codec.decompress(blob) if decode else reconstruction
    decode_s = time.perf_counter() - t1 if decode else None
    info = unpack(blob).info(len(blob))
    rows = {}
    for m in codec.modalities:
        reference = references[m] if references is not None else images[m].to_integer()
        rows[m] = {"bytes": int(info["stream_bytes"][m]), "bpp": info["bpp"][m], "encode_s": t1 - t0,
                   "decode_s": decode_s, **M.modality_metrics(m, reference, decoded[m], msssim=msssim)}
    return {"rows": rows, "file_bytes": len(blob), "pair_bpp": info["pair_bpp"]}


def evaluate_codec(codec: Codec, records: list[PairRecord], qualities: list[int] | None = None,
                   progress: bool = True) -> list[dict[str, Any]]:
    """Mean bpp and PSNR per modality at each quality (one row per quality, low to high):
    quality, pair_bpp, bpp_<m>, psnr_<m>, for depth also rmse_depth and mae_depth (in the
    input's units, mm for RGB-D-D), images. The training ledger's rows."""
    from tqdm import tqdm
    qualities = qualities or codec.installed.qualities
    images = [{m: load_modality(m, r.paths[m]) for m in codec.modalities} for r in records]
    rows = []
    bar = tqdm(total=len(qualities) * len(images), desc=f"eval {codec.name}", disable=not progress, leave=False)
    for q in qualities:
        acc: dict[str, list[float]] = {}
        for ims in images:
            coded = code_pair(codec, ims, q, decode=False, msssim=False)
            acc.setdefault("pair_bpp", []).append(coded["pair_bpp"])
            for m, row in coded["rows"].items():
                acc.setdefault(f"bpp_{m}", []).append(row["bpp"])
                acc.setdefault(f"psnr_{m}", []).append(row[M.PRIMARY_METRIC[m]])
                if m == "depth":
                    acc.setdefault("rmse_depth", []).append(row["rmse"])
                    acc.setdefault("mae_depth", []).append(row["mae"])
            bar.update(1)
        rows.append({"quality": q, **{k: float(np.mean(v)) for k, v in acc.items()}, "images": len(images)})
    bar.close()
    return rows
