"""Lu et al.'s conditional codec with `entropy_context="latent"`: the current modality's
hyperprior also sees the reference's decoded latent (mmcodec.crossmodal.CrossModalHyperprior).
It warm-starts from separate coding and codes exactly as it until trained; once its context
is used, the current stream changes and still decodes bit for bit, with and without the
integer entropy-parameter path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmcodec.bitstream import unpack
from mmcodec.codec import Codec
from mmcodec.data.images import load_modality
from mmcodec.models.registry import build_model, install_model, read_manifest
from mmcodec.train.warm_start import warm_start

SEPARATE = {"modalities": ["rgb", "ir"], "N": 16, "M": 24, "num_rates": 2}
LATENT_CONTEXT = {"modalities": ["rgb", "ir"], "reference": "rgb", "N": 16, "M": 24, "num_rates": 2,
                  "ca": "none", "sa": "none", "entropy_context": "latent"}
LAMBDAS = [0.005, 0.02]


def _pair() -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[0:64, 0:96]
    edges = ((xx // 12 + yy // 16) % 2) * 140
    rgb = np.stack([edges + 40, (yy * 3) % 256, edges // 2 + 60], -1).astype(np.uint8)
    ir = (edges + 50 + (xx % 7)).astype(np.uint8)   # shares the visible image's edges
    return {"rgb": rgb, "ir": ir}


def _install(tmp: Path, name: str, arch: str, kwargs: dict, model: torch.nn.Module) -> Codec:
    return Codec(read_manifest(install_model(tmp, name, arch, kwargs, ["rgb", "ir"], LAMBDAS, model)))


def test_latent_context_starts_as_separate_coding_and_round_trips(tmp_path):
    torch.manual_seed(0)
    separate = _install(tmp_path / "sep", "ir-vi/tiny-sep", "separate", SEPARATE, build_model("separate", SEPARATE))
    model = build_model("lu2022", LATENT_CONTEXT)
    copied = warm_start(model, str(separate.installed.weights_path), {"codecs.": "codecs."})
    assert copied > 0
    joint = _install(tmp_path / "ec", "ir-vi/tiny-ec", "lu2022", LATENT_CONTEXT, model)
    pair = _pair()
    before = {name: unpack(c.compress(**pair)).streams for name, c in (("sep", separate), ("ec", joint))}
    assert before["sep"] == before["ec"]          # zero-initialised correction: the separate codec exactly

    with torch.no_grad():                          # a "trained" context: nonzero correction
        model.codecs["ir"].latent_codec.entropy_parameters[-1].weight.normal_(0, 0.5)
    for exact in (True, False):
        joint = _install(tmp_path / f"ec-{exact}", "ir-vi/tiny-ec", "lu2022", LATENT_CONTEXT, model)
        joint.exact_entropy_parameters = exact
        blob, recon = joint.encode({m: load_modality(m, v) for m, v in pair.items()})
        streams = unpack(blob).streams
        assert streams["rgb"] == before["sep"]["rgb"]  # the reference is untouched
        assert streams["ir"] != before["sep"]["ir"]    # the context moved the infrared rate
        decoded = joint.decompress(blob)
        for m in ("rgb", "ir"):
            assert np.array_equal(np.asarray(decoded[m]), np.asarray(recon[m]))
        assert np.array_equal(np.asarray(joint.decompress(blob, only="rgb")["rgb"]), np.asarray(recon["rgb"]))
    # Encoder refinement runs through the context too, and its file decodes to its prediction.
    blob, recon = joint.encode({m: load_modality(m, v) for m, v in pair.items()}, effort=1)
    decoded = joint.decompress(blob)
    assert all(np.array_equal(np.asarray(decoded[m]), np.asarray(recon[m])) for m in ("rgb", "ir"))


def test_the_infrared_rate_reads_the_visible_latent_in_training():
    """Training wiring: with the correction switched on, the infrared likelihoods change when
    only the visible image changes, and the context network gets gradients."""
    torch.manual_seed(0)
    pair = _pair()
    x = {"rgb": torch.from_numpy(pair["rgb"]).permute(2, 0, 1)[None, :, :, :64].float() / 255.0,
         "ir": torch.from_numpy(pair["ir"])[None, None, :, :64].float() / 255.0}   # 64 x 64: latent 4 x 4
    model = build_model("lu2022", LATENT_CONTEXT)
    with torch.no_grad():
        model.codecs["ir"].latent_codec.entropy_parameters[-1].weight.normal_(0, 0.5)
    rate = torch.tensor([1])
    out = model(x, rate)
    bits = -torch.log2(out["likelihoods"]["ir"]["y"]).sum()
    bits.backward()
    grads = [p.grad for p in model.codecs["ir"].latent_codec.context_prediction.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    with torch.no_grad():
        other = model({"rgb": x["rgb"].flip(-1), "ir": x["ir"]}, rate)
    assert not torch.equal(other["likelihoods"]["ir"]["y"], out["likelihoods"]["ir"]["y"].detach())


def test_latent_context_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match="entropy_context"):
        build_model("lu2022", {**LATENT_CONTEXT, "entropy_context": "slices"})
    with pytest.raises(ValueError, match="hyperprior"):
        build_model("lu2022", {**LATENT_CONTEXT, "context": "checkerboard"})
