"""Where a run starts from: warm starts from another model's weights, the shipped weights a
resumed campaign continues, and the frozen pretrained copy of Lu et al.'s joint objective."""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from mmcodec.errors import BadInputError
from mmcodec.models.registry import LIKELIHOOD_FLOOR_KEY, find_model, read_manifest
from mmcodec.train.config import TrainConfig


def _gained_input_channels(own: torch.Size, source: torch.Size) -> bool:
    return len(own) == len(source) == 4 and own[1] > source[1] and own[0] == source[0] and own[2:] == source[2:]


def warm_start(model: torch.nn.Module, source: str, prefix_map: dict[str, str]) -> int:
    """Copy every tensor of `source` whose (renamed) key and shape match; return how many.

    A convolution that gained input channels (the 4-channel encoder of rgbd_tcm "concat4",
    whose extra channels come after the source's) gets the source kernel on its leading
    input channels and zeros on the new ones, so the warm-started model starts out computing
    exactly what the source did."""
    if source.endswith((".safetensors", ".pt")):
        path = Path(source)
        if not path.is_file():
            raise BadInputError(f"init_from: file not found: {path}")
    else:
        path = find_model(source).weights_path
    if path.suffix == ".pt":
        state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    else:
        from safetensors.torch import load_file
        state = load_file(str(path))
    own = model.state_dict()
    copied = 0
    for k, v in state.items():
        if k.endswith(LIKELIHOOD_FLOOR_KEY):   # a constant, zero in fp16 files: keep the model's own
            continue
        for src, dst in (prefix_map.items() or [("", "")]):
            if k.startswith(src):
                nk = dst + k[len(src):]
                if nk in own and own[nk].shape == v.shape:
                    own[nk] = v.float() if v.is_floating_point() else v
                    copied += 1
                elif nk in own and _gained_input_channels(own[nk].shape, v.shape):
                    widened = torch.zeros_like(own[nk])
                    widened[:, :v.shape[1]] = v.float()
                    own[nk] = widened
                    copied += 1
    model.load_state_dict(own)
    return copied


def frozen_pretrained_copy(model: torch.nn.Module, cfg: TrainConfig, params: list[torch.nn.Parameter],
                           saved_state: dict[str, torch.Tensor] | None) -> torch.nn.Module:
    """The frozen model whose current-modality loss L_i* the joint objective compares with:
    a copy of `model` as loaded, or on resume the copy saved in the checkpoint (a checkpoint
    without one, i.e. the joint objective switched on when resuming, starts the joint phase
    from the resumed weights)."""
    reference, current = getattr(model, "reference", None), getattr(model, "current", None)
    if reference is None or current is None or not hasattr(model, "codecs"):
        raise BadInputError(f"joint_objective needs a model that codes a current modality conditioned on a "
                            f"reference one (lu2022); {cfg.arch} has no reference/current split")
    trainable = {id(p) for p in params}
    if not any(id(p) in trainable for p in model.codecs[reference].parameters()):
        raise BadInputError(f"joint_objective trains the reference codec, but codecs.{reference} is frozen "
                            f"(freeze {cfg.freeze}, stage {cfg.stage!r})")
    frozen = copy.deepcopy(model)
    if saved_state is not None:
        frozen.load_state_dict(saved_state)
    frozen.requires_grad_(False)
    # Training mode, as the model it is compared with: additive noise for the rate terms.
    return frozen.train()


@contextlib.contextmanager
def replayed_random_state(cpu_state: torch.Tensor, cuda_state: torch.Tensor | None,
                          device: torch.device) -> Iterator[None]:
    """Run a block with the random state captured before the training forward (the same
    quantisation noise), then restore the state as it was: the training stream of random
    numbers does not depend on whether the block ran."""
    with torch.random.fork_rng(devices=[device] if cuda_state is not None else []):
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state(cuda_state, device)
        yield


def shipped_manifest(cfg: TrainConfig) -> tuple[Path, dict[str, Any]] | None:
    """Weights and budget of the model `cfg` ships (`ship_to`/<name>.json), if present."""
    if not cfg.ship_to:
        return None
    manifest = Path(cfg.ship_to) / (cfg.name.replace("/", "__") + ".json")
    weights = manifest.with_suffix(".safetensors")
    if not (manifest.is_file() and weights.is_file()):
        return None
    shipped = read_manifest(manifest)
    if shipped.arch != cfg.arch or shipped.kwargs != cfg.kwargs or "steps" not in shipped.budget:
        return None
    return weights, shipped.budget
