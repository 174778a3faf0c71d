"""Trainer speed options of the recipe study: bf16 autocast and torch.compile."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmcodec.errors import BadInputError
from mmcodec.train.config import TrainConfig
from mmcodec.train.trainer import bf16_forward, train
from tests.conftest import tiny_train_config


def config(tmp_path: Path, data: Path, **extra) -> TrainConfig:
    return tiny_train_config(tmp_path / "run", data, **{"name": "test-ir-vi/speed", **extra})


def test_bf16_forward_returns_float32_and_runs_in_bfloat16():
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x, rate):
            y = torch.nn.functional.linear(x["a"], torch.ones(4, 4))
            seen["dtype"] = y.dtype
            return {"x_hat": {"a": y}, "likelihoods": {"a": {"y": y.abs() + 1}}, "rate": rate}

    out = bf16_forward(Probe(), torch.device("cpu"))({"a": torch.rand(2, 4)}, torch.tensor([0, 1]))
    assert seen["dtype"] == torch.bfloat16
    assert out["x_hat"]["a"].dtype == torch.float32 and out["likelihoods"]["a"]["y"].dtype == torch.float32
    assert out["rate"].dtype == torch.int64


def test_training_with_bf16_autocast_records_the_option(synthetic_pair_dir, tmp_path):
    result = train(config(tmp_path, synthetic_pair_dir, autocast="bf16"), progress=False)
    assert result["budget"]["speed_options"] == {"autocast": "bf16", "compile": False}
    assert result["budget"]["steps"] == 3


def test_unknown_autocast_is_refused(synthetic_pair_dir, tmp_path):
    with pytest.raises(BadInputError, match="autocast"):
        train(config(tmp_path, synthetic_pair_dir, autocast="fp8"), progress=False)
