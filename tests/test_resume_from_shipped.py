"""`mmcodec train --resume` on a fresh clone: no runs/ checkpoint, so the campaign continues
from the committed shipped weights and their recorded cumulative budget."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from mmcodec.errors import BadInputError
import mmcodec.train.campaign as campaign
from mmcodec.models.registry import build_model, install_model, read_manifest
from mmcodec.train.config import TrainConfig
from mmcodec.train.trainer import train

KWARGS = {"modalities": ["rgb", "ir"], "N": 8, "M": 12, "num_rates": 2}
LAMBDAS = [0.005, 0.02]


def config(tmp_path: Path, data: Path, **extra) -> TrainConfig:
    settings = dict(name="test-ir-vi/resume", arch="separate", kwargs=dict(KWARGS), modalities=["rgb", "ir"],
                    train_split=str(data), lambdas=LAMBDAS, steps=7, batch=2, crop=64, lr=1e-3, warmup=1,
                    threads=1, log_every=1, checkpoint_every=100, crop_schedule=[],
                    out=str(tmp_path / "run"), ship_to=str(tmp_path / "weights"))
    return TrainConfig(**{**settings, **extra})


def ship(tmp_path: Path, steps: int) -> Path:
    model = build_model("separate", dict(KWARGS))
    return install_model(tmp_path / "weights", "test-ir-vi/resume", "separate", dict(KWARGS), ["rgb", "ir"],
                         LAMBDAS, model, budget={"steps": steps, "cpu_hours": 0.5, "wall_hours": 1.0})


def test_resume_without_checkpoint_continues_from_shipped_weights(synthetic_pair_dir, tmp_path):
    ship(tmp_path, steps=5)
    result = train(config(tmp_path, synthetic_pair_dir), resume=True, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [6, 7]          # counted on from the shipped 5 steps
    assert result["budget"]["steps"] == 7
    assert result["budget"]["cpu_hours"] >= 0.5               # cumulative CPU time carried over


def test_resume_starts_from_the_shipped_weights_not_from_scratch(synthetic_pair_dir, tmp_path, monkeypatch):
    manifest = ship(tmp_path, steps=5)
    loaded = []
    import mmcodec.train.trainer as trainer_module
    real = trainer_module.load_weights

    def spy(model, path):
        loaded.append(Path(path))
        real(model, path)
    monkeypatch.setattr(trainer_module, "load_weights", spy)
    train(config(tmp_path, synthetic_pair_dir), resume=True, progress=False)
    assert loaded == [manifest.with_suffix(".safetensors")]


def test_resume_refuses_without_checkpoint_or_shipped_weights(synthetic_pair_dir, tmp_path):
    with pytest.raises(BadInputError, match="no checkpoint"):
        train(config(tmp_path, synthetic_pair_dir), resume=True, progress=False)


def test_resume_from_shipped_needs_more_steps(synthetic_pair_dir, tmp_path):
    ship(tmp_path, steps=9)
    with pytest.raises(BadInputError, match="already has 9 steps"):
        train(config(tmp_path, synthetic_pair_dir), resume=True, progress=False)


def test_shipped_weights_of_another_architecture_are_not_used(synthetic_pair_dir, tmp_path):
    ship(tmp_path, steps=5)
    other = dict(KWARGS, N=16)
    with pytest.raises(BadInputError, match="no checkpoint"):
        train(config(tmp_path, synthetic_pair_dir, kwargs=other), resume=True, progress=False)


def test_shipping_compares_with_the_weights_in_ship_to_even_off_the_model_path(synthetic_pair_dir, tmp_path,
                                                                              monkeypatch):
    """ship_to need not be on MMCODEC_MODEL_PATH: the candidate is still compared with what
    is there (a BD-rate per modality), not shipped unseen."""
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(tmp_path / "elsewhere"))
    ship(tmp_path, steps=5)
    cfg = config(tmp_path, synthetic_pair_dir, select_split=str(synthetic_pair_dir), select_every=1)
    entry = train(cfg, resume=True, progress=False)["ledger_entry"]
    assert entry["bd_rate_vs_shipped"] is not None
    assert set(entry["bd_rate_vs_shipped"]) == {"rgb", "ir"}


def _codec_tensors(manifest: Path, modality: str) -> dict:
    state = read_manifest(manifest).load().state_dict()
    return {k: v for k, v in state.items() if k.startswith(f"codecs.{modality}.")}


def test_only_the_modalities_that_pass_are_shipped(synthetic_pair_dir, tmp_path, monkeypatch):
    """Separate coding: infrared passes the rule, visible does not, so ship_to ends up with the
    shipped visible codec and the candidate's infrared codec (and the ledger says so)."""
    monkeypatch.setattr(campaign, "bd_rates", lambda new, old, mods: {"rgb": 5.0, "ir": -3.0})
    shipped = ship(tmp_path, steps=5)
    before = {m: _codec_tensors(shipped, m) for m in ("rgb", "ir")}
    cfg = config(tmp_path, synthetic_pair_dir, select_split=str(synthetic_pair_dir), select_every=1,
                 ledger=str(tmp_path / "ledger.jsonl"))
    result = train(cfg, resume=True, progress=False)
    assert result["shipped"] is False and result["shipped_modalities"] == ["ir"]
    candidate = Path(result["manifest"])
    after = {m: _codec_tensors(shipped, m) for m in ("rgb", "ir")}
    assert all(torch.equal(before["rgb"][k], v) for k, v in after["rgb"].items())
    new_ir = _codec_tensors(candidate, "ir")
    assert all(torch.equal(new_ir[k], v) for k, v in after["ir"].items())
    assert any(not torch.equal(before["ir"][k], v) for k, v in after["ir"].items())
    lineage = read_manifest(shipped).budget
    assert lineage["steps"] == 7 and lineage["codec_steps"] == {"rgb": 5, "ir": 7}
    assert list(lineage["codec_budgets"]) == ["rgb"] and lineage["codec_budgets"]["rgb"]["steps"] == 5
    assert '"shipped_modalities": ["ir"]' in (tmp_path / "ledger.jsonl").read_text()

    # The next run continues both codecs of the composed model: each adds the run's steps to its
    # own count, and both are now this run's, so no per-codec budget is left.
    monkeypatch.setattr(campaign, "bd_rates", lambda new, old, mods: {"rgb": -1.0, "ir": -1.0})
    again = train(config(tmp_path, synthetic_pair_dir, steps=10, out=str(tmp_path / "run2"),
                         select_split=str(synthetic_pair_dir), select_every=1), resume=True, progress=False)
    assert again["shipped"] is True
    budget = read_manifest(shipped).budget
    assert budget["steps"] == 10 and budget["codec_steps"] == {"rgb": 8, "ir": 10}
    assert "codec_budgets" not in budget


def test_a_frozen_codec_keeps_its_steps_and_budget(synthetic_pair_dir, tmp_path):
    ship(tmp_path, steps=5)
    result = train(config(tmp_path, synthetic_pair_dir, freeze=["codecs.ir."]), resume=True, progress=False)
    budget = result["budget"]
    assert budget["codec_steps"] == {"rgb": 7, "ir": 5}
    assert budget["codec_budgets"]["ir"]["steps"] == 5 and "rgb" not in budget["codec_budgets"]


def test_a_warm_start_from_the_same_model_keeps_each_codecs_history(synthetic_pair_dir, tmp_path, monkeypatch):
    """init_from (a new run, steps from 0) of an installed model of the same architecture: the
    trained codec counts the source's steps plus the run's, a frozen one keeps its own."""
    ship(tmp_path, steps=5)
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(tmp_path / "weights"))
    cfg = config(tmp_path, synthetic_pair_dir, init_from="test-ir-vi/resume", freeze=["codecs.ir."], steps=3,
                 ship_to=None)
    budget = train(cfg, progress=False)["budget"]
    assert budget["steps"] == 3
    assert budget["codec_steps"] == {"rgb": 8, "ir": 5}
    assert budget["codec_budgets"]["ir"]["steps"] == 5


def test_a_run_with_a_ledger_and_no_splits_still_leaves_a_row(synthetic_pair_dir, tmp_path):
    ship(tmp_path, steps=5)
    cfg = config(tmp_path, synthetic_pair_dir, ledger=str(tmp_path / "ledger.jsonl"))
    train(cfg, resume=True, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["steps"] == 7
