"""Training on 2:1 pairs (Lu et al.'s geometry, issue 24): aligned crops at both scales,
`downsample` to make 2:1 pairs from same-size ones, and the checks that refuse what the model
cannot train on before any work."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmcodec.cli import main
from mmcodec.data.crops import PairCrops, area_downsample
from mmcodec.data.pairs import find_pairs
from mmcodec.errors import BadInputError
from mmcodec.train.trainer import train

from conftest import smooth_image, tiny_train_config

# A tiny 2:1 Lu model: visible (reference) at twice the infrared resolution.
LU_2TO1 = {"modalities": ["rgb", "ir"], "N": 8, "M": 12, "num_rates": 2, "sa_dim": 12, "align_ch": 8, "ratio": 2}


def write_pairs(root: Path, sizes: list[tuple[tuple[int, int], tuple[int, int]]], grey_ir: bool = False) -> Path:
    """vi/ + ir/ pairs of the given (vi (H, W), ir (H, W)) sizes; with `grey_ir` (same sizes
    only) the infrared image is the visible image's first channel."""
    for sub in ("vi", "ir"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, (vi_hw, ir_hw) in enumerate(sizes):
        vi = smooth_image(*vi_hw, 3, seed=i)
        ir = vi[..., 0] if grey_ir else smooth_image(*ir_hw, 1, seed=100 + i)
        Image.fromarray(vi).save(root / "vi" / f"p{i}.png")
        Image.fromarray(ir).save(root / "ir" / f"p{i}.png")
    return root


def test_area_downsample_averages_blocks_and_drops_the_odd_edge():
    im = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    out = area_downsample(im, 2)
    assert out.shape == (2, 2, 3)
    assert out[1, 1, 2] == im[1, 2:4, 4:6].mean()


def test_downsampled_pairs_give_aligned_crops_at_both_scales(tmp_path):
    # The infrared image is the visible's first channel, so after downsample {"ir": 2} every
    # infrared crop must be the 2x2 average of the visible crop's first channel: same place,
    # same flip. Odd sizes (floor-downsampled infrared) are included.
    root = write_pairs(tmp_path / "pairs", [((96, 128), None), ((101, 87), None), ((64, 64), None)], grey_ir=True)
    data = PairCrops(find_pairs(root), ("rgb", "ir"), seed=1, progress=False,
                     ratios={"rgb": 2, "ir": 1}, downsample={"ir": 2})
    assert [im["ir"].shape for im in data.images] == [(1, 48, 64), (1, 50, 43), (1, 32, 32)]
    assert data.crop_sizes(16) == {"rgb": 32, "ir": 16}
    batch = data.batch(64, 16)
    assert batch["rgb"].shape == (64, 3, 32, 32) and batch["ir"].shape == (64, 1, 16, 16)
    pooled = torch.nn.functional.avg_pool2d(batch["rgb"][:, :1], 2)
    assert torch.allclose(pooled, batch["ir"], atol=2e-3)
    # not trivially: crops come from different places and flips
    assert not torch.allclose(batch["ir"][0], batch["ir"][1])
    flipped = torch.nn.functional.avg_pool2d(batch["rgb"][:, :1].flip(-1), 2)
    assert not torch.allclose(flipped, batch["ir"], atol=2e-3)


def test_native_two_to_one_pairs_crop_aligned_and_misfits_are_named(tmp_path):
    # visible = 2 x infrared, +1 and -1 pixel: all fit a 2:1 geometry
    root = write_pairs(tmp_path / "ok", [((64, 96), (32, 48)), ((65, 95), (32, 48)), ((63, 97), (32, 48))])
    data = PairCrops(find_pairs(root), ("rgb", "ir"), seed=0, progress=False, ratios={"rgb": 2, "ir": 1})
    batch = data.batch(8, 32)
    assert batch["rgb"].shape[-2:] == (64, 64) and batch["ir"].shape[-2:] == (32, 32)
    # a pair that is not 2:1 is an error naming it, not a silent drop
    bad = write_pairs(tmp_path / "bad", [((64, 96), (32, 48)), ((64, 96), (30, 48))])
    with pytest.raises(BadInputError, match=r"pair p1 in .*bad: rgb is 96x64 but must be 2x the ir size 48x30") as exc:
        PairCrops(find_pairs(bad), ("rgb", "ir"), progress=False, ratios={"rgb": 2, "ir": 1})
    assert "\n" not in str(exc.value)
    # same-size models: a pair of two sizes is named too
    with pytest.raises(BadInputError, match=r"pair p0 in .*ok: ir is 48x32 but rgb is 96x64 \(.*same size\)"):
        PairCrops(find_pairs(root), ("rgb", "ir"), progress=False)


def test_a_tiny_two_to_one_lu_model_trains_on_downsampled_pairs(synthetic_pair_dir, tmp_path, monkeypatch):
    drawn = []
    original = PairCrops.batch

    def spy(self, batch_size, crop):
        out = original(self, batch_size, crop)
        drawn.append({m: tuple(t.shape) for m, t in out.items()})
        return out

    monkeypatch.setattr(PairCrops, "batch", spy)
    cfg = tiny_train_config(tmp_path / "run", synthetic_pair_dir, name="test-ir-vi/lu-2to1", arch="lu2022",
                            kwargs=LU_2TO1, crop=32, downsample={"ir": 2})
    result = train(cfg, progress=False)
    assert drawn == [{"rgb": (2, 3, 64, 64), "ir": (2, 1, 32, 32)}] * 3
    assert result["budget"]["downsample"] == {"ir": 2}
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert len(rows) == 3 and all(math.isfinite(float(r["loss"])) for r in rows)
    assert result["budget"].get("skipped_nonfinite_steps") is None
    manifest = json.loads(Path(result["manifest"]).read_text())
    assert manifest["kwargs"]["ratio"] == 2


@pytest.mark.parametrize("downsample, match", [
    ({"depth": 2}, "downsample: unknown modality 'depth'"),
    ({"ir": 5}, "downsample for ir: the factor must be an integer from 2 to 4, got 5"),
    ({"ir": 2.0}, "integer from 2 to 4, got 2.0"),
    ({"ir": True}, "integer from 2 to 4, got True"),
    ({"ir": "2"}, "integer from 2 to 4, got '2'"),
    ([2], "downsample must be"),
])
def test_malformed_downsample_is_refused(downsample, match, synthetic_pair_dir, tmp_path):
    with pytest.raises(BadInputError, match=match):
        tiny_train_config(tmp_path / "run", synthetic_pair_dir, downsample=downsample).validate()


@pytest.mark.parametrize("arch, kwargs, extra, match", [
    # the same-size separate model cannot train on 2:1 pairs
    ("separate", None, {"downsample": {"ir": 2}, "crop": 64}, r"gives resolutions rgb 2, ir 1 but separate .* codes rgb 1, ir 1"),
    # the wrong modality downsampled for a visible-reference 2:1 model
    ("lu2022", LU_2TO1, {"downsample": {"rgb": 2}}, r"gives resolutions rgb 1, ir 2 .* codes rgb 2, ir 1"),
    # the post-training evaluation would code same-size pairs with a 2:1 model
    ("lu2022", LU_2TO1, {"downsample": {"ir": 2}, "eval_split": "roadscene-test"}, "leave eval_split unset"),
    # crops are checked at each modality's scale: visible 2 x 48 = 96 is no multiple of 64
    ("lu2022", LU_2TO1, {"downsample": {"ir": 2}, "crop": 48},
     r"crop 48 does not suit lu2022: rgb crops \(2x the crop: 96\) must be multiples of 64"),
])
def test_geometry_misfits_are_refused_before_any_work(arch, kwargs, extra, match, synthetic_pair_dir, tmp_path):
    cfg = tiny_train_config(tmp_path / "run", synthetic_pair_dir, arch=arch,
                            **{"crop": 32, **({"kwargs": kwargs} if kwargs else {}), **extra})
    with pytest.raises(BadInputError, match=match) as exc:
        train(cfg, progress=False)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "run").exists()


def test_train_refuses_an_infrared_reference_at_ratio_2_in_one_line(synthetic_pair_dir, tmp_path, capsys):
    # Lu2022 raises ValueError for ratio 2 with an infrared reference (the supplement's Fig. S8
    # direction); `mmcodec train` turns it into a config error before it creates anything.
    config = tmp_path / "lu-ir-reference.json"
    config.write_text(json.dumps({"name": "test-ir-vi/lu-ir-ref", "arch": "lu2022",
                                  "kwargs": {**LU_2TO1, "reference": "ir"}, "modalities": ["rgb", "ir"],
                                  "lambdas": [0.005, 0.02], "train_split": str(synthetic_pair_dir),
                                  "downsample": {"rgb": 2}, "crop": 32, "crop_schedule": [], "steps": 2,
                                  "out": str(tmp_path / "run")}))
    code = main(["train", "--config", str(config)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith("mmcodec: error: kwargs ") and "ratio 2 needs the visible (higher-resolution) image" in err
    assert not (tmp_path / "run").exists()
