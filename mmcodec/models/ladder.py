"""Rate points above a trained model's top quality, from its learned gain units.

Gain units (mmcodec.modality_codec.GainUnits) give every rate point its own per-channel scale
of the latent. Extending the ladder appends rows on the straight line through the two top rows
in log(gain) against log(lambda), per channel, so the new points continue the trend training
found between the two highest rates (a warm start; training only the new rows may follow).
Every other parameter, and the old rows, stay as they are, so qualities 1..K code exactly as
before and the extended weights declare that they decode the old weights' files
("decodes_weights" in the manifest, InstalledModel.decodes).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from mmcodec.errors import BadInputError
from mmcodec.modality_codec import GainUnits
from mmcodec.models.registry import InstalledModel, build_model, install_model


def extrapolated_rows(rows: torch.Tensor, lambdas: list[float], new: list[float]) -> torch.Tensor:
    """(R, C) positive rows at `lambdas` -> (R + len(new), C), log-linear in log(lambda)."""
    top, below = rows[-1].log(), rows[-2].log()
    slope = (top - below) / (math.log(lambdas[-1]) - math.log(lambdas[-2]))
    extra = [(top + slope * (math.log(lam) - math.log(lambdas[-1]))).exp() for lam in new]
    return torch.cat([rows, torch.stack(extra)])


def extend_rate_ladder(installed: InstalledModel, new_lambdas: list[float]) -> tuple[torch.nn.Module, dict]:
    """The installed model with rate points at `new_lambdas` appended, and its kwargs."""
    lambdas = list(installed.lambdas)
    if len(lambdas) < 2 or not new_lambdas or sorted(new_lambdas) != list(new_lambdas) \
            or new_lambdas[0] <= lambdas[-1]:
        raise BadInputError(f"new rate points must increase and start above {installed.name}'s top lambda "
                            f"{lambdas[-1]}, got {list(new_lambdas)}")
    old = installed.load()
    kwargs = {**installed.kwargs, "num_rates": len(lambdas) + len(new_lambdas)}
    new = build_model(installed.arch, kwargs)
    state = old.state_dict()
    for name, module in old.named_modules():
        if isinstance(module, GainUnits):
            for param in ("gain", "inverse_gain"):
                key = f"{name}.{param}"
                state[key] = extrapolated_rows(state[key].float(), lambdas, list(new_lambdas))
    params = dict(new.named_parameters())
    per_rate = [k for k, v in params.items() if v.shape != state[k].shape]
    if per_rate:
        raise BadInputError(f"{installed.name} has per-rate parameters other than gain units "
                            f"({', '.join(per_rate[:3])}); its ladder cannot be extended this way")
    # Parameters only: the entropy coder's tables are buffers that update() rebuilds.
    new.load_state_dict({k: state[k] for k in params}, strict=False)
    new.update(force=True)
    return new.eval(), kwargs


def install_extended(installed: InstalledModel, new_lambdas: list[float], directory: Path,
                     name: str | None = None) -> Path:
    """Extend `installed`'s ladder and install it (under `name`, default the same name) in
    `directory`, declaring that it decodes the files of the old weights (and of the weights
    those decoded) at their qualities."""
    model, kwargs = extend_rate_ladder(installed, new_lambdas)
    earlier = dict(installed.extra.get("decodes_weights", {}))
    earlier[installed.weights_hash] = len(installed.lambdas)
    top = len(installed.lambdas)
    return install_model(directory, name or installed.name, installed.arch, kwargs, installed.modalities,
                         list(installed.lambdas) + list(new_lambdas), model, default=installed.default,
                         description=f"{installed.description}; qualities {top + 1}-{top + len(new_lambdas)} "
                                     "extrapolated from the learned gains",
                         budget=installed.budget,
                         extra={"decodes_weights": earlier, "default_quality": installed.default_quality})
