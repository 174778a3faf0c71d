"""Lu et al.'s optional joint objective L_v + w|L_i - L_i*| through the real trainer: the
loss it optimises, the frozen pretrained copy behind L_i*, the unfrozen reference codec,
resume, and the configuration errors."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from mmcodec.errors import BadInputError
from mmcodec.models.lu2022 import Lu2022
from mmcodec.train import trainer as trainer_module
from mmcodec.train.config import TrainConfig, load_config
from mmcodec.train.loss import joint_objective_loss
from mmcodec.train.trainer import train

from test_lu2022 import LAMBDAS, TINY, tiny_model

ROOT = Path(__file__).resolve().parents[1]
WEIGHT = 5.0


def independent_rd_loss(out: dict, x: dict[str, torch.Tensor], lam: torch.Tensor, m: str) -> torch.Tensor:
    """Batch mean of bits/pixel + lambda * 255^2 * MSE, written out from scratch."""
    batch, _, h, w = x[m].shape
    bits = sum(-torch.log2(lik).reshape(batch, -1).sum(1) for lik in out["likelihoods"][m].values())
    mse = ((out["x_hat"][m] - x[m]) ** 2).reshape(batch, -1).mean(1)
    return (bits / (h * w) + lam * 255.0 ** 2 * mse).mean()


def test_joint_objective_loss_formula():
    torch.manual_seed(0)
    x = {"rgb": torch.rand(2, 3, 8, 8), "ir": torch.rand(2, 1, 8, 8)}

    def fake_out(scale: float) -> dict:
        return {"x_hat": {m: (t + scale * torch.randn_like(t)).requires_grad_() for m, t in x.items()},
                "likelihoods": {m: {"y": torch.rand(2, 4, 2, 2).clamp_min(0.01).requires_grad_(),
                                    "z": torch.rand(2, 4, 1, 1).clamp_min(0.01)} for m in x}}

    out, frozen = fake_out(0.1), fake_out(0.3)
    lam = torch.tensor(LAMBDAS[:2])
    terms = joint_objective_loss(out, frozen, x, lam, "rgb", "ir", WEIGHT)
    l_v, l_i = independent_rd_loss(out, x, lam, "rgb"), independent_rd_loss(out, x, lam, "ir")
    l_i_star = independent_rd_loss(frozen, x, lam, "ir")
    torch.testing.assert_close(terms["loss"], l_v + WEIGHT * (l_i - l_i_star).abs())
    torch.testing.assert_close(terms["loss_current_frozen"], l_i_star.detach())
    terms["loss"].backward()
    assert out["x_hat"]["ir"].grad.abs().sum() > 0       # the current modality is pulled towards L_i*
    assert frozen["x_hat"]["ir"].grad is None            # L_i* is a constant


# -- through the trainer ------------------------------------------------------------------
class Recorder:
    """Records every Lu2022 forward (weights, inputs, random state) and every loss the
    trainer computes, to recompute them independently afterwards."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.forwards: list[dict] = []
        self.losses: list[dict[str, float]] = []
        real_forward, real_loss = Lu2022.forward, trainer_module.joint_objective_loss

        def forward(model, x, rate):
            self.forwards.append({"grad": torch.is_grad_enabled(), "rng": torch.get_rng_state(),
                                  "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
                                  "x": {m: t.clone() for m, t in x.items()}, "rate": rate.clone()})
            return real_forward(model, x, rate)

        def loss(*args, **kwargs):
            terms = real_loss(*args, **kwargs)
            self.losses.append({k: float(v) for k, v in terms.items()})
            return terms

        monkeypatch.setattr(Lu2022, "forward", forward)
        monkeypatch.setattr(trainer_module, "joint_objective_loss", loss)

    def step(self, i: int) -> tuple[dict, dict]:
        """(trained model's call, frozen copy's call) of step i (0-based)."""
        trained, frozen = self.forwards[2 * i], self.forwards[2 * i + 1]
        assert trained["grad"] and not frozen["grad"]
        return trained, frozen


def replay(call: dict) -> dict:
    """The recorded forward again, on a fresh model with the recorded weights and noise."""
    model = Lu2022(**TINY)
    model.load_state_dict(call["state"])
    model.train()
    torch.set_rng_state(call["rng"])
    with torch.no_grad():
        return model(call["x"], call["rate"])


@pytest.fixture
def pretrained(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A tiny Lu model saved as a training checkpoint: the "pretrained" model of the run."""
    state = tiny_model().state_dict()
    path = tmp_path / "pretrained.pt"
    torch.save({"model": state}, path)
    return path, state


def joint_config(tmp_path: Path, data: Path, init: Path, **extra) -> TrainConfig:
    settings = dict(name="test-ir-vi/lu2022-joint", arch="lu2022", kwargs=dict(TINY), modalities=["rgb", "ir"],
                    train_split=str(data), lambdas=LAMBDAS, steps=3, batch=2, crop=64, lr=1e-3, warmup=1,
                    threads=1, log_every=1, checkpoint_every=1, out=str(tmp_path / "run"), init_from=str(init),
                    joint_objective={"weight": WEIGHT})
    return TrainConfig(**{**settings, **extra})


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str = "") -> bool:
    derived = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
    keys = [k for k in a if k.startswith(prefix) and not k.endswith(derived)]
    return bool(keys) and all(torch.equal(a[k], b[k]) for k in keys)


def test_trainer_optimises_the_joint_objective(synthetic_pair_dir, tmp_path, monkeypatch, pretrained):
    init_path, init_state = pretrained
    rec = Recorder(monkeypatch)
    cfg = joint_config(tmp_path, synthetic_pair_dir, init_path)
    result = train(cfg, progress=False)
    assert len(rec.losses) == 3 and len(rec.forwards) == 6

    # The frozen copy is the model as loaded, at every step.
    for i in range(3):
        trained, frozen = rec.step(i)
        assert same_weights(frozen["state"], init_state)
        # same batch, rates and quantisation noise for L_i and L_i*
        assert torch.equal(trained["rng"], frozen["rng"]) and torch.equal(trained["rate"], frozen["rate"])
        assert all(torch.equal(trained["x"][m], frozen["x"][m]) for m in ("rgb", "ir"))
    # Step 1: both models are still equal, so L_i = L_i* exactly (same noise) and L = L_v.
    assert rec.losses[0]["loss_current"] == rec.losses[0]["loss_current_frozen"]
    assert rec.losses[0]["loss"] == pytest.approx(rec.losses[0]["loss_reference"], rel=1e-6)

    # Step 2, recomputed independently from the recorded weights, batch and noise.
    trained, frozen = rec.step(1)
    out, frozen_out = replay(trained), replay(frozen)
    lam = torch.tensor(LAMBDAS)[trained["rate"]]
    l_v = independent_rd_loss(out, trained["x"], lam, "rgb")
    l_i = independent_rd_loss(out, trained["x"], lam, "ir")
    l_i_star = independent_rd_loss(frozen_out, trained["x"], lam, "ir")
    assert float((l_i - l_i_star).abs()) > 1e-4                  # the reference moved, and so did L_i
    expected = float(l_v + WEIGHT * (l_i - l_i_star).abs())
    assert rec.losses[1]["loss"] == pytest.approx(expected, rel=1e-5)
    assert rec.losses[1]["loss_current_frozen"] == pytest.approx(float(l_i_star), rel=1e-5)

    # The log's components add up (values rounded to 4 decimals).
    with open(tmp_path / "run" / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for r, exact in zip(rows, rec.losses):
        assert float(r["loss"]) == pytest.approx(exact["loss"], abs=1e-4)
        assert abs(float(r["loss"]) - float(r["loss_reference"]) - WEIGHT * float(r["current_gap"])) < 1e-3
        assert abs(float(r["current_gap"]) - abs(float(r["loss_current"]) - float(r["loss_current_frozen"]))) < 2e-4

    # The reference codec trained (unfrozen); the checkpoint keeps the frozen copy unchanged.
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert not same_weights(ckpt["model"], init_state, "codecs.rgb.g_a.")
    assert not same_weights(ckpt["model"], init_state, "codecs.ir.")
    assert same_weights(ckpt["joint_frozen_model"], init_state)
    assert result["budget"]["joint_objective"] == {"weight": WEIGHT}


def test_resumed_joint_run_compares_with_the_original_pretrained_model(synthetic_pair_dir, tmp_path, monkeypatch,
                                                                       pretrained):
    init_path, init_state = pretrained
    train(joint_config(tmp_path, synthetic_pair_dir, init_path, steps=2), progress=False)
    rec = Recorder(monkeypatch)
    train(joint_config(tmp_path, synthetic_pair_dir, init_path, steps=3), resume=True, progress=False)
    trained, frozen = rec.step(0)                 # step 3, after the resume
    assert same_weights(frozen["state"], init_state)
    assert not same_weights(trained["state"], init_state, "codecs.rgb.")


@pytest.mark.parametrize("change, message", [
    ({"arch": "separate", "kwargs": {"modalities": ["rgb", "ir"], "N": 16, "M": 24, "num_rates": 4}},
     "joint_objective needs a model that codes a current modality conditioned on a reference one (lu2022); "
     "separate has no reference/current split"),
    ({"freeze": ["codecs.rgb."]}, "joint_objective trains the reference codec, but codecs.rgb is frozen"),
    ({"stage": "current"}, "joint_objective trains the reference codec, but codecs.rgb is frozen"),
    ({"joint_objective": {"weight": -1}}, "joint_objective weight must be a positive number, got -1"),
    ({"joint_objective": {"wieght": 5}}, "joint_objective must be {\"weight\": w}"),
])
def test_joint_objective_configuration_errors(synthetic_pair_dir, tmp_path, pretrained, change, message):
    cfg = joint_config(tmp_path, synthetic_pair_dir, pretrained[0])
    for k, v in change.items():
        setattr(cfg, k, v)
    with pytest.raises(BadInputError) as err:
        train(cfg, progress=False)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_joint_config_file(tmp_path):
    """configs/ir-vi-lu2022-joint.json: the SA run's architecture and weights, nothing frozen."""
    joint = load_config(str(ROOT / "configs" / "ir-vi-lu2022-joint.json"))
    sa = load_config(str(ROOT / "configs" / "ir-vi-lu2022-sa.json"))
    assert joint.joint_objective_weight == 5.0
    assert (joint.arch, joint.kwargs, joint.lambdas, joint.train_split) == (sa.arch, sa.kwargs, sa.lambdas,
                                                                             sa.train_split)
    assert joint.init_from == f"{sa.out}/checkpoint.pt" and not joint.init_map and not joint.freeze
    assert (joint.steps, joint.lr, joint.stage) == (500, 1e-4, "joint")
    assert joint.out != sa.out and joint.name != sa.name and joint.ledger == sa.ledger
    # the option also comes from the command line, and is validated there
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"arch": "lu2022"}))
    assert load_config(str(path), ['joint_objective={"weight": 2}']).joint_objective_weight == 2.0
    with pytest.raises(BadInputError, match="positive number"):
        load_config(str(path), ['joint_objective={"weight": 0}'])
