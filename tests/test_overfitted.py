"""Overfitted codec (issue 26): real streams, exact decode, conditioning, damaged streams."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmcodec.errors import BitstreamError
from mmcodec.overfitted import OverfitConfig, decode, fit_and_encode
from mmcodec.overfitted.coding import cdf_tables, decode_weights, encode_weights, quantise_weights
from mmcodec.overfitted.model import build_arm, build_synth


def _pair(h: int = 36, w: int = 52) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(xx / 6.0) * np.cos(yy / 5.0)
    vis = np.stack([base, base * 0.8 + 20, 255 - base], -1) + rng.normal(0, 4, (h, w, 3))
    ir = 255 - base + rng.normal(0, 4, (h, w))       # shares the structure of the visible image
    return np.clip(vis, 0, 255).astype(np.uint8), np.clip(ir, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def coded() -> dict:
    torch.set_num_threads(1)
    vis, ir = _pair()
    e_vis = fit_and_encode(vis, 0.01, 60, OverfitConfig(levels=4, out_channels=3), lr=0.03)
    vis_dec = decode(e_vis.stream)
    e_ir = fit_and_encode(ir, 0.01, 25, OverfitConfig(levels=4, out_channels=1, cond_channels=1), cond_image=vis_dec)
    return {"vis": vis, "ir": ir, "e_vis": e_vis, "vis_dec": vis_dec, "e_ir": e_ir}


def test_round_trip_is_the_encoders_reconstruction(coded: dict) -> None:
    e = coded["e_vis"]
    assert np.array_equal(coded["vis_dec"], e.recon)
    assert coded["vis_dec"].shape == coded["vis"].shape and coded["vis_dec"].dtype == np.uint8
    # the fit learnt something: better than a flat grey image
    flat = np.mean((coded["vis"].astype(float) - 128) ** 2)
    assert np.mean((e.recon.astype(float) - coded["vis"]) ** 2) < flat


def test_conditioned_round_trip(coded: dict) -> None:
    e = coded["e_ir"]
    assert np.array_equal(decode(e.stream, coded["vis_dec"]), e.recon)
    with pytest.raises(BitstreamError):
        decode(e.stream)            # the condition is part of the decoder's input


def test_fresh_process_decode_is_identical(coded: dict, tmp_path: Path) -> None:
    np.save(tmp_path / "cond.npy", coded["vis_dec"])
    (tmp_path / "vis.bin").write_bytes(coded["e_vis"].stream)
    (tmp_path / "ir.bin").write_bytes(coded["e_ir"].stream)
    script = (
        "import sys, numpy as np, torch\n"
        "torch.set_num_threads(2)\n"          # another thread count than the encoder's
        "from mmcodec.overfitted import decode\n"
        "d = sys.argv[1]\n"
        "v = decode(open(d + '/vis.bin', 'rb').read())\n"
        "i = decode(open(d + '/ir.bin', 'rb').read(), np.load(d + '/cond.npy'))\n"
        "np.save(d + '/v.npy', v); np.save(d + '/i.npy', i)\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=60)
    assert np.array_equal(np.load(tmp_path / "v.npy"), coded["e_vis"].recon)
    assert np.array_equal(np.load(tmp_path / "i.npy"), coded["e_ir"].recon)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_stream_is_a_bitstream_error(coded: dict, damage: str) -> None:
    s = bytearray(coded["e_vis"].stream)
    if damage == "truncate":
        s = s[: len(s) // 2]
    elif damage == "flip":
        s[len(s) // 2] ^= 0x10
    else:
        s = bytearray()
    with pytest.raises(BitstreamError):
        decode(bytes(s))


def test_weight_code_round_trip() -> None:
    cfg = OverfitConfig(levels=3, out_channels=1)
    arm, synth = build_arm(cfg), build_synth(cfg)
    quantise_weights(arm, synth, 7)
    data = encode_weights(arm, synth, 7)
    arm2, synth2 = build_arm(cfg), build_synth(cfg)
    decode_weights(data, arm2, synth2, 7)
    for a, b in zip(list(arm.parameters()) + list(synth.parameters()), list(arm2.parameters()) + list(synth2.parameters())):
        assert torch.equal(a, b)


def test_cdf_tables_are_valid() -> None:
    cdfs, lengths, offsets = cdf_tables()
    for cdf, n in zip(cdfs, lengths):
        assert len(cdf) == n and cdf[0] == 0 and cdf[-1] == 1 << 16
        assert all(b > a for a, b in zip(cdf, cdf[1:]))   # every symbol (escape included) codable
