"""RGB-D LIC-TCM models (mmcodec.models.rgbd_tcm) and their blocks (mmcodec.layers.tcm).

Tiny untrained models on synthetic 64x64 / 128x128 inputs; the 45.18 M-parameter thesis
preset and the timing measurement are `slow`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmcodec.layers import PromptedTCMBlock, StructurePriorFusion, SwinBlock, TCMBlock
from mmcodec.models.registry import build_model, install_model
from mmcodec.models.rgbd_tcm import PRESETS, RGBDTCM, TCMCodec
from mmcodec.distortion import thesis_distortion
from mmcodec.train.loss import rd_loss

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
# (variant, decoder_side): every pair model the configs can build.
VARIANTS = [("separate", False), ("concat4", False), ("convfusion", False), ("prompt", False),
            ("convfusion", True), ("prompt", True), ("concat4", True)]




def tiny(variant: str, decoder_side: bool = False, **kw) -> RGBDTCM:
    torch.manual_seed(0)
    return RGBDTCM(variant=variant, decoder_side=decoder_side, preset="tiny", num_rates=2, **kw)


def smooth(h: int, w: int, channels: int, seed: int) -> np.ndarray:
    """Smooth synthetic image in [0, 1], (H, W, C)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = [sum(np.sin(yy * rng.uniform(0.02, 0.1) + xx * rng.uniform(0.02, 0.1) + rng.uniform(0, 6))
                  for _ in range(3)) for _ in range(channels)]
    arr = np.stack(planes, -1)
    return (arr - arr.min()) / (np.ptp(arr) + 1e-6)


def pair(h: int = 64, w: int = 64, batch: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    rgb = np.stack([smooth(h, w, 3, seed + i) for i in range(batch)])
    depth = np.stack([smooth(h, w, 1, seed + 100 + i) for i in range(batch)])
    return {"rgb": torch.from_numpy(rgb).permute(0, 3, 1, 2).float(),
            "depth": torch.from_numpy(depth).permute(0, 3, 1, 2).float()}


# -- blocks ---------------------------------------------------------------------------------
def test_shifted_window_attention_respects_regions():
    """SW-MSA: a token that wrapped around the border must not influence its window
    neighbours from the other side of the image; a token in the same region must."""
    torch.manual_seed(0)
    blk = SwinBlock(8, head_dim=4, window=8, shifted=True).eval()
    x = torch.randn(1, 8, 16, 16)
    moved = x.clone()
    moved[0, 0, 0, 0] += 5.0                 # one channel (LayerNorm removes a uniform shift)
    with torch.no_grad():
        a, b = blk(x), blk(moved)
    assert torch.allclose(a[..., 15, 15], b[..., 15, 15], atol=1e-6)   # same window, other region
    assert not torch.allclose(a[..., 1, 1], b[..., 1, 1], atol=1e-4)   # same region


def test_window_attention_pads_odd_sizes_without_leaking():
    """Sizes that are not window multiples are padded; padding never changes the result
    of a valid token (same output whatever the map is embedded in)."""
    torch.manual_seed(0)
    for shifted in (False, True):
        blk = SwinBlock(8, head_dim=4, window=8, shifted=shifted).eval()
        x = torch.randn(2, 8, 12, 20)
        with torch.no_grad():
            y = blk(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
    plain = SwinBlock(8, head_dim=4, window=8).eval()
    x = torch.randn(1, 8, 8, 12)
    with torch.no_grad():
        # the first 8x8 window alone = the same window inside a padded 8x12 map
        assert torch.allclose(plain(x)[..., :8], plain(x[..., :8]), atol=1e-5)


def test_tcm_and_prompted_blocks():
    torch.manual_seed(0)
    x = torch.randn(1, 16, 16, 16)
    assert TCMBlock(8, 8, head_dim=4, window=8)(x).shape == x.shape
    blk = PromptedTCMBlock(8, 8, head_dim=4, window=8, shifted=True).eval()
    prompt = torch.randn(1, 8, 16, 16)
    with torch.no_grad():
        with_prompt, other_prompt, no_prompt = blk(x, prompt), blk(x, prompt * 2 + 1), blk(x)
    assert with_prompt.shape == x.shape
    assert not torch.allclose(with_prompt, other_prompt)
    assert not torch.allclose(with_prompt, no_prompt)
    # A prompted block carries the TCM block's weights (plus its prompt norm): warm starts work.
    plain_keys = set(TCMBlock(8, 8, 4, 8, True).state_dict())
    assert plain_keys <= set(blk.state_dict())
    assert {k.split(".")[-2] for k in set(blk.state_dict()) - plain_keys} == {"prompt_norm"}


def test_structure_prior_fusion_starts_as_identity():
    torch.manual_seed(0)
    fusion = StructurePriorFusion(16, 8)
    t, s = torch.randn(2, 16, 8, 8), torch.randn(2, 8, 8, 8)
    assert torch.equal(fusion(t, s), t)
    fusion(t, s).square().sum().backward()
    assert fusion.out.weight.grad.abs().sum() > 0


# -- pair models ----------------------------------------------------------------------------
@pytest.mark.parametrize("variant,decoder_side", VARIANTS)
def test_forward_shapes_and_gradients(variant, decoder_side):
    model = tiny(variant, decoder_side)
    x = pair(64, 64, batch=2)
    out = model(x, torch.tensor([0, 1]))
    for m, t in x.items():
        assert out["x_hat"][m].shape == t.shape
        assert set(out["likelihoods"][m]) == {"y", "z"}
        assert out["likelihoods"][m]["y"].shape == (2, 20, 4, 4)
    terms = rd_loss(out, x, torch.tensor([0.01, 0.02]), distortions={"depth": "thesis"})
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"])
    for name, p in model.named_parameters():
        if name.endswith(".quantiles"):
            continue
        # Zero-initialised fusion outputs block gradients to the modules before them; all
        # else must be reached by the loss.
        if "fusion" in name or "side_analysis" in name or "reference_net" in name:
            continue
        assert p.grad is not None, name


@pytest.mark.parametrize("variant,decoder_side", VARIANTS)
def test_round_trip_bit_exact_and_requires(variant, decoder_side):
    model = tiny(variant, decoder_side)
    model.update(force=True)
    model.eval()
    x = pair(128, 128, seed=3)
    c = model.compress(x, 1)
    assert set(c.streams) == {"rgb", "depth"}            # the pair stream holds both
    sizes = {m: (128, 128) for m in x}
    full = model.decompress(c.streams, c.side, sizes, 1)
    for m in x:
        assert torch.equal(full[m], c.x_hat[m]), m
    for only in ("rgb", "depth"):
        need = model.requires(only)
        # Hand over only the required streams: reading any other one would fail.
        got = model.decompress({m: c.streams[m] for m in need}, c.side, sizes, 1, only=only)
        assert set(got) == {only}
        assert torch.equal(got[only], c.x_hat[only])


def test_requires_per_variant():
    assert tiny("separate").requires("rgb") == {"rgb"}
    for variant in ("concat4", "convfusion", "prompt"):
        model = tiny(variant)
        assert model.requires("rgb") == {"rgb"} and model.requires("depth") == {"depth"}
        both = tiny(variant, decoder_side=True)
        assert both.requires(both.target) == {"rgb", "depth"}
        assert both.requires(both.side) == {both.side}


@pytest.mark.parametrize("variant,decoder_side", [("concat4", False), ("convfusion", False), ("prompt", False),
                                                  ("convfusion", True)])
def test_side_modality_conditions_the_target(variant, decoder_side):
    model = tiny(variant, decoder_side)
    with torch.no_grad():                 # wake up the identity-initialised fusion outputs
        for name, p in model.named_parameters():
            if "fusion" in name and ".out." in name:
                p.normal_(0, 0.05)
    model.eval()
    x = pair(64, 64)
    y = {**x, model.side: 1 - x[model.side]}
    t, codec = model.target, model.codecs[model.target]

    def latent(inputs):
        cond = model._condition(inputs[model.side], None)
        return codec.analysis(codec.encoder_input(inputs[t], cond), cond)
    with torch.no_grad():
        # Encoder-side fusion moves the target's latent (rounding may hide it in x_hat).
        assert not torch.allclose(latent(x), latent(y))
        if decoder_side:
            a, b = model(x, torch.tensor([1])), model(y, torch.tensor([1]))
            assert not torch.allclose(a["x_hat"][t], b["x_hat"][t])


def test_warm_start_keys_match_separate():
    """Every variant names the codecs like "separate", so the baseline warm-starts it."""
    base = {k: v.shape for k, v in tiny("separate").state_dict().items()}
    for variant, decoder_side in VARIANTS[1:]:
        own = {k: v.shape for k, v in tiny(variant, decoder_side).state_dict().items()}
        mismatched = [k for k, s in base.items() if own.get(k) != s]
        if variant == "concat4":   # only the 4-channel input layer of the target encoder
            assert all(".g_a.downs.0." in k for k in mismatched) and mismatched
        else:
            assert not mismatched, mismatched[:3]
    model = tiny("convfusion")
    fusion_ids = {id(p) for p in model.stage_parameters("fusion")}
    assert fusion_ids and all(id(p) not in fusion_ids for p in model.codecs.parameters())


def test_concat4_warm_start_computes_what_the_baseline_did(tmp_path):
    """The 4-channel input conv gets the baseline kernel plus zeros for the side channel, so
    a warm-started concat4 model reproduces the separate model it came from."""
    from mmcodec.train.warm_start import warm_start
    base = tiny("separate").eval()
    torch.save({"model": base.state_dict()}, tmp_path / "base.pt")
    model = tiny("concat4").eval()
    from mmcodec.models.registry import LIKELIHOOD_FLOOR_KEY
    # every tensor but the likelihood floors (constants the model keeps its own of) is copied
    wanted = [k for k in base.state_dict() if not k.endswith(LIKELIHOOD_FLOOR_KEY)]
    assert warm_start(model, str(tmp_path / "base.pt"), {}) == len(wanted)
    x, rate = pair(64, 64, seed=3), torch.tensor([1])
    with torch.no_grad():
        want, got = base(x, rate), model(x, rate)
    assert torch.allclose(got["x_hat"][model.target], want["x_hat"][model.target], atol=1e-5)
    kernel = model.codecs[model.target].g_a.downs[0].conv1.weight
    assert kernel[:, 1:].abs().sum() == 0          # the side (RGB) channels start switched off


def test_unknown_arguments_are_refused():
    with pytest.raises(ValueError):
        RGBDTCM(variant="nope")
    with pytest.raises(ValueError):
        RGBDTCM(preset="tiny", typo=3)


# -- depth loss -----------------------------------------------------------------------------
def test_depth_loss():
    x = pair(128, 128, batch=2)["depth"]
    assert torch.allclose(thesis_distortion(x, x), torch.zeros(2), atol=1e-5)
    noisy = (x + 0.05 * torch.randn_like(x)).clamp(0, 1).requires_grad_()
    loss = thesis_distortion(noisy, x)
    assert loss.shape == (2,) and (loss > 0).all()
    loss.sum().backward()
    assert torch.isfinite(noisy.grad).all()
    small = pair(64, 64)["depth"]                  # smaller than MS-SSIM's usual 161 px
    assert torch.isfinite(thesis_distortion(small * 0.9, small)).all()


# -- configs and the 16-bit path through the Codec API ----------------------------------------
def test_configs_build():
    from mmcodec.train.config import load_config
    files = [f for f in sorted(CONFIGS.glob("rgb-d-*.json")) if load_config(str(f)).arch == "rgbd_tcm"]
    assert {f.stem for f in files} >= {"rgb-d-separate", "rgb-d-concat4", "rgb-d-convfusion", "rgb-d-prompt",
                                       "rgb-d-decoder-side"}
    for f in files:
        cfg = load_config(str(f))
        json.dumps(cfg.kwargs)
        assert cfg.arch == "rgbd_tcm" and cfg.train_split == "rgbdd-train"
        model = build_model(cfg.arch, {**cfg.kwargs, "preset": "tiny"})   # tiny: keep the test fast
        assert model.num_rates == len(cfg.lambdas)
    sep = load_config(str(CONFIGS / "rgb-d-separate.json"))
    assert (sep.name, sep.default, sep.batch, sep.crop, sep.lambdas) == (
        "rgb-d/separate", False, 8, 128, [0.0018, 0.0043, 0.0104, 0.025])  # hyperprior is the shipped default


def test_codec_round_trip_16bit_depth(tmp_path, monkeypatch):
    from mmcodec.codec import load
    from mmcodec.data.images import write_image
    kwargs = {"modalities": ["rgb", "depth"], "variant": "convfusion", "decoder_side": True, "preset": "tiny",
              "num_rates": 2}
    torch.manual_seed(0)
    install_model(tmp_path / "models", "rgb-d/tcm-tiny", "rgbd_tcm", kwargs, ["rgb", "depth"], [0.002, 0.01],
                  RGBDTCM(**kwargs))
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(tmp_path / "models"))
    rgb = np.rint(smooth(70, 90, 3, 1) * 255).astype(np.uint8)
    depth = np.rint(600 + smooth(70, 90, 1, 2)[..., 0] * 3000).astype(np.uint16)   # millimetres
    depth[10:20, 30:45] = 0                                                         # a hole
    codec = load("rgb-d/tcm-tiny", quality=2)
    blob = codec.compress(rgb=rgb, depth=depth)
    images = codec.decompress(blob)
    assert images["rgb"].dtype == np.uint8 and images["rgb"].shape == (70, 90, 3)
    assert images["depth"].dtype == np.uint16 and images["depth"].shape == (70, 90)
    assert int(images["depth"].max()) <= int(depth.max())
    # decoder-side model: depth decoding also reads rgb; rgb alone reads only rgb
    assert np.array_equal(codec.decompress(blob, only="depth")["depth"], images["depth"])
    assert np.array_equal(codec.decompress(blob, only="rgb")["rgb"], images["rgb"])
    out = tmp_path / "depth.png"
    write_image(out, images["depth"])
    with Image.open(out) as im:
        assert im.mode == "I;16"
        assert np.array_equal(np.asarray(im), images["depth"])


# -- heavy checks ---------------------------------------------------------------------------
@pytest.mark.slow
def test_thesis_preset_parameter_count():
    """LIC-TCM at C=64, M=320 with SWAtten: 45.18 M parameters for an RGB codec (thesis)."""
    codec = TCMCodec(3, 3, num_rates=1, **PRESETS["thesis"])
    gains = sum(p.numel() for p in codec.gains.parameters())
    assert round((sum(p.numel() for p in codec.parameters()) - gains) / 1e6, 2) == 45.18


@pytest.mark.slow
def test_measure_small_preset_512x384():
    """Prints params, MACs/pixel and 1-thread encode/decode time of a 512x384 pair."""
    import time
    from torch.utils.flop_counter import FlopCounterMode
    h, w = 384, 512
    x = pair(h, w)
    for variant, decoder_side in VARIANTS[:5]:
        torch.manual_seed(0)
        model = RGBDTCM(variant=variant, decoder_side=decoder_side, preset="small").eval()
        model.update(force=True)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x, torch.tensor([2]))
        t0 = time.perf_counter()
        c = model.compress(x, 2)
        t1 = time.perf_counter()
        d = model.decompress(c.streams, c.side, {m: (h, w) for m in x}, 2)
        t2 = time.perf_counter()
        assert all(torch.equal(d[m], c.x_hat[m]) for m in x)
        print(f"{variant}{'+dec' if decoder_side else ''}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
              f"params, {counter.get_total_flops() / 2 / (h * w) / 1e3:.1f} kMAC/px, "
              f"encode {t1 - t0:.2f} s, decode {t2 - t1:.2f} s")


def test_fusion_training_with_frozen_codecs(tmp_path):
    """The thesis recipe for conv fusion freezes both codecs (their entropy bottlenecks too):
    training must update only the fusion parts, with no aux step to take."""
    from PIL import Image

    from mmcodec.train.config import TrainConfig
    from mmcodec.train.trainer import train
    from conftest import smooth_image
    root = tmp_path / "rgbd"
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(64, 64, 3, seed=i)).save(root / "rgb" / f"p{i}.png")
        Image.fromarray(smooth_image(64, 64, 1, seed=10 + i, dtype=np.uint16)).save(root / "depth" / f"p{i}.png")
    base = tiny("convfusion", fusion_stages=[0, 1])
    torch.save({"model": base.state_dict()}, tmp_path / "base.pt")
    cfg = TrainConfig(name="test-rgb-d/convfusion", arch="rgbd_tcm",
                      kwargs={"preset": "tiny", "num_rates": 2, "variant": "convfusion", "fusion_stages": [0, 1]},
                      modalities=["rgb", "depth"], train_split=str(root), lambdas=[0.005, 0.02], steps=2, batch=2,
                      crop=64, lr=1e-3, warmup=1, threads=1, crop_schedule=[], freeze=["codecs."],
                      init_from=str(tmp_path / "base.pt"), out=str(tmp_path / "run"))
    train(cfg, progress=False)
    after = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    before = base.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("codecs."))
    assert any(not torch.equal(after[k], v) for k, v in before.items() if k.startswith("side_analysis."))


def test_rate_prompts_p_a():
    """The thesis's lambda-map prompt network: zero at the start, then the prompts depend on the rate."""
    torch.manual_seed(0)
    plain = tiny("prompt", False)
    torch.manual_seed(0)
    model = tiny("prompt", False, rate_prompts=True)
    x = pair(64, 64)
    with torch.no_grad():
        assert torch.equal(plain(x, torch.tensor([1]))["x_hat"]["rgb"], model(x, torch.tensor([1]))["x_hat"]["rgb"])
        for head in model.rate_prompt_net.heads:
            head.weight.normal_(0, 0.1)
        low = model._condition(x["depth"], None, torch.tensor([0])).prompts
        high = model._condition(x["depth"], None, torch.tensor([1])).prompts
    assert not torch.allclose(low[0], high[0])
    fusion = {id(p) for p in model.stage_parameters("fusion")}
    assert any(id(p) in fusion for n, p in model.named_parameters() if n.startswith("rate_prompt_net."))
    model.eval()
    model.update(force=True)
    coded = model.compress(x, 1)
    decoded = model.decompress(coded.streams, coded.side, {m: (64, 64) for m in x}, 1)
    assert all(torch.equal(decoded[m], coded.x_hat[m]) for m in x)
