"""rgb-d/fusion: the RGB-D thesis's structure-prior fusion of the decoded RGB decoder's
features into a hyperprior depth codec (Lu et al.'s conditional codec with sa="spf6"),
warm-started from separate coding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmcodec.bitstream import unpack
from mmcodec.codec import Codec
from mmcodec.data.images import load_modality
from mmcodec.models.registry import build_model, install_model, read_manifest
from mmcodec.train.warm_start import warm_start

SEPARATE = {"modalities": ["rgb", "depth"], "N": 16, "M": 24, "num_rates": 2}
FUSION = {"modalities": ["rgb", "depth"], "reference": "rgb", "N": 16, "M": 24, "num_rates": 2,
          "ca": "none", "sa": "spf6"}
LAMBDAS = [0.005, 0.02]


def _pair() -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[0:64, 0:96]
    rgb = np.stack([(xx * 2) % 256, (yy * 3) % 256, (xx + yy) % 256], -1).astype(np.uint8)
    depth = (1000 + 20 * xx + 10 * (yy > 30) * 300).astype(np.uint16)
    return {"rgb": rgb, "depth": depth}


def _install(tmp: Path, name: str, arch: str, kwargs: dict, model: torch.nn.Module) -> Codec:
    return Codec(read_manifest(install_model(tmp, name, arch, kwargs, ["rgb", "depth"], LAMBDAS, model)))


def test_fusion_starts_as_the_separate_codec_and_round_trips(tmp_path):
    torch.manual_seed(0)
    separate = _install(tmp_path / "sep", "rgb-d/tiny-sep", "separate", SEPARATE, build_model("separate", SEPARATE))
    fusion_model = build_model("lu2022", FUSION)
    copied = warm_start(fusion_model, str(separate.installed.weights_path), {"codecs.": "codecs."})
    assert copied > 0
    fusion = _install(tmp_path / "fus", "rgb-d/tiny-fusion", "lu2022", FUSION, fusion_model)
    pair = _pair()
    streams = {name: unpack(c.compress(**pair)).streams for name, c in (("sep", separate), ("fus", fusion))}
    assert streams["sep"]["depth"] == streams["fus"]["depth"]     # zero-initialised fusion: the identity

    # Trained fusion (here: random output convs) changes the depth stream, and still decodes exactly.
    with torch.no_grad():
        for name, p in fusion_model.named_parameters():
            if "cross" in name and name.endswith("out.weight"):
                p.normal_(0, 1.0)
    fusion = _install(tmp_path / "fus2", "rgb-d/tiny-fusion", "lu2022", FUSION, fusion_model)
    blob, recon = fusion.encode({m: load_modality(m, v) for m, v in pair.items()})
    assert unpack(blob).streams["depth"] != streams["sep"]["depth"]
    decoded = fusion.decompress(blob)
    for m in ("rgb", "depth"):
        assert np.array_equal(np.asarray(decoded[m]), np.asarray(recon[m]))
    assert unpack(blob).streams["rgb"] == streams["sep"]["rgb"]   # the reference is the separate RGB codec

