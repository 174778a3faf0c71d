"""Every architecture variant, tiny and seeded, gives fixed training outputs and fixed streams.

A net for refactoring the model code (issue 19): the hashes were recorded before the pipeline
redesign (1917dfe). Every parameter is perturbed with seeded noise first, so zero-initialised
cross-modal modules (which start as the identity) are exercised too. The digests cover float
outputs (reconstructions, likelihoods), which only a machine with the recording machine's
float kernels reproduces bit for bit (tests/golden.py); elsewhere the test is skipped.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from mmcodec.models.registry import build_model
from mmcodec.refine import supports_refinement

from conftest import smooth_image
from golden import same_float_kernels

CCEM_TINY = {"N": 16, "M": 20, "M_ir": 20, "support_ch": 16, "attn_dim": 16, "window": 4, "outer_width": 8}
VARIANTS = {
    "separate-hyperprior": ("separate", {"modalities": ["rgb", "ir"], "N": 16, "M": 24, "num_rates": 2}),
    "separate-checkerboard": ("separate", {"modalities": ["rgb", "ir"], "N": 16, "M": 24, "num_rates": 2,
                                           "context": "checkerboard"}),
    "separate-autoregressive": ("separate", {"modalities": ["rgb", "depth"], "N": 16, "M": 24, "num_rates": 2,
                                             "context": "autoregressive"}),
    "separate-channel-slice": ("separate", {"modalities": ["rgb", "ir"], "N": 16, "M": 24, "num_rates": 2,
                                            "context": "channel-slice"}),
    "lu-ca-sa3": ("lu2022", {"N": 16, "M": 24, "num_rates": 2, "align_ch": 8, "sa_dim": 12}),
    "lu-ea-featcat": ("lu2022", {"N": 16, "M": 24, "num_rates": 2, "align_ch": 8, "ca": "ea", "sa": "featcat"}),
    "lu-sa6-checkerboard": ("lu2022", {"N": 16, "M": 24, "num_rates": 2, "align_ch": 8, "sa_dim": 12, "sa": "6",
                                       "context": "checkerboard"}),
    "lu-ir-reference": ("lu2022", {"N": 16, "M": 24, "num_rates": 2, "align_ch": 8, "sa_dim": 12, "reference": "ir",
                                   "sa": "1"}),
    "lu-ratio2": ("lu2022", {"N": 16, "M": 24, "num_rates": 2, "align_ch": 8, "sa_dim": 12, "ratio": 2}),
    "ccem": ("ccem", {"num_rates": 2, **CCEM_TINY}),
    "ccem-rgb-to-ir": ("ccem", {"num_rates": 2, "direction": "rgb_to_ir", **CCEM_TINY}),
    "ccem-plain": ("ccem", {"num_rates": 2, "lceb": False, "lcfb": False, "cross_attention": False, **CCEM_TINY}),
    "tcm-separate": ("rgbd_tcm", {"preset": "tiny", "num_rates": 2}),
    "tcm-concat4": ("rgbd_tcm", {"preset": "tiny", "num_rates": 2, "variant": "concat4"}),
    "tcm-convfusion-decoder": ("rgbd_tcm", {"preset": "tiny", "num_rates": 2, "variant": "convfusion",
                                            "decoder_side": True}),
    "tcm-prompt": ("rgbd_tcm", {"preset": "tiny", "num_rates": 2, "variant": "prompt"}),
}

GOLDEN = {
    "ccem": "e74164f4738aff50",
    "ccem-plain": "d24435aca4ed7260",
    "ccem-rgb-to-ir": "5fd337c306c48750",
    "lu-ca-sa3": "a639e6d18e2b2a61",
    "lu-ea-featcat": "66e3166ce8090933",
    "lu-ir-reference": "eb7bd1c6a13b214e",
    "lu-ratio2": "b8236fbb7826f7f5",
    "lu-sa6-checkerboard": "337dfa0df6899aa7",
    "separate-autoregressive": "488ed4029fbd5d4b",
    "separate-channel-slice": "c9624982524c5647",
    "separate-checkerboard": "bec265c670eff0b2",
    "separate-hyperprior": "fb47dd9c74749e40",
    "tcm-concat4": "203313ddd02b2cfa",
    "tcm-convfusion-decoder": "c633aee6035c1e13",
    "tcm-prompt": "25ef30d311a0ee95",
    "tcm-separate": "cde71a3929f08ba7",
}


def build(arch: str, kwargs: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(arch, kwargs)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith(".quantiles"):
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    model.update(force=True)
    return model.eval()


def inputs(model) -> dict[str, torch.Tensor]:
    base = 64
    x = {}
    for i, m in enumerate(model.modalities):
        side = base * model.size_ratio(m)
        img = smooth_image(side, side, model.channels[m], seed=3 + i).astype(np.float32) / 255.0
        t = torch.from_numpy(img)
        x[m] = (t.permute(2, 0, 1) if t.ndim == 3 else t[None])[None].contiguous()
    return x


def digest(model) -> str:
    x = inputs(model)
    h = hashlib.sha256()
    with torch.no_grad():
        out = model(x, torch.tensor([1]))
        for m in sorted(out["x_hat"]):
            h.update(out["x_hat"][m].numpy().tobytes())
            for k in sorted(out["likelihoods"][m]):
                h.update(out["likelihoods"][m][k].numpy().tobytes())
        coded = model.compress(x, 1)
        for m in sorted(coded.streams):
            for s in coded.streams[m]:
                h.update(s)
            h.update(coded.x_hat[m].numpy().tobytes())
        h.update(coded.side)
        if supports_refinement(model):     # the encoder-refinement path (mmcodec.refine)
            latents = model.encoder_latents(x, 1)
            relaxed = model.relaxed_forward(x, latents, 1, torch.round)
            for m in sorted(relaxed["x_hat"]):
                h.update(relaxed["x_hat"][m].numpy().tobytes())
                h.update(relaxed["bits"][m].reshape(-1).numpy().tobytes())
        sizes = {m: tuple(x[m].shape[-2:]) for m in model.modalities}
        decoded = model.decompress(coded.streams, coded.side, sizes, 1)
        for m in sorted(decoded):
            assert torch.equal(decoded[m], coded.x_hat[m]), m
    return h.hexdigest()[:16]


@pytest.mark.skipif(not same_float_kernels(), reason="float kernels differ from the recording machine's")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_architecture_outputs_are_unchanged(variant):
    assert digest(build(*VARIANTS[variant])) == GOLDEN[variant]


if __name__ == "__main__":
    torch.set_num_threads(1)
    for v in sorted(VARIANTS):
        print(f'    "{v}": "{digest(build(*VARIANTS[v]))}",', flush=True)
