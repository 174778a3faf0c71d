"""Multi-modal video (issue 25): tiny untrained FVC models on synthetic moving sequences made
here; I-frames by the shipped ir-vi/separate. No shared data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmcodec.bitstream import unpack
from mmcodec.bitstream.video_container import unpack_video
from mmcodec.data.synthetic import smooth_image
from mmcodec.errors import BadInputError, BitstreamError
from mmcodec.video.fvc import VideoPairModel
from mmcodec.video.registry import install_video_model

TINY = {"C": 8, "N": 8, "M": 8, "num_rates": 4, "deform_groups": 2, "sa_dim": 8, "heads": 2, "window": 2}
H, W, FRAMES, GOP = 70, 100, 5, 3


@pytest.fixture(scope="module")
def video_models(tmp_path_factory: pytest.TempPathFactory):
    """Tiny video models (seeded random weights) in their own model directory."""
    d = tmp_path_factory.mktemp("video_models")
    for i, arch in enumerate(("separate", "lu2022")):
        torch.manual_seed(i)
        cfg = {"name": f"test-video/{arch}", "arch": arch, "kwargs": TINY, "lambdas": [0.002, 0.004, 0.01, 0.025],
               "default": arch == "separate", "description": "tiny", "iframe_model": "ir-vi/separate"}
        model = VideoPairModel(arch, **TINY)
        with torch.no_grad():   # the zero-initialised residual branches would make every P-frame a copy
            for name, p in model.named_parameters():
                if not name.endswith("quantiles"):
                    p.add_(0.05 * torch.randn_like(p))
        install_video_model(d, cfg, model, {"steps": 0})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMCODEC_MODEL_PATH", str(d))
        yield d


def moving_sequence(frames: int = FRAMES, h: int = H, w: int = W, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """A smooth scene panning 3 px right and 1 px down per frame; infrared = its luminance
    plus a warm blob moving the other way."""
    scene = smooth_image(h + 4 * frames, w + 4 * frames, 3, seed=seed)
    rgb, ir = [], []
    yy, xx = np.mgrid[:h, :w]
    for t in range(frames):
        f = np.ascontiguousarray(scene[t:t + h, 3 * t:3 * t + w])
        blob = 80 * np.exp(-((yy - h / 2) ** 2 + (xx - w + 8 * t + 20) ** 2) / 60.0)
        rgb.append(f)
        ir.append(np.clip(f.mean(2) * 0.7 + blob, 0, 255).astype(np.uint8))
    return {"rgb": rgb, "ir": ir}


@pytest.fixture(scope="module")
def coded(video_models):
    from mmcodec.video.codec import VideoCodec
    out = {}
    seqs = moving_sequence()
    for arch in ("separate", "lu2022"):
        # Every P-frame coded (no skip): these tests are about the learned P-frame path.
        vc = VideoCodec.load(f"test-video/{arch}", quality=2, skip=False)
        blob, recon = vc.encode(seqs, GOP)
        out[arch] = (vc, blob, recon)
    return seqs, out


@pytest.mark.parametrize("arch", ["separate", "lu2022"])
def test_skipped_p_frames_repeat_the_previous_frame_and_decode_exactly(video_models, arch):
    """A static infrared scene beside a moving visible one: repeating the previous decoded
    infrared frame costs no bits and no extra distortion, so the encoder skips every infrared
    P-frame; whatever the visible frames chose, decoding repeats the encoder (for lu2022 the
    visible decoder reads the skipped infrared frames' context), and `--only ir` too."""
    from mmcodec.bitstream.video_container import SKIPPED_RECORD_BYTES, unpack_p_record
    from mmcodec.video.codec import VideoCodec
    seqs = moving_sequence()
    seqs["ir"] = [seqs["ir"][0].copy() for _ in seqs["ir"]]
    vc = VideoCodec.load(f"test-video/{arch}", quality=2)
    blob, recon = vc.encode(seqs, GOP)
    c = unpack_video(blob)
    inter = [t for t in range(FRAMES) if not c.is_intra(t)]
    assert all(unpack_p_record(c.records[t]["ir"], t, "ir")[1] == [] for t in inter)
    assert all(c.sizes[t]["ir"] == SKIPPED_RECORD_BYTES for t in inter)
    assert c.info(len(blob))["skipped_p_frames"]["ir"] == len(inter)
    for t in inter:
        assert np.array_equal(recon["ir"][t], recon["ir"][t - 1])
    decoded = vc.decode(blob)
    for m in ("rgb", "ir"):
        assert all(np.array_equal(a, b) for a, b in zip(decoded[m], recon[m])), m
    assert all(np.array_equal(a, b) for a, b in zip(vc.decode(blob, only="ir")["ir"], recon["ir"]))
    # Without skip the same scene codes every infrared P-frame, at more bytes.
    noskip, _ = VideoCodec.load(f"test-video/{arch}", quality=2, skip=False).encode(seqs, GOP)
    assert unpack_video(noskip).info(len(noskip))["skipped_p_frames"]["ir"] == 0
    assert unpack_video(noskip).info(len(noskip))["stream_bytes"]["ir"] > c.info(len(blob))["stream_bytes"]["ir"]


@pytest.mark.parametrize("arch", ["separate", "lu2022"])
def test_round_trip_is_bit_exact_against_the_encoder(coded, arch):
    seqs, out = coded
    vc, blob, recon = out[arch]
    decoded = vc.decode(blob)
    for m in ("rgb", "ir"):
        assert len(decoded[m]) == FRAMES
        for t in range(FRAMES):
            assert decoded[m][t].shape == seqs[m][t].shape
            assert np.array_equal(decoded[m][t], recon[m][t]), (m, t)
        # the P-frames are decoded from their latents, not copies of the previous frame
        assert all(not np.array_equal(decoded[m][t], decoded[m][t - 1]) for t in (1, 2, 4)), m


def test_gop_boundaries_restart_from_the_image_codec(coded):
    import mmcodec
    from mmcodec.data.images import load_modality
    seqs, out = coded
    vc, blob, recon = out["separate"]
    c = unpack_video(blob)
    assert c.info(len(blob))["frame_types"] == "IPPIP" and c.gop == GOP
    image = mmcodec.load("ir-vi/separate", quality=2)
    for t in (0, 3):            # each I-frame is the image codec's own coding of that frame
        for m in ("rgb", "ir"):
            assert unpack(c.records[t][m]).modalities[0].name == m
        _, rec = image.encode({"rgb": load_modality("rgb", seqs["rgb"][t]), "ir": load_modality("ir", seqs["ir"][t])})
        assert np.array_equal(rec["ir"], recon["ir"][t]) and np.array_equal(rec["rgb"], recon["rgb"][t])
    # the frames between are P records: motion y, z and residual y, z
    from mmcodec.bitstream.video_container import unpack_p_record
    for t in (1, 2, 4):
        for m in ("rgb", "ir"):
            assert len(unpack_p_record(c.records[t][m], t, m)[1]) == 4


def _visible_p_record_offset(blob: bytes, frame: int) -> int:
    """Byte offset of the visible record of `frame` in the file."""
    c = unpack_video(blob)
    total = sum(sum(s.values()) for s in c.sizes)
    pos = len(blob) - total
    for i in range(frame):
        pos += sum(c.sizes[i].values())
    return pos + c.sizes[frame]["ir"]


@pytest.mark.parametrize("arch", ["separate", "lu2022"])
def test_only_ir_does_not_need_the_visible_payload(coded, arch):
    _, out = coded
    vc, blob, recon = out[arch]
    damaged = bytearray(blob)
    for frame in (0, 2):        # an I-frame and a P-frame visible record
        damaged[_visible_p_record_offset(blob, frame) + 7] ^= 0xFF
    with pytest.raises(BitstreamError, match="frame 0 \\(rgb\\)"):
        vc.decode(bytes(damaged))
    ir = vc.decode(bytes(damaged), only="ir")
    assert list(ir) == ["ir"] and all(np.array_equal(a, b) for a, b in zip(ir["ir"], recon["ir"]))
    if arch == "lu2022":        # the joint visible decoder reads the infrared: its records are needed
        assert vc.model.requires("rgb") == {"ir", "rgb"}
    else:
        assert vc.model.requires("rgb") == {"rgb"}


def test_damaged_and_truncated_files_name_the_first_bad_frame(coded):
    _, out = coded
    vc, blob, _ = out["separate"]
    c = unpack_video(blob)
    end_of_frame_2 = len(blob) - sum(sum(s.values()) for s in c.sizes[3:])
    with pytest.raises(BitstreamError, match="truncated.*frame 2"):
        unpack_video(blob[:end_of_frame_2 - 3])
    with pytest.raises(BitstreamError, match="truncated"):
        unpack_video(blob[:20])
    with pytest.raises(BitstreamError, match="trailing"):
        unpack_video(blob + b"\0")
    flipped = bytearray(blob)
    flipped[12] ^= 0x01                  # inside the header
    with pytest.raises(BitstreamError, match="header"):
        unpack_video(bytes(flipped))
    flipped = bytearray(blob)
    flipped[_visible_p_record_offset(blob, 4) - 2] ^= 0x10   # the infrared record of frame 4
    with pytest.raises(BitstreamError, match="frame 4 \\(ir\\)"):
        vc.decode(bytes(flipped), only="ir")
    with pytest.raises(BitstreamError, match="magic"):
        unpack_video(b"\x89MMC" + blob[4:])


def test_frame_sources_folder_and_video_file(tmp_path):
    import imageio_ffmpeg
    from mmcodec.data.frames import read_pair_sequences, read_sequence
    seqs = moving_sequence(frames=3)
    for sub, m in (("vi", "rgb"), ("ir", "ir")):
        (tmp_path / sub).mkdir()
        for t, f in enumerate(seqs[m]):
            Image.fromarray(f).save(tmp_path / sub / f"{t:04d}.png")
    pair = read_pair_sequences(tmp_path / "vi", tmp_path / "ir")
    assert all(np.array_equal(a, b) for a, b in zip(pair["rgb"], seqs["rgb"]))
    # A lossless video file (FFV1 in Matroska) through the bundled ffmpeg reads back exactly.
    video = tmp_path / "ir.mkv"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-framerate", "10", "-i",
                    str(tmp_path / "ir" / "%04d.png"), "-c:v", "ffv1", "-pix_fmt", "gray", str(video)], check=True)
    frames = read_sequence(video, "ir")
    assert len(frames) == 3 and all(np.array_equal(a, b) for a, b in zip(frames, seqs["ir"]))
    with pytest.raises(BadInputError, match="same frame count"):
        read_pair_sequences(tmp_path / "vi", _fewer(tmp_path, seqs["ir"][:2]))
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(BadInputError, match="broken.mp4"):
        read_sequence(tmp_path / "broken.mp4", "rgb")


def _fewer(tmp_path: Path, frames: list[np.ndarray]) -> Path:
    d = tmp_path / "ir_short"
    d.mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(f).save(d / f"{t:04d}.png")
    return d


def _run(*args: str, models: Path) -> subprocess.CompletedProcess:
    """The real command line in a subprocess (once: it costs a torch import)."""
    env = {**os.environ, "MMCODEC_MODEL_PATH": str(models), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mmcodec", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def _main(capsys: pytest.CaptureFixture, *args: object) -> subprocess.CompletedProcess:
    """The CLI entry point in this process (the model path is the fixture's)."""
    from mmcodec.cli import main
    capsys.readouterr()
    rc = main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, captured.out, captured.err)


def test_cli_compress_video_decompress_info(video_models, tmp_path, capsys):
    seqs = moving_sequence(frames=4)
    for sub, m in (("vi", "rgb"), ("ir", "ir")):
        (tmp_path / sub).mkdir()
        for t, f in enumerate(seqs[m]):
            Image.fromarray(f).save(tmp_path / sub / f"f{t:03d}.png")
    mmv = tmp_path / "seq.mmv"
    done = _run("compress-video", "--rgb", tmp_path / "vi", "--ir", tmp_path / "ir", "-o", mmv,
                "--model", "test-video/lu2022", "--quality", "1", "--gop", "2", "--json", models=video_models)
    assert done.returncode == 0, done.stderr
    info = json.loads(_main(capsys, "info", mmv, "--json").stdout)
    size = mmv.stat().st_size
    assert info["frames"] == 4 and info["gop"] == 2 and info["frame_types"] == "IPIP"
    assert info["total_bytes"] == size and info["pair_bpp"] == pytest.approx(8 * size / (4 * H * W))
    assert sum(f["rgb"] + f["ir"] for f in info["bytes_per_frame"]) + info["overhead_bytes"] == size
    out = tmp_path / "out"
    done = _main(capsys, "decompress", mmv, "-o", out, "--only", "ir", "--json")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (out / "ir").iterdir()) == ["0000.png", "0001.png", "0002.png", "0003.png"]
    assert not (out / "vi").exists()
    from mmcodec.video.codec import VideoCodec
    vc = VideoCodec.load("test-video/lu2022")
    expected = vc.decode(mmv.read_bytes(), only="ir")["ir"]
    assert all(np.array_equal(np.array(Image.open(out / "ir" / f"{t:04d}.png")), expected[t]) for t in range(4))
    # mismatched frame counts: one line, exit 2, nothing written
    bad = tmp_path / "bad.mmv"
    (tmp_path / "ir" / "f003.png").unlink()
    done = _main(capsys, "compress-video", "--rgb", tmp_path / "vi", "--ir", tmp_path / "ir", "-o", bad)
    assert done.returncode == 2 and "same frame count" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not bad.exists()
    # a damaged file: exit 2, one line naming the frame, no output folder
    data = bytearray(mmv.read_bytes())
    data[-5] ^= 0xFF
    mmv.write_bytes(bytes(data))
    done = _main(capsys, "decompress", mmv, "-o", tmp_path / "out2", "--json")
    assert done.returncode == 2 and "frame 3 (rgb)" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out2").exists()


def test_paper_preset_builds_and_runs():
    paper = VideoPairModel("lu2022", C=64, N=128, M=128, num_rates=4, deform_groups=8, sa_dim=48, heads=3, window=4)
    cpu = VideoPairModel("lu2022", C=32, N=32, M=48, num_rates=4, deform_groups=4, sa_dim=16, heads=2, window=4)
    n_paper = sum(p.numel() for p in paper.parameters())
    assert n_paper > 3 * sum(p.numel() for p in cpu.parameters())
    x = torch.rand(1, 3, 64, 64)
    ir = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        o_ir = paper.codecs["ir"](ir, [paper.codecs["ir"].features(ir)], ir, torch.tensor([1]))
        from mmcodec.video.fvc import CrossContext
        o = paper.codecs["rgb"](x, [paper.codecs["rgb"].features(x)], x, torch.tensor([1]),
                                CrossContext(o_ir["features"], o_ir["stages"]))
    assert o["x_hat"].shape == x.shape and set(o["likelihoods"]) == {"motion_y", "motion_z", "residual_y",
                                                                     "residual_z"}


def test_video_training_resumes_and_ships(tmp_path, monkeypatch):
    """Two steps, then a resumed third, on synthetic clips written as video files."""
    import imageio_ffmpeg
    from mmcodec.video.codec import VideoCodec
    from mmcodec.video.train import train_video
    data = tmp_path / "data" / "clips"
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    for k in range(2):
        seqs = moving_sequence(frames=6, h=64, w=80, seed=k)
        for sub, m in (("vi", "rgb"), ("ir", "ir")):
            frames_dir = tmp_path / f"{sub}{k}"
            frames_dir.mkdir()
            for t, f in enumerate(seqs[m]):
                Image.fromarray(f).save(frames_dir / f"{t:04d}.png")
            (data / sub).mkdir(parents=True, exist_ok=True)
            subprocess.run([ffmpeg, "-v", "error", "-framerate", "10", "-i", str(frames_dir / "%04d.png"), "-c:v",
                            "ffv1", str(data / sub / f"clip{k}.mkv")], check=True)
    monkeypatch.setenv("MMCODEC_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MMCODEC_MODEL_PATH", str(tmp_path / "models"))
    cfg = {"kind": "video", "name": "test-video/trained", "arch": "lu2022", "kwargs": TINY, "iframe_model": "ir-vi/separate",
           "data": "clips", "max_frames_per_clip": 6, "crop": 64, "batch": 2, "clip_frames": [2, 3], "steps": 2,
           "motion_steps": 1, "lr": 1e-3, "aux_lr": 1e-3, "lambdas": [0.002, 0.004, 0.01, 0.025], "seed": 0,
           "threads": 1, "checkpoint_every": 1, "log_every": 1, "out": str(tmp_path / "run"),
           "cache": str(tmp_path / "cache"), "ledger": str(tmp_path / "ledger.jsonl"), "ship_to": str(tmp_path / "models"),
           "default": False, "description": "test", "max_minutes": None}
    first = train_video(cfg, progress=False)
    assert first["budget"]["steps"] == 2
    resumed = train_video({**cfg, "steps": 3}, resume=True, progress=False)
    assert resumed["budget"]["steps"] == 3
    log = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and log[0]["stage"] == "motion" and log[-1]["stage"] == "rd"
    ledger = [json.loads(l) for l in (tmp_path / "ledger.jsonl").read_text().splitlines()]
    assert [e["steps"] for e in ledger] == [2, 3]
    # a new run from the shipped weights: the shipped steps count into its budget
    from mmcodec.video.registry import find_video_model, load_video_model
    shipped = load_video_model(find_video_model("test-video/trained")).state_dict()
    cont = {**cfg, "name": "test-video/continued", "init_from": "test-video/trained", "steps": 4,
            "out": str(tmp_path / "run2"), "ledger": None}
    from mmcodec.video.train import init_from_shipped
    from mmcodec.video.fvc import VideoPairModel
    probe = VideoPairModel("lu2022", **TINY)
    start = init_from_shipped(probe, cont)
    assert start["steps"] == 3 and start["name"] == "test-video/trained"
    assert all(torch.equal(v, shipped[k]) for k, v in probe.state_dict().items() if k in shipped and "weight" in k)
    result = train_video(cont, progress=False)
    assert result["budget"]["steps"] == 4 and result["budget"]["init_from"]["steps"] == 3
    assert len((tmp_path / "run2" / "log.jsonl").read_text().splitlines()) == 1     # one new step
    with pytest.raises(BadInputError, match="not the config"):
        init_from_shipped(VideoPairModel("separate", **TINY), {**cont, "arch": "separate"})
    vc = VideoCodec.load("test-video/trained", quality=1)
    seqs = moving_sequence(frames=3, h=64, w=64)
    blob, recon = vc.encode(seqs, gop=3)
    assert all(np.array_equal(a, b) for a, b in zip(vc.decode(blob)["rgb"], recon["rgb"]))
