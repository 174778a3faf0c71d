"""Reduced-precision training: bfloat16 autocast where the CPU runs it natively."""
from __future__ import annotations

import sys
from typing import Any, Callable

import torch

from mmcodec.errors import BadInputError


def _float32(t: Any) -> Any:
    if isinstance(t, dict):
        return {k: _float32(v) for k, v in t.items()}
    return t.float() if torch.is_tensor(t) and t.is_floating_point() else t


def bf16_forward(net: torch.nn.Module, device: torch.device) -> Callable[..., dict]:
    """Forward under bfloat16 autocast; outputs back in float32 so rates (log-likelihoods)
    and distortions are computed at full precision."""
    def forward(x: dict[str, torch.Tensor], rate: torch.Tensor) -> dict:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = net(x, rate)
        return _float32(out)
    return forward


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matmuls run in hardware: on a CPU without AVX512-BF16 or AMX, PyTorch
    emulates them and a bf16-autocast step measured 10x slower than float32 (AVX2 EPYC, 2026-11-28)."""
    if device.type != "cpu":
        return True
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def resolve_autocast(requested: str | None, device: torch.device) -> str | None:
    """The autocast mode to train with: "bf16" is a speed option, so it falls back to float32
    (with a warning) where bfloat16 would be emulated."""
    if requested not in (None, "bf16"):
        raise BadInputError(f"autocast must be null or \"bf16\", not {requested!r}")
    if requested == "bf16" and not native_bf16(device):
        print("warning: this CPU has no native bfloat16 (AVX512-BF16 or AMX), where bf16 autocast runs "
              "several times slower than float32; training in float32", file=sys.stderr)
        return None
    return requested
