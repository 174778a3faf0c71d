"""scripts/compose_modalities.py: a separate model built from two models' modality codecs codes
each modality exactly as the model its codec came from."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import mmcodec
from mmcodec.bitstream import unpack
from mmcodec.models.registry import install_model, read_manifest
from mmcodec.models.separate import SeparateCoding
from conftest import TINY, TINY_LAMBDAS, smooth_image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compose_modalities.py"


def _install(directory: Path, seed: int, pair: tuple[str, str] = ("rgb", "ir")) -> Path:
    torch.manual_seed(seed)
    kwargs = {"modalities": list(pair), **TINY}
    name = "ir-vi/tiny" if pair[1] == "ir" else "rgb-d/tiny"
    return install_model(directory, name, "separate", kwargs, list(pair), TINY_LAMBDAS,
                         SeparateCoding(**kwargs), budget={"steps": 10 * seed})


def _compose(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def _streams(manifest: Path) -> dict[str, bytes]:
    codec = mmcodec.codec.Codec(read_manifest(manifest))
    second = codec.modalities[1]
    other = smooth_image(64, 96, 1, seed=2, dtype=np.uint8 if second == "ir" else np.uint16)
    blob = codec.compress(**{"rgb": smooth_image(64, 96, 3, seed=1), second: other})
    return {name: b"".join(parts) for name, parts in unpack(blob).streams.items()}


def test_each_modality_codes_as_its_source(tmp_path):
    base, donor = _install(tmp_path / "a", 1), _install(tmp_path / "b", 2)
    out = tmp_path / "out"
    run = _compose(base, donor, "--take", "ir", "--out", out)
    assert run.returncode == 0, run.stderr
    composed = _streams(out / "ir-vi__tiny.json")
    assert composed["rgb"] == _streams(base)["rgb"] != _streams(donor)["rgb"]
    assert composed["ir"] == _streams(donor)["ir"] != _streams(base)["ir"]
    budget = read_manifest(out / "ir-vi__tiny.json").budget
    assert budget["steps"] == 20 and budget["codec_steps"] == {"rgb": 10, "ir": 20}
    assert budget["codec_budgets"] == {"rgb": {"steps": 10}}


def test_a_composed_model_composed_again_keeps_a_flat_lineage(tmp_path):
    """Each codec's entry is the budget of the run that trained it, never a composed budget."""
    a, b, c = (_install(tmp_path / d, s) for d, s in (("a", 1), ("b", 2), ("c", 3)))
    assert _compose(a, b, "--take", "ir", "--out", tmp_path / "ab").returncode == 0
    run = _compose(tmp_path / "ab" / "ir-vi__tiny.json", c, "--take", "rgb", "--out", tmp_path / "abc")
    assert run.returncode == 0, run.stderr
    budget = read_manifest(tmp_path / "abc" / "ir-vi__tiny.json").budget
    assert budget["steps"] == 30 and budget["codec_steps"] == {"rgb": 30, "ir": 20}
    assert budget["codec_budgets"] == {"ir": {"steps": 20}}


def test_the_older_nested_lineage_is_read():
    from mmcodec.train.lineage import codec_budget, codec_steps
    older = {"steps": 48, "lr": 1, "codec_budgets": {"rgb": "base_budget", "ir": "budget"},
             "base_budget": {"steps": 40, "lr": 2, "codec_budgets": {"rgb": "base_budget", "ir": "budget"},
                             "base_budget": {"steps": 37, "lr": 3}}}
    assert codec_steps(older, "rgb") == 37 and codec_steps(older, "ir") == 48
    assert codec_budget(older, "rgb") == {"steps": 37, "lr": 3}
    assert codec_budget(older, "ir") == {"steps": 48, "lr": 1}


def test_unknown_modality_is_refused(tmp_path):
    base = _install(tmp_path / "a", 1)
    run = _compose(base, base, "--take", "depth", "--out", tmp_path / "o")
    assert run.returncode != 0 and "not in both models" in run.stderr
    assert not (tmp_path / "o").exists()


def test_a_codec_moves_to_a_model_of_another_pair(tmp_path):
    """The visible codec of an ir-vi model into an rgb-d model (how rgb-d/hyperprior got the
    ir-vi/separate visible codec): the RGB stream is the donor's, the depth stream the base's."""
    base, donor = _install(tmp_path / "d", 3, ("rgb", "depth")), _install(tmp_path / "v", 4)
    out = tmp_path / "out"
    run = _compose(base, donor, "--take", "rgb", "--out", out)
    assert run.returncode == 0, run.stderr
    composed = _streams(out / "rgb-d__tiny.json")
    assert composed["rgb"] == _streams(donor)["rgb"] != _streams(base)["rgb"]
    assert composed["depth"] == _streams(base)["depth"]
    assert read_manifest(out / "rgb-d__tiny.json").modalities == ["rgb", "depth"]
    # The RGB-D model keeps its own campaign's run fields; the moved codec brings its lineage.
    budget = read_manifest(out / "rgb-d__tiny.json").budget
    assert budget["steps"] == 30 and budget["codec_steps"] == {"rgb": 40, "depth": 30}
    assert budget["codec_budgets"] == {"rgb": {"steps": 40}}
    refused = _compose(base, donor, "--take", "depth", "--out", tmp_path / "o")
    assert refused.returncode != 0 and "not in both models" in refused.stderr
    assert not (tmp_path / "o").exists()
