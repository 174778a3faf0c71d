"""The ledger evaluation (mmcodec.bench.learned.evaluate_codec) on a real round trip of a tiny model."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

from mmcodec.bench.learned import evaluate_codec
from mmcodec.codec import Codec
from mmcodec.data.pairs import PairRecord
from mmcodec.models.registry import find_model

from conftest import smooth_image


def test_depth_rmse_and_mae_are_in_input_units(tiny_env, tmp_path):
    rgb, depth = tmp_path / "rgb.png", tmp_path / "depth.png"
    Image.fromarray(smooth_image(64, 64, 3, seed=1)).save(rgb)
    depth_mm = smooth_image(64, 64, 1, seed=2, dtype=np.uint16) // 8     # a few metres in mm
    Image.fromarray(depth_mm).save(depth)
    record = PairRecord("p", "rgb-d", {"rgb": rgb, "depth": depth})
    rows = evaluate_codec(Codec(find_model("rgb-d/tiny")), [record], progress=False)
    assert [r["quality"] for r in rows] == [1, 2]
    for row in rows:
        # One image: the RMSE must agree with the PSNR (peak 65535) it was measured beside.
        assert math.isclose(row["rmse_depth"], 65535 / 10 ** (row["psnr_depth"] / 20), rel_tol=1e-6)
        assert 0 < row["mae_depth"] <= row["rmse_depth"] < float(depth_mm.max())
        assert "rmse_rgb" not in row
