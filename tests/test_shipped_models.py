"""The models shipped in mmcodec/weights load offline and code a pair bit-exactly."""
import numpy as np
import pytest

import mmcodec
from mmcodec.bitstream import unpack
from mmcodec.data.pairs import LAYOUTS
from mmcodec.models.registry import PACKAGE_WEIGHTS, find_model, installed_models

from conftest import smooth_image

SHIPPED = [m for m in installed_models() if m.weights_path.parent == PACKAGE_WEIGHTS]


def test_each_pair_type_has_a_shipped_default():
    """Every pair type (ir-vi and rgb-d) has exactly one shipped default, the one
    `mmcodec.load(pair=...)` picks when the model path adds nothing."""
    for pair in LAYOUTS:
        defaults = [m.name for m in SHIPPED if m.pair == pair and m.default]
        assert len(defaults) == 1, (pair, defaults)
        found = find_model(pair=pair)
        if found.weights_path.parent == PACKAGE_WEIGHTS:  # a user model path may add a default
            assert found.name == defaults[0], pair


@pytest.mark.parametrize("model", SHIPPED, ids=lambda m: m.name)
def test_shipped_model_round_trip(model):
    assert len(model.qualities) >= 4 and model.budget.get("steps", 0) > 0
    codec = mmcodec.load(model.name, quality=model.qualities[-1])
    images = {m: smooth_image(96, 128, 3 if m == "rgb" else 1, seed=i) for i, m in enumerate(model.modalities)}
    blob = codec.compress(**images)
    out = codec.decompress(blob)
    for m, ref in images.items():
        assert out[m].shape == ref.shape
        # a trained codec at its best quality is far above an untrained one (~10 dB)
        mse = np.mean((out[m].astype(np.float64) - ref.astype(np.float64)) ** 2)
        assert 10 * np.log10(255 ** 2 / mse) > 24, m
    assert len(blob) == sum(unpack(blob).stream_bytes().values()) + unpack(blob).info(len(blob))["overhead_bytes"]
