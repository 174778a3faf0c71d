"""Shared fixtures: tiny untrained models installed in a temp dir, synthetic pairs, CLI runner.

Everything here is generated in code; real data (../shared/data) is only used by tests that
skip when it is absent.

Test modules import the helpers as `from conftest import ...` (pytest puts tests/ on
sys.path), never as `tests.conftest`: that name would load this file a second time as a
different module, with its own copies of the fixtures and constants.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from mmcodec.data.pairs import data_root
from mmcodec.data.synthetic import smooth_image
from mmcodec.models.registry import install_model
from mmcodec.models.separate import SeparateCoding

TINY = {"N": 16, "M": 24, "num_rates": 2}


def tiny_train_config(out: Path, data: Path, **extra):
    """A 3-step training config of a tiny separate RGB+IR codec on `data` (synthetic pairs)."""
    from mmcodec.train.config import TrainConfig
    settings = dict(name="test-ir-vi/tiny-train", arch="separate",
                    kwargs={"modalities": ["rgb", "ir"], "N": 8, "M": 12, "num_rates": 2},
                    modalities=["rgb", "ir"], train_split=str(data), lambdas=[0.005, 0.02], steps=3, batch=2,
                    crop=64, lr=1e-3, warmup=1, threads=1, log_every=1, checkpoint_every=100, crop_schedule=[],
                    out=str(out))
    return TrainConfig(**{**settings, **extra})
TINY_LAMBDAS = [0.002, 0.01]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests run single-threaded: faster on a shared 2-core machine, and reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Installs untrained tiny separate models `ir-vi/tiny` and `rgb-d/tiny`."""
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    for name, mods in (("ir-vi/tiny", ["rgb", "ir"]), ("rgb-d/tiny", ["rgb", "depth"])):
        kwargs = {"modalities": mods, **TINY}
        install_model(d, name, "separate", kwargs, mods, TINY_LAMBDAS, SeparateCoding(**kwargs), default=True)
    return d


@pytest.fixture
def tiny_env(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(tiny_model_dir))
    return tiny_model_dir


@pytest.fixture
def synthetic_pair_dir(tmp_path: Path) -> Path:
    """vi/ + ir/ folders with three smooth 8-bit pairs of different sizes."""
    root = tmp_path / "pairs"
    for i, (h, w) in enumerate([(80, 96), (128, 128), (70, 130)]):
        for sub, ch in (("vi", 3), ("ir", 1)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(smooth_image(h, w, ch, seed=10 * i + ch)).save(root / sub / f"pair{i}.png")
    return root


@pytest.fixture
def cli(tiny_model_dir: Path):
    """Run the real `mmcodec` command in a subprocess with the tiny models installed."""
    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "MMCODEC_MODEL_PATH": str(tiny_model_dir), **(env or {})}
        return subprocess.run([sys.executable, "-m", "mmcodec", *map(str, args)], capture_output=True,
                              text=True, env=full_env, cwd=cwd, timeout=300)
    return run


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if not (root / "ir_vi").is_dir():
        pytest.skip(f"real data not found at {root} (set MMCODEC_DATA)")
    return root
