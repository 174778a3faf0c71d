"""Trainer speed options of the recipe study: bf16 autocast and torch.compile."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmcodec.errors import BadInputError
from mmcodec.train.config import TrainConfig
import mmcodec.train.precision as precision
from mmcodec.models.registry import build_model
from mmcodec.train.precision import bf16_forward, resolve_autocast
from mmcodec.train.schedule import check_crops
from mmcodec.train.trainer import train

from conftest import tiny_train_config


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


def test_training_with_bf16_autocast_records_the_option(synthetic_pair_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    result = train(config(tmp_path, synthetic_pair_dir, autocast="bf16"), progress=False)
    assert result["budget"]["speed_options"] == {"autocast": "bf16", "compile": False}
    assert result["budget"]["steps"] == 3


def test_unknown_autocast_is_refused(synthetic_pair_dir, tmp_path):
    with pytest.raises(BadInputError, match="autocast"):
        train(config(tmp_path, synthetic_pair_dir, autocast="fp8"), progress=False)


def test_bf16_falls_back_to_float32_where_it_would_be_emulated(synthetic_pair_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert resolve_autocast(None, torch.device("cpu")) is None
    result = train(config(tmp_path, synthetic_pair_dir, autocast="bf16"), progress=False)
    assert result["budget"]["speed_options"] == {"autocast": None, "compile": False, "autocast_requested": "bf16"}
    assert "no native bfloat16" in capsys.readouterr().err


def test_native_bf16_is_assumed_off_the_cpu():
    assert precision.native_bf16(torch.device("cuda"))
    assert isinstance(precision.native_bf16(torch.device("cpu")), bool)


def test_a_crop_the_model_cannot_tile_is_refused_before_training(synthetic_pair_dir, tmp_path):
    cfg = config(tmp_path, synthetic_pair_dir, crop_schedule=[[0, 64], [2, 96]])
    with pytest.raises(BadInputError, match="crop 96 .*multiples of 64"):
        train(cfg, progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_run_ending_on_crops_with_a_one_pixel_hyper_latent_warns(synthetic_pair_dir, tmp_path, capsys):
    cfg = config(tmp_path, synthetic_pair_dir)
    model = build_model(cfg.arch, cfg.kwargs)
    multiple = model.padding_multiple("rgb")
    cfg = config(tmp_path, synthetic_pair_dir, crop=multiple, crop_schedule=[])
    check_crops(cfg, model)
    assert "1x1 hyper-latent" in capsys.readouterr().err
    cfg = config(tmp_path, synthetic_pair_dir, crop=multiple, crop_schedule=[[1, 2 * multiple]])
    check_crops(cfg, model)
    assert "hyper-latent" not in capsys.readouterr().err


def test_the_crop_schedule_can_change_the_batch(synthetic_pair_dir, tmp_path, monkeypatch):
    from mmcodec.data.crops import PairCrops
    drawn = []
    original = PairCrops.batch

    def spy(self, batch_size, crop):
        drawn.append((batch_size, crop))
        return original(self, batch_size, crop)

    monkeypatch.setattr(PairCrops, "batch", spy)
    result = train(config(tmp_path, synthetic_pair_dir, crop_schedule=[[0, 64], [2, 128, 1]]), progress=False)
    assert drawn == [(2, 64), (2, 64), (1, 128)]
    assert result["budget"]["crop_schedule"] == [[0, 64], [2, 128, 1]]


@pytest.mark.parametrize("schedule", [[[0]], [[0, 64, 2, 1]], [[0, 0]], [[-1, 64]], [[0, 64, 0]], [[0, 64.5]]])
def test_a_malformed_crop_schedule_is_refused(schedule, tmp_path, synthetic_pair_dir):
    with pytest.raises(BadInputError, match="crop_schedule entries"):
        config(tmp_path, synthetic_pair_dir, crop_schedule=schedule).validate()
