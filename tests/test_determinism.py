"""Determinism (docs/bitstream.md, "Determinism"): the same stream decodes to the same bytes
in any process and with any torch thread count, and a decoder that drifts from the encoder
says so instead of writing a wrong image."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mmcodec
from mmcodec.bitstream import pack, unpack
from mmcodec.errors import BitstreamError
from mmcodec.models.registry import find_model, install_model

from conftest import TINY, TINY_LAMBDAS, smooth_image

torch.set_num_threads(1)

# Encodes the inputs and decodes every stream; prints digests of the streams and the images.
CODE_AND_DECODE = """
import hashlib, json, sys
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
import mmcodec
folder = Path(sys.argv[1])
report = {"threads": torch.get_num_threads()}
for src in sorted(folder.glob("*.npz")):
    inputs = dict(np.load(src))
    quality = int(inputs.pop("quality"))
    blob = mmcodec.load(str(inputs.pop("model")), quality=quality).compress(**inputs)
    stored = (folder / (src.stem + ".mmc")).read_bytes()
    images = mmcodec.decompress(stored)
    report[src.stem] = {"encoded": hashlib.sha256(blob).hexdigest(),
                        "decoded": {m: hashlib.sha256(a.tobytes()).hexdigest() for m, a in sorted(images.items())}}
print(json.dumps(report))
"""


def _digest(images: dict[str, np.ndarray]) -> dict[str, str]:
    return {m: hashlib.sha256(a.tobytes()).hexdigest() for m, a in sorted(images.items())}


@pytest.fixture(scope="module")
def shipped_size_model(tmp_path_factory) -> Path:
    """An untrained model with the shipped widths (N=64, M=96): thread-count effects depend on
    layer shapes, and the tiny test models are too small to show them."""
    from mmcodec.models.separate import SeparateCoding
    d = tmp_path_factory.mktemp("shipped")
    torch.manual_seed(3)
    kwargs = {"modalities": ["rgb", "ir"], "N": 64, "M": 96, "num_rates": 2}
    model = SeparateCoding(**kwargs)
    with torch.no_grad():  # untrained latents are ~0, which every summation order gets right
        for codec in model.codecs.values():
            codec.gains.gain.mul_(40.0)
            codec.latent_codec.h_a[0].weight.mul_(4.0)
    install_model(d, "ir-vi/shipped-size", "separate", kwargs, ["rgb", "ir"], TINY_LAMBDAS, model)
    return d


def test_fresh_processes_with_1_and_2_threads_agree_bit_for_bit(tiny_model_dir, shipped_size_model, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("MMCODEC_MODEL_PATH", os.pathsep.join([str(tiny_model_dir), str(shipped_size_model)]))
    cases = {
        "shipped_size_q2": ("ir-vi/shipped-size", 2, {"rgb": smooth_image(320, 512, 3, 11),
                                                      "ir": smooth_image(320, 512, 1, 12)}),
        "rgb_ir_q2": ("ir-vi/tiny", 2, {"rgb": smooth_image(70, 130, 3, 1), "ir": smooth_image(70, 130, 1, 2)}),
        "rgb_ir16_q1": ("ir-vi/tiny", 1, {"rgb": smooth_image(128, 96, 3, 3),
                                          "ir": smooth_image(128, 96, 1, 4, dtype=np.uint16)}),
        "rgb_depth_q2": ("rgb-d/tiny", 2, {"rgb": smooth_image(64, 200, 3, 5),
                                           "depth": smooth_image(64, 200, 1, 6, dtype=np.uint16)}),
    }
    expected = {}
    for name, (model, quality, inputs) in cases.items():
        codec = mmcodec.load(model, quality=quality)
        # compress() in the fresh processes uses the default effort: so does this encode
        blob, recon = codec.encode({m: mmcodec.codec.load_modality(m, a) for m, a in inputs.items()},
                                   effort=codec.resolve_effort(None))
        (tmp_path / f"{name}.mmc").write_bytes(blob)
        np.savez(tmp_path / f"{name}.npz", model=model, quality=quality, **inputs)
        # in this process: decode == the encoder's predicted reconstruction
        assert _digest(mmcodec.decompress(blob)) == _digest(recon)
        expected[name] = {"encoded": hashlib.sha256(blob).hexdigest(), "decoded": _digest(recon)}

    for threads in (1, 2):
        r = subprocess.run([sys.executable, "-c", CODE_AND_DECODE, str(tmp_path), str(threads)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        report = json.loads(r.stdout.strip().splitlines()[-1])
        assert report.pop("threads") == threads
        assert report == expected, f"{threads} threads"


def _fake_install(directory: Path, name: str, model: torch.nn.Module, modalities: list[str]) -> None:
    install_model(directory, name, "separate", {"modalities": modalities, **TINY}, modalities, TINY_LAMBDAS, model)


def test_perturbed_weights_with_a_faked_hash_are_caught(tiny_env, tmp_path, monkeypatch):
    """A decoder whose weights differ slightly from the encoder's (e.g. another build of the
    model under the same name and a stream whose weights hash was rewritten to match) must
    refuse to write what it decodes. The rewritten header no longer matches the seal of the
    latent CRCs (versions 9-16), so even the synthesis-only change is refused; a version-8
    stream has only the reconstruction CRC, which catches both."""
    blob = mmcodec.load("ir-vi/tiny", quality=2).compress(rgb=smooth_image(96, 96, 3, 7),
                                                          ir=smooth_image(96, 96, 1, 8))
    original = find_model("ir-vi/tiny").load()
    # (An untrained model's latents are mostly zero, so perturb parameters that act regardless.)
    cases = {"synthesis": "codecs.rgb.g_s.6.weight",                  # reconstruction drifts
             "hyper-synthesis": "codecs.ir.latent_codec.h_s.4.bias"}  # entropy decoder desynchronises
    for label, key in cases.items():
        model = find_model("ir-vi/tiny").load()
        model.load_state_dict(original.state_dict())
        with torch.no_grad():
            model.get_parameter(key).add_(0.1 * torch.randn_like(model.get_parameter(key)))
        other = tmp_path / label
        _fake_install(other, "ir-vi/tiny", model, ["rgb", "ir"])
        monkeypatch.setenv("MMCODEC_MODEL_PATH", str(other))
        faked = unpack(blob)
        faked.weights = find_model("ir-vi/tiny").weights_hash  # the stream now claims these weights
        with pytest.raises(BitstreamError, match="latent does not match the encoder's|corrupted payload"):
            mmcodec.decompress(pack(faked))
        for info in faked.modalities:
            info.latent_crc = None                             # as written before latent CRCs
        with pytest.raises(BitstreamError, match="does not match the encoder's reconstruction|corrupted payload"):
            mmcodec.decompress(pack(faked))


def test_only_decoding_also_checks_the_reconstruction(tiny_env):
    codec = mmcodec.load("ir-vi/tiny", quality=1)
    blob = codec.compress(rgb=smooth_image(64, 64, 3, 9), ir=smooth_image(64, 64, 1, 10))
    c = unpack(blob)
    c.modalities[1].recon_crc ^= 1  # the ir hash no longer matches (its latent CRC still does)
    with pytest.raises(BitstreamError, match="decoded ir image"):
        codec.decompress(pack(c), only="ir", strict=True)
    with pytest.warns(mmcodec.errors.ReconstructionMismatchWarning, match="decoded ir image"):
        codec.decompress(pack(c), only="ir")
    assert set(codec.decompress(pack(c), only="rgb", strict=True)) == {"rgb"}
