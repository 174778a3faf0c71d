"""A NaN loss skips its update instead of poisoning the weights; a run of them stops training
with a one-line TrainingDivergedError and leaves the last checkpoint intact."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mmcodec.train.trainer as trainer
from mmcodec.errors import TrainingDivergedError
from mmcodec.train.config import TrainConfig
from mmcodec.train.loss import rd_loss

from conftest import tiny_train_config


def config(tmp_path: Path, data: Path) -> TrainConfig:
    return tiny_train_config(tmp_path / "run", data, name="test-ir-vi/nan", steps=6, checkpoint_every=2)


def poisoned_loss(bad_calls: set[int]):
    """rd_loss whose total is NaN on the given (0-based) calls."""
    calls = [0]

    def loss(*args, **kwargs):
        terms = rd_loss(*args, **kwargs)
        if calls[0] in bad_calls:
            terms["loss"] = terms["loss"] * float("nan")
        calls[0] += 1
        return terms
    return loss


def test_a_nan_batch_is_skipped_and_weights_stay_finite(synthetic_pair_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "rd_loss", poisoned_loss({2, 3}))
    result = trainer.train(config(tmp_path, synthetic_pair_dir), progress=False)
    assert result["budget"]["steps"] == 6
    assert result["budget"]["skipped_nonfinite_steps"] == 2
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_a_diverged_run_stops_with_a_clear_error(synthetic_pair_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "MAX_NONFINITE_STEPS", 3)
    monkeypatch.setattr(trainer, "rd_loss", poisoned_loss(set(range(2, 100))))
    with pytest.raises(TrainingDivergedError, match="diverged at step 5") as info:
        trainer.train(config(tmp_path, synthetic_pair_dir), progress=False)
    assert "\n" not in str(info.value) and info.value.exit_code == 3
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert saved["step"] == 4          # saved mid-run, but skipped steps never touched the weights
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())
