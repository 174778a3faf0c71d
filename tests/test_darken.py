"""Low-light augmentation of training crops (`darken` in the training config)."""
from __future__ import annotations

import numpy as np
import pytest

from mmcodec.data.crops import PairCrops
from mmcodec.data.pairs import find_pairs
from mmcodec.errors import BadInputError
from mmcodec.train.config import load_config
from mmcodec.train.trainer import train

from conftest import tiny_train_config


def _crops(pairs, darken=None, seed=3):
    return PairCrops(find_pairs(str(pairs), strict=False), ("rgb", "ir"), seed=seed, progress=False, darken=darken)


def test_darken_scales_only_its_modality_within_the_gain_range(synthetic_pair_dir):
    plain = _crops(synthetic_pair_dir).batch(16, 48)
    dark = _crops(synthetic_pair_dir, darken={"rgb": (1.0, 0.1)}).batch(16, 48)
    # Same seed, same crops and flips: IR untouched, every RGB crop a scaled copy.
    assert np.array_equal(plain["ir"].numpy(), dark["ir"].numpy())
    ratios = (dark["rgb"].flatten(1).sum(1) / plain["rgb"].flatten(1).sum(1)).numpy()
    assert np.all(ratios <= 1.0 + 1e-3) and np.all(ratios >= 0.1 - 1e-3)
    assert ratios.std() > 0.05, "gains must vary from crop to crop"
    assert ratios.min() < 0.5


def test_darken_probability_zero_is_identity(synthetic_pair_dir):
    plain = _crops(synthetic_pair_dir).batch(8, 48)
    same = _crops(synthetic_pair_dir, darken={"rgb": (0.0, 0.1)}).batch(8, 48)
    assert np.array_equal(plain["rgb"].numpy(), same["rgb"].numpy())


@pytest.mark.parametrize("value", ['{"rgb": [0.5, 0.1, 2]}', '{"depth": [0.5, 0.1]}', '{"rgb": [1.5, 0.1]}', '{"rgb": [0.5, 0]}', '{"rgb": 0.5}'])
def test_bad_darken_is_refused(value):
    with pytest.raises(BadInputError, match="darken"):
        load_config(None, [f"darken={value}"])


def test_training_with_darken_runs_and_records_it(tmp_path, synthetic_pair_dir):
    cfg = tiny_train_config(tmp_path / "run", synthetic_pair_dir, darken={"rgb": [0.5, 0.1]})
    result = train(cfg, progress=False)
    assert result["budget"]["darken"] == {"rgb": [0.5, 0.1]}


def test_channel_jitter_tints_and_stays_in_range(synthetic_pair_dir):
    plain = _crops(synthetic_pair_dir).batch(16, 48)["rgb"].numpy()
    tinted = _crops(synthetic_pair_dir, darken={"rgb": (1.0, 1.0, 0.3)}).batch(16, 48)["rgb"].numpy()
    assert tinted.min() >= 0 and tinted.max() <= 1
    per_channel = tinted.sum((2, 3)) / plain.sum((2, 3))        # (batch, 3) channel gains
    assert np.all(per_channel.std(1) > 1e-3), "channels of one crop must get different gains"
    assert per_channel.min() > np.exp(-0.3) - 1e-2 and per_channel.max() < np.exp(0.3) + 1e-2
