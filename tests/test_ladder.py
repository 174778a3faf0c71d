"""Rate points added above a model's top quality (mmcodec.models.ladder): old qualities code
exactly as before, old files keep decoding, and nothing else is accepted."""
from __future__ import annotations

import dataclasses
import math
import shutil

import pytest
import torch

import mmcodec
from mmcodec.bitstream import pack, unpack
from mmcodec.errors import BadInputError, ModelMismatchError
from mmcodec.models.ladder import extrapolated_rows, install_extended
from mmcodec.models.registry import find_model
from conftest import smooth_image


def test_rows_continue_the_log_linear_trend():
    rows = torch.tensor([[1.0, 2.0], [2.0, 3.0]])
    out = extrapolated_rows(rows, [0.01, 0.04], [0.16])
    assert torch.equal(out[:2], rows)
    # one more lambda step of the same ratio: the gain grows by the same factor again
    assert out[2].tolist() == pytest.approx([4.0, 4.5])
    assert extrapolated_rows(rows, [0.01, 0.04], [0.08])[2, 0].item() == pytest.approx(2 * math.sqrt(2))


@pytest.fixture
def extended(tiny_model_dir, tmp_path, monkeypatch):
    """The tiny ir-vi model, and the same name with a third rate point installed over it."""
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    shutil.copytree(tiny_model_dir, old_dir)
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(old_dir))
    old = find_model("ir-vi/tiny")
    install_extended(old, [0.03], new_dir)
    return old_dir, new_dir


def _pair():
    rgb = smooth_image(64, 96, 3, seed=3)
    ir = smooth_image(64, 96, 1, seed=4)
    return rgb, ir


def test_old_files_decode_and_old_qualities_are_unchanged(extended, monkeypatch):
    old_dir, new_dir = extended
    rgb, ir = _pair()
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(old_dir))
    old_blobs = {q: mmcodec.load("ir-vi/tiny", quality=q).compress(rgb, ir) for q in (1, 2)}
    old_out = {q: mmcodec.decompress(b) for q, b in old_blobs.items()}
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(new_dir))
    assert find_model("ir-vi/tiny").qualities == [1, 2, 3]
    for q, blob in old_blobs.items():
        out = mmcodec.decompress(blob)
        assert all((out[m] == old_out[q][m]).all() for m in out)
        new_blob = mmcodec.load("ir-vi/tiny", quality=q).compress(rgb, ir)
        assert unpack(new_blob).streams == unpack(blob).streams
    codec = mmcodec.load("ir-vi/tiny", quality=3)
    step = math.log(0.03 / 0.01) / math.log(0.01 / 0.002)   # the new lambda step, in old steps
    for m in ("rgb", "ir"):
        gain = codec.model.codecs[m].gains.gain.detach()
        assert torch.allclose(gain[2] / gain[1], (gain[1] / gain[0]) ** step, rtol=1e-2)
    top = codec.compress(rgb, ir)
    assert unpack(top).quality == 3
    mmcodec.decompress(top)


def test_the_default_quality_stays_where_it_was(extended, monkeypatch):
    """Without the manifest's default_quality the default would move up the longer ladder
    (from 1 of 1-2 to 3 of 1-3), and `mmcodec compress` without --quality would change files."""
    old_dir, new_dir = extended
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(old_dir))
    before = mmcodec.load("ir-vi/tiny").quality
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(new_dir))
    installed = find_model("ir-vi/tiny")
    assert installed.extra["default_quality"] == before == 1
    assert mmcodec.load("ir-vi/tiny").quality == before
    # a value that is not one of the qualities falls back to the rule (3 of 1-3)
    for bad in (0, 4, True, "2"):
        assert dataclasses.replace(installed, extra={"default_quality": bad}).default_quality == 3


def test_an_old_weights_stream_above_its_old_top_quality_is_refused(extended, monkeypatch):
    old_dir, new_dir = extended
    rgb, ir = _pair()
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(old_dir))
    old_hash = find_model("ir-vi/tiny").weights_hash
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(new_dir))
    top = unpack(mmcodec.load("ir-vi/tiny", quality=3).compress(rgb, ir))
    forged = pack(dataclasses.replace(top, weights=old_hash))
    with pytest.raises(ModelMismatchError):
        mmcodec.decompress(forged)


def test_new_points_must_lie_above_the_top(tiny_env):
    with pytest.raises(BadInputError, match="above"):
        install_extended(find_model("ir-vi/tiny"), [0.005], tiny_env / "unused")


def test_training_only_the_new_rows_leaves_the_old_rows_untouched(synthetic_pair_dir, tmp_path):
    """`train_rates` + freezing all but the gain units: the old rows (and every other weight)
    come out bit-identical, the trained row moves."""
    from safetensors.torch import load_file
    from conftest import tiny_train_config
    from mmcodec.train.trainer import train
    frozen = [f"codecs.{m}.{part}" for m in ("rgb", "ir") for part in ("g_a", "g_s", "latent_codec")]
    cfg = tiny_train_config(tmp_path / "run", synthetic_pair_dir, train_rates=[1], freeze=frozen, lr=1e-2)
    torch.manual_seed(0)
    from mmcodec.models.registry import build_model, save_weights
    start = build_model(cfg.arch, cfg.kwargs)
    save_weights(start, tmp_path / "start.safetensors")
    cfg.init_from = str(tmp_path / "start.safetensors")
    result = train(cfg, progress=False)
    before, after = load_file(str(tmp_path / "start.safetensors")), load_file(result["manifest"].replace(".json", ".safetensors"))
    gains = [k for k in before if k.endswith(("gains.gain", "gains.inverse_gain"))]
    assert gains
    for k in before:
        if k in gains:
            assert torch.equal(before[k][0], after[k][0]) and not torch.equal(before[k][1], after[k][1])
        elif not k.endswith("likelihood_lower_bound.bound"):
            assert torch.equal(before[k], after[k]), k


def test_train_rates_are_checked(synthetic_pair_dir, tmp_path):
    from conftest import tiny_train_config
    for bad in ([2], [], [0, 0], [True]):
        with pytest.raises(BadInputError, match="train_rates"):
            tiny_train_config(tmp_path / "run", synthetic_pair_dir, train_rates=bad).validate()
