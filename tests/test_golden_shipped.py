"""The shipped models code fixed inputs to fixed bytes: a refactor must not change one bit.

The hashes were recorded from main at 1917dfe, before the pipeline redesign (issue 19): every
shipped model, at every quality, on a synthetic pair and on one real pair of its type (a
128 x 128 crop from ../shared/data/fixture_tiny). The stream carries a CRC of the
reconstruction, so equal files also mean equal decoded images.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

import mmcodec
from mmcodec.data.images import load_modality
from mmcodec.data.pairs import data_root

from conftest import smooth_image

REAL = {"ir-vi": ("ir_vi", {"rgb": "vi", "ir": "ir"}, "roadscene_FLIR_00006.png"),
        "rgb-d": ("rgb_depth", {"rgb": "rgb", "depth": "depth"}, "redwood_00000.png")}

# (model, input, quality) -> sha256 prefix of the .mmc file
GOLDEN = {
    ("ir-vi/ccem", "real", 1): "cab0aaeb39e6a2c7",
    ("ir-vi/ccem", "real", 2): "0957844efc5a5333",
    ("ir-vi/ccem", "real", 3): "bb1e9447c9bc5326",
    ("ir-vi/ccem", "real", 4): "a5ceac24b5f5a8dc",
    ("ir-vi/ccem", "synthetic", 1): "e64150380e6d2c72",
    ("ir-vi/ccem", "synthetic", 2): "f39ec6f67190fdd6",
    ("ir-vi/ccem", "synthetic", 3): "a5b34a0b082eedda",
    ("ir-vi/ccem", "synthetic", 4): "e473cc32c3d22d48",
    ("ir-vi/lu2022", "real", 1): "756a4ae8ecfe0c3c",
    ("ir-vi/lu2022", "real", 2): "4025d636144e19b6",
    ("ir-vi/lu2022", "real", 3): "b39b417ef7199bff",
    ("ir-vi/lu2022", "real", 4): "eeb66374f03a2ca4",
    ("ir-vi/lu2022", "synthetic", 1): "b2c6718fd74c0d76",
    ("ir-vi/lu2022", "synthetic", 2): "46e6a8762e844ad6",
    ("ir-vi/lu2022", "synthetic", 3): "b9d6fe183340e384",
    ("ir-vi/lu2022", "synthetic", 4): "c25cb79fbe146ef5",
    ("ir-vi/separate", "real", 1): "c1485ba470c2187d",
    ("ir-vi/separate", "real", 2): "5b8821c3fa71d699",
    ("ir-vi/separate", "real", 3): "76816b19bd5f1a12",
    ("ir-vi/separate", "real", 4): "e5165cfcd183a82e",
    ("ir-vi/separate", "synthetic", 1): "f55791b8f2e6780e",
    ("ir-vi/separate", "synthetic", 2): "a3bfefd49c3b12a2",
    ("ir-vi/separate", "synthetic", 3): "688fd9e1cb27736a",
    ("ir-vi/separate", "synthetic", 4): "1848db446b2c6f5f",
    ("rgb-d/hyperprior", "real", 1): "c91a98d46c217263",
    ("rgb-d/hyperprior", "real", 2): "9505f8fc8d2ed416",
    ("rgb-d/hyperprior", "real", 3): "39740ac9cec45622",
    ("rgb-d/hyperprior", "real", 4): "13f3acfab7a92cd2",
    ("rgb-d/hyperprior", "synthetic", 1): "8c309504f83ada9a",
    ("rgb-d/hyperprior", "synthetic", 2): "46718ad5bd1c9336",
    ("rgb-d/hyperprior", "synthetic", 3): "b257133611ab99cf",
    ("rgb-d/hyperprior", "synthetic", 4): "0dbab12cf1b6ab74",
}


def _inputs(pair: str, kind: str) -> dict:
    modalities = ("rgb", "ir") if pair == "ir-vi" else ("rgb", "depth")
    if kind == "synthetic":
        return {m: load_modality(m, smooth_image(96, 160, 3 if m == "rgb" else 1, seed=7 + i,
                                                 dtype=np.uint16 if m == "depth" else np.uint8))
                for i, m in enumerate(modalities)}
    folder, names, stem = REAL[pair]
    root = data_root() / "fixture_tiny" / folder
    if not root.is_dir():
        pytest.skip(f"real fixture pairs not found under {root}")
    return {m: load_modality(m, root / names[m] / stem) for m in modalities}


def file_hash(model: str, kind: str, quality: int) -> str:
    codec = mmcodec.load(model, quality=quality)
    blob = codec.compress_images(_inputs(model.split("/")[0], kind), quality, effort=0)
    return hashlib.sha256(blob).hexdigest()[:16]


@pytest.mark.parametrize("model,kind,quality", sorted(GOLDEN))
def test_shipped_model_bytes_are_unchanged(model, kind, quality):
    assert file_hash(model, kind, quality) == GOLDEN[(model, kind, quality)]


if __name__ == "__main__":   # print the table (run from the tests folder on the commit to record)
    import torch
    from mmcodec.models.registry import find_model
    torch.set_num_threads(1)
    for name in ("ir-vi/ccem", "ir-vi/lu2022", "ir-vi/separate", "rgb-d/hyperprior"):
        for kind in ("real", "synthetic"):
            for q in find_model(name).qualities:
                print(f'    ("{name}", "{kind}", {q}): "{file_hash(name, kind, q)}",', flush=True)
