"""scripts/compose_modalities.py: a separate model built from two models' modality codecs codes
each modality exactly as the model its codec came from."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

import mmcodec
from mmcodec.bitstream import unpack
from mmcodec.models.registry import install_model, read_manifest
from mmcodec.models.separate import SeparateCoding
from conftest import TINY, TINY_LAMBDAS, smooth_image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compose_modalities.py"


def _install(directory: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    kwargs = {"modalities": ["rgb", "ir"], **TINY}
    return install_model(directory, "ir-vi/tiny", "separate", kwargs, ["rgb", "ir"], TINY_LAMBDAS,
                         SeparateCoding(**kwargs), budget={"steps": 10 * seed})


def _streams(manifest: Path) -> dict[str, bytes]:
    codec = mmcodec.codec.Codec(read_manifest(manifest))
    blob = codec.compress(smooth_image(64, 96, 3, seed=1), smooth_image(64, 96, 1, seed=2))
    return {name: b"".join(parts) for name, parts in unpack(blob).streams.items()}


def test_each_modality_codes_as_its_source(tmp_path):
    base, donor = _install(tmp_path / "a", 1), _install(tmp_path / "b", 2)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(SCRIPT), str(base), str(donor), "--take", "ir", "--out", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    composed = _streams(out / "ir-vi__tiny.json")
    assert composed["rgb"] == _streams(base)["rgb"] != _streams(donor)["rgb"]
    assert composed["ir"] == _streams(donor)["ir"] != _streams(base)["ir"]
    budget = read_manifest(out / "ir-vi__tiny.json").budget
    assert budget["steps"] == 20 and budget["base_budget"]["steps"] == 10
    assert budget["codec_budgets"] == {"rgb": "base_budget", "ir": "budget"}


def test_unknown_modality_is_refused(tmp_path):
    base = _install(tmp_path / "a", 1)
    run = subprocess.run([sys.executable, str(SCRIPT), str(base), str(base), "--take", "depth", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert run.returncode != 0 and "unknown modalities" in run.stderr
    assert not (tmp_path / "o").exists()
