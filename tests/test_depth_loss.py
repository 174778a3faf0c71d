"""The thesis depth loss (mmcodec.train.loss): MS-SSIM fitted to crops (pytorch-msssim via
mmcodec.quality), hole masking, gradients, the `distortion` config key and a short training
run with it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmcodec.bench.metrics import ms_ssim as reference_ms_ssim
from mmcodec.data.images import HOLE_FLOOR, load_modality
from mmcodec.errors import BadInputError
from mmcodec.train.config import TrainConfig, load_config
from mmcodec.distortion import (THESIS_GAMMA, THESIS_SCALE, depth_valid_mask, masked_gradient_l1, masked_l1,
                                ms_ssim, msssim_scales, thesis_distortion)
from mmcodec.train.loss import rd_loss
from mmcodec.train.trainer import train

from conftest import TINY, smooth_image

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def depth_batch(h: int = 64, w: int = 64, batch: int = 2, seed: int = 0, holes: bool = False) -> torch.Tensor:
    """Normalised 16-bit depth as the data pipeline makes it, (B, 1, H, W)."""
    planes = []
    for i in range(batch):
        raw = smooth_image(h, w, 1, seed + i, dtype=np.uint16)
        if holes:
            raw[5:15, 20:40] = 0
        planes.append(load_modality("depth", raw).data)
    return torch.from_numpy(np.stack(planes))


# -- MS-SSIM --------------------------------------------------------------------------------
def test_ms_ssim_is_one_for_identical_images_and_falls_with_noise():
    x = depth_batch(128, 128, batch=1)
    assert torch.allclose(ms_ssim(x, x), torch.ones(1), atol=1e-6)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    values = [float(ms_ssim(x + s * noise, x)) for s in (0.01, 0.03, 0.1)]
    assert 1 > values[0] > values[1] > values[2]


def test_ms_ssim_matches_the_benchmark_metric():
    """Same conventions as mmcodec.bench.metrics (pytorch-msssim, 5 scales) above 160 px."""
    rng = np.random.default_rng(1)
    for channels, (h, w) in ((1, (170, 200)), (3, (201, 233))):
        ref = smooth_image(h, w, channels, seed=3)
        test = np.clip(ref + rng.normal(0, 10, ref.shape), 0, 255).astype(np.uint8)
        expected, win = reference_ms_ssim(ref, test, 255)
        assert win == 11

        def t(a: np.ndarray) -> torch.Tensor:
            a = torch.from_numpy(a.astype(np.float32) / 255)
            return a[None, None] if a.ndim == 2 else a.permute(2, 0, 1)[None]
        assert msssim_scales(h, w) == 5
        assert abs(float(ms_ssim(t(test), t(ref))) - expected) < 1e-3


def test_scales_fit_small_crops():
    assert [msssim_scales(s, s) for s in (161, 160, 128, 81, 64, 30)] == [5, 4, 4, 4, 3, 2]
    x = depth_batch(40, 40, batch=1)            # tiny crops still give a finite value
    assert torch.isfinite(ms_ssim(0.9 * x, x)).all()


# -- holes and the L1 terms -------------------------------------------------------------------
def test_valid_mask_finds_holes_only_in_images_with_holes():
    plain, holed = depth_batch(holes=False), depth_batch(holes=True)
    assert (plain == 0).any()                   # a hole-free image's minimum is 0 too ...
    assert depth_valid_mask(plain).all()        # ... but it is depth, not a hole
    mask = depth_valid_mask(holed)
    assert torch.equal(~mask, holed == 0) and (~mask).sum() == 2 * 10 * 20
    assert (holed[mask] >= HOLE_FLOOR - 1e-6).all()


def test_hole_pixels_do_not_change_the_l1_terms():
    x = depth_batch(holes=True)
    valid = depth_valid_mask(x)
    gen = torch.Generator().manual_seed(1)
    x_hat = (x + 0.02 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    moved = torch.where(valid, x_hat, torch.rand(x.shape, generator=gen))   # new values in the holes only
    assert not torch.equal(moved, x_hat)
    for term in (masked_l1, masked_gradient_l1):
        assert torch.allclose(term(moved, x, valid), term(x_hat, x, valid), atol=1e-7)
        assert (term(x_hat, x, valid) > 0).all()
    # Without the mask the same change would count: the test can fail.
    everything = torch.ones_like(valid)
    assert not torch.allclose(masked_l1(moved, x, everything), masked_l1(x_hat, x, everything))


def test_l1_terms_on_honest_cases():
    x = depth_batch()
    valid = depth_valid_mask(x)
    # A constant offset: L1 sees it exactly, the gradient term does not see it at all.
    assert torch.allclose(masked_l1(x + 0.05, x, valid), torch.full((2,), 0.05), atol=1e-6)
    assert torch.allclose(masked_gradient_l1(x + 0.05, x, valid), torch.zeros(2), atol=1e-6)
    # Identical images: the whole distortion is zero.
    assert torch.allclose(thesis_distortion(x, x), torch.zeros(2), atol=1e-5)
    # The loss is assembled as documented.
    x_hat = x * 0.9 + 0.05
    d = thesis_distortion(x_hat, x)
    parts = THESIS_GAMMA * masked_l1(x_hat, x, valid) + masked_gradient_l1(x_hat, x, valid) + 1 - ms_ssim(x_hat, x)
    assert torch.allclose(d, parts, atol=1e-6) and (d > 0).all()


def test_gradients_flow_and_are_finite():
    x = depth_batch(128, 128, holes=True)
    gen = torch.Generator().manual_seed(2)
    # Strong noise: low contrast-structure terms, still finite gradients.
    x_hat = (x + 0.5 * torch.randn(x.shape, generator=gen)).requires_grad_()
    d = thesis_distortion(x_hat, x)
    d.sum().backward()
    assert torch.isfinite(d).all() and torch.isfinite(x_hat.grad).all()
    assert x_hat.grad.abs().sum() > 0
    # Hole pixels still get a gradient, from MS-SSIM alone (it sees whole images).
    assert x_hat.grad[x == 0].abs().sum() > 0
    # An inverted image has negative mean contrast-structure: clamped, finite value and gradients.
    inverted = (1 - x).requires_grad_()
    d = ms_ssim(inverted, x)
    d.sum().backward()
    assert torch.isfinite(d).all() and torch.isfinite(inverted.grad).all()


def test_rd_loss_uses_the_configured_distortion():
    x = {"rgb": torch.rand(2, 3, 64, 64), "depth": depth_batch()}
    x_hat = {"rgb": x["rgb"] * 0.95, "depth": x["depth"] * 0.95 + 0.02}
    out = {"x_hat": x_hat, "likelihoods": {m: {"y": torch.full((2, 4, 4, 4), 0.5)} for m in x}}
    lam = torch.tensor([0.01, 0.02])
    mse_terms = rd_loss(out, x, lam)
    thesis_terms = rd_loss(out, x, lam, distortions={"depth": "thesis"})
    bpp = mse_terms["bpp_rgb"] + mse_terms["bpp_depth"]
    rgb_d = 255 ** 2 * (x_hat["rgb"] - x["rgb"]).pow(2).flatten(1).mean(1)
    depth_d = THESIS_SCALE * thesis_distortion(x_hat["depth"], x["depth"])
    assert torch.allclose(thesis_terms["loss"], bpp + (lam * (rgb_d + depth_d)).mean(), rtol=1e-5)
    assert not torch.allclose(thesis_terms["loss"], mse_terms["loss"])
    assert torch.equal(thesis_terms["mse_depth"], mse_terms["mse_depth"])    # the PSNR log is unchanged


# -- config and trainer ---------------------------------------------------------------------
@pytest.mark.parametrize("value,message", [({"dpeth": "thesis"}, "unknown modality 'dpeth'"),
                                           ({"depth": "ssim"}, "unknown type 'ssim'"),
                                           ({"rgb": "thesis"}, "depth loss"),
                                           (["thesis"], "distortion must be")])
def test_bad_distortion_values_are_refused(value, message):
    cfg = TrainConfig(modalities=["rgb", "depth"], distortion=value)
    with pytest.raises(BadInputError, match=message) as err:
        cfg.validate()
    assert "\n" not in str(err.value)


def test_thesis_loss_config():
    """The thesis-loss arm and its MSE control differ in the depth loss only."""
    cfg = load_config(str(CONFIGS / "rgb-d-hyperprior-thesisloss.json"))
    control = load_config(str(CONFIGS / "rgb-d-hyperprior-mse-plus.json"))
    base = load_config(str(CONFIGS / "rgb-d-hyperprior.json"))
    assert cfg.distortion == {"depth": "thesis"} and control.distortion == {} == base.distortion
    for arm in (cfg, control):
        assert arm.ship_to is None and not arm.default and arm.init_from == base.name
        assert (arm.arch, arm.kwargs, arm.lambdas) == (base.arch, base.kwargs, base.lambdas)
    assert len({cfg.name, control.name, base.name}) == 3 and cfg.out != control.out
    same = ("steps", "lr", "warmup", "batch", "crop", "crop_schedule", "schedule", "seed", "init_from")
    assert all(getattr(cfg, k) == getattr(control, k) for k in same)
    override = load_config(str(CONFIGS / "rgb-d-hyperprior.json"), ['distortion={"depth": "thesis"}'])
    assert override.distortion == {"depth": "thesis"}


@pytest.fixture
def rgbd_pair_dir(tmp_path: Path) -> Path:
    """rgb/ + depth/ folders: 8-bit colour and 16-bit depth (one with holes)."""
    root = tmp_path / "rgbd"
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(80, 96, 3, seed=i)).save(root / "rgb" / f"p{i}.png")
        depth = smooth_image(80, 96, 1, seed=10 + i, dtype=np.uint16)
        if i == 1:
            depth[10:30, 10:30] = 0
        Image.fromarray(depth).save(root / "depth" / f"p{i}.png")
    return root


def test_trainer_runs_with_the_thesis_loss(rgbd_pair_dir, tmp_path):
    cfg = TrainConfig(name="test-rgb-d/thesis", arch="separate", kwargs={"modalities": ["rgb", "depth"], **TINY},
                      modalities=["rgb", "depth"], train_split=str(rgbd_pair_dir), lambdas=[0.002, 0.01],
                      steps=2, batch=2, crop=64, crop_schedule=[], warmup=1, threads=1, log_every=1,
                      checkpoint_every=100, out=str(tmp_path / "run"), distortion={"depth": "thesis"})
    result = train(cfg, progress=False)
    budget = json.loads((tmp_path / "run" / "budget.json").read_text())
    assert budget["steps"] == 2 and budget["distortion"] == {"rgb": "mse", "depth": "thesis"}
    assert result["budget"]["distortion"] == budget["distortion"]
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert rows[0].split(",")[:7] == ["step", "lr", "loss", "bpp_rgb", "bpp_depth", "psnr_rgb", "psnr_depth"]
    assert len(rows) == 3 and all(np.isfinite(float(v)) for v in rows[-1].split(",")[2:7])
