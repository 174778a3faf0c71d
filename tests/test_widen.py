"""mmcodec.train.widen: a codec widened to more latent channels or wider transforms decodes every
image exactly as before, costs almost nothing more, and its new channels can learn."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcodec.codec import Codec
from mmcodec.models.registry import install_model, read_manifest
from mmcodec.models.separate import SeparateCoding
from mmcodec.train.widen import codec_widths, widen_latent, widen_transforms
from conftest import TINY, TINY_LAMBDAS, smooth_image


def _codec(directory, model: SeparateCoding, kwargs: dict) -> Codec:
    return Codec(read_manifest(install_model(directory, "ir-vi/tiny", "separate", kwargs, ["rgb", "ir"],
                                             TINY_LAMBDAS, model)))


def _trained_tiny() -> SeparateCoding:
    torch.manual_seed(0)
    model = SeparateCoding(("rgb", "ir"), **TINY)
    with torch.no_grad():   # non-trivial gains and hyper-synthesis outputs, as a trained model has
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.update(force=True)
    return model


def test_widened_codec_decodes_the_same_images(tmp_path):
    model = _trained_tiny()
    kwargs = {"modalities": ["rgb", "ir"], **TINY}
    wide = widen_latent(model, "rgb", 40)
    assert wide.codecs["rgb"].gains.gain.shape[1] == 40 and wide.codecs["ir"].gains.gain.shape[1] == TINY["M"]
    wide_kwargs = {**kwargs, "widths": {"rgb": [TINY["N"], 40], "ir": [TINY["N"], TINY["M"]]}}
    narrow, widened = _codec(tmp_path / "a", model, kwargs), _codec(tmp_path / "b", wide, wide_kwargs)
    vi, ir = smooth_image(64, 96, 3, seed=3), smooth_image(64, 96, 1, seed=4)
    for q in (1, 2):
        a, b = narrow.compress(vi, ir, quality=q), widened.compress(vi, ir, quality=q)
        da, db = narrow.decompress(a), widened.decompress(b)
        for m in ("rgb", "ir"):
            assert np.array_equal(da[m], db[m]), (q, m)
        # 16 more channels of zeros at 4 x 6 latent positions: a few bytes at most.
        assert len(a) <= len(b) <= len(a) + 16, (len(a), len(b))


def test_new_channels_get_a_gradient():
    wide = widen_latent(_trained_tiny(), "rgb", 40)
    wide.train()
    x = {"rgb": torch.rand(1, 3, 64, 64), "ir": torch.rand(1, 1, 64, 64)}
    out = wide(x, torch.tensor([1]))
    loss = ((out["x_hat"]["rgb"] - x["rgb"]) ** 2).mean()
    loss.backward()
    codec = wide.codecs["rgb"]
    # The distortion reaches the new analysis rows through the synthesis's small random weights
    # (straight-through rounding), so the new latent channels can switch on; the synthesis weights
    # from them learn once they carry values.
    assert codec.g_a[6].weight.grad[TINY["M"]:].abs().sum() > 0
    assert codec.g_a[6].weight.grad[:TINY["M"]].abs().sum() > 0


def test_wider_transforms_decode_the_same_images(tmp_path):
    model = _trained_tiny()
    kwargs = {"modalities": ["rgb", "ir"], **TINY}
    wide = widen_transforms(model, "rgb", TINY["N"] + 8)
    assert wide.codecs["rgb"].g_a[0].out_channels == TINY["N"] + 8
    assert wide.codecs["rgb"].latent_codec.entropy_bottleneck.channels == TINY["N"]   # the hyperprior keeps N
    widths = codec_widths(wide)
    assert widths == {"rgb": [TINY["N"], TINY["M"], TINY["N"] + 8], "ir": [TINY["N"], TINY["M"]]}
    narrow, widened = _codec(tmp_path / "a", model, kwargs), _codec(tmp_path / "b", wide, {**kwargs, "widths": widths})
    assert codec_widths(widened.model) == widths   # the manifest's kwargs rebuild the wide model
    vi, ir = smooth_image(64, 96, 3, seed=3), smooth_image(64, 96, 1, seed=4)
    for q in (1, 2):
        a, b = narrow.compress(vi, ir, quality=q), widened.compress(vi, ir, quality=q)
        da, db = narrow.decompress(a), widened.decompress(b)
        # The old units compute the same sums plus exact zeros; only the order of float additions
        # may differ (other kernel blockings), which can move a rare pixel by one code value.
        for m in ("rgb", "ir"):
            diff = np.abs(da[m].astype(int) - db[m].astype(int))
            assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (q, m)
        assert abs(len(a) - len(b)) <= 2   # same latents, same hyper-latents: only the transforms grew


def test_new_transform_units_learn_at_once():
    wide = widen_transforms(_trained_tiny(), "rgb", TINY["N"] + 8)
    wide.train()
    x = {"rgb": torch.rand(1, 3, 64, 64), "ir": torch.rand(1, 1, 64, 64)}
    out = wide(x, torch.tensor([1]))
    ((out["x_hat"]["rgb"] - x["rgb"]) ** 2).mean().backward()
    codec, N = wide.codecs["rgb"], TINY["N"]
    # the zero weights out of the new units (into old ones) get a gradient in both transforms
    assert codec.g_a[2].weight.grad[:N, N:].abs().sum() > 0
    assert codec.g_a[6].weight.grad[:, N:].abs().sum() > 0
    assert codec.g_s[6].weight.grad[N:].abs().sum() > 0
    with pytest.raises(ValueError):
        widen_transforms(wide, "rgb", N)
