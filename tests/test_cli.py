"""The real `mmcodec` command in a subprocess: commands, --json, folder mode, exit codes."""
import json
import os

import numpy as np
from PIL import Image

from conftest import smooth_image


def test_models_json_lists_names_modalities_qualities(cli):
    r = cli("models", "--json")
    assert r.returncode == 0, r.stderr
    models = {m["name"]: m for m in json.loads(r.stdout)}
    assert models["ir-vi/tiny"]["modalities"] == ["rgb", "ir"]
    assert models["ir-vi/tiny"]["qualities"] == [1, 2]


def test_a_malformed_manifest_is_reported_not_hidden(cli, tiny_model_dir, synthetic_pair_dir, tmp_path, capsys,
                                                      monkeypatch) -> None:
    """A broken manifest on the model path: `mmcodec models` still lists the good models and
    warns in one line naming the file and the reason; asking for that model is a one-line
    error (exit 2)."""
    from mmcodec.cli import main
    broken = tmp_path / "models"
    broken.mkdir()
    (broken / "ir-vi__broken.json").write_text('{"name": "ir-vi/broken", "arch": ')
    (broken / "ir-vi__broken.safetensors").write_bytes(b"")
    (broken / "ir-vi__nolambdas.json").write_text('{"name": "ir-vi/nolambdas", "arch": "separate", '
                                                  '"modalities": ["rgb", "ir"]}')
    monkeypatch.setenv("MMCODEC_MODEL_PATH", f"{tiny_model_dir}{os.pathsep}{broken}")
    assert main(["models", "--json"]) == 0
    out, err = capsys.readouterr()
    assert {m["name"] for m in json.loads(out)} >= {"ir-vi/tiny", "rgb-d/tiny"}
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("mmcodec: warning: skipped malformed model manifest ")
                                   for line in lines), err
    assert str(broken / "ir-vi__broken.json") in lines[0] and "not valid JSON" in lines[0]
    assert str(broken / "ir-vi__nolambdas.json") in lines[1] and "missing 'lambdas'" in lines[1]
    vi, ir = synthetic_pair_dir / "vi" / "pair0.png", synthetic_pair_dir / "ir" / "pair0.png"
    code = main(["compress", "--rgb", str(vi), "--ir", str(ir), "-o", str(tmp_path / "x.mmc"), "--model", "ir-vi/broken"])
    err = capsys.readouterr().err  # the warnings were given once per process, above
    assert code == 2 and err.startswith("mmcodec: error: malformed model manifest ") \
        and "ir-vi__broken.json: not valid JSON" in err and err.count("\n") == 1, err
    # A fresh process: the warning that explains it, then the one-line error.
    r = cli("compress", "--rgb", vi, "--ir", ir, "-o", tmp_path / "y.mmc", "--model", "ir-vi/broken",
            env={"MMCODEC_MODEL_PATH": str(broken)})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 3 and "ir-vi__broken.json: not valid JSON" in lines[0], r.stderr
    assert lines[2].startswith("mmcodec: error: malformed model manifest "), r.stderr


def test_compress_info_decompress_pair(cli, synthetic_pair_dir, tmp_path):
    vi, ir = synthetic_pair_dir / "vi" / "pair2.png", synthetic_pair_dir / "ir" / "pair2.png"
    out = tmp_path / "pair.mmc"
    r = cli("compress", "--rgb", vi, "--ir", ir, "-o", out, "--model", "ir-vi/tiny", "--quality", "1", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["bytes"] == out.stat().st_size
    r = cli("info", out, "--json")
    info = json.loads(r.stdout)
    assert info["total_bytes"] == out.stat().st_size and info["quality"] == 1
    assert abs(info["pair_bpp"] - 8 * out.stat().st_size / (70 * 130)) < 1e-9
    assert {m["name"]: (m["width"], m["height"]) for m in info["modalities"]} == {"rgb": (130, 70), "ir": (130, 70)}
    r = cli("decompress", out, "-o", tmp_path / "dec")
    assert r.returncode == 0, r.stderr
    rgb = np.asarray(Image.open(tmp_path / "dec" / "vi" / "pair.png"))
    ir_img = Image.open(tmp_path / "dec" / "ir" / "pair.png")
    assert rgb.shape == (70, 130, 3) and ir_img.mode == "L"
    r = cli("decompress", out, "-o", tmp_path / "only", "--only", "ir", "--json")
    assert json.loads(r.stdout)["written"] == [str(tmp_path / "only" / "ir" / "pair.png")]


def test_folder_mode_codes_all_and_skips_done(cli, synthetic_pair_dir, tmp_path):
    out = tmp_path / "out"
    r = cli("compress", synthetic_pair_dir, "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["coded"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["pair0.mmc", "pair1.mmc", "pair2.mmc"]
    (out / "pair1.mmc").unlink()
    r = cli("compress", synthetic_pair_dir, "-o", out, "--json")
    res = json.loads(r.stdout)
    assert (res["coded"], res["skipped"]) == (1, 2)
    r = cli("decompress", out, "-o", tmp_path / "dec", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)["written"]) == 6


def test_sixteen_bit_depth_decodes_to_16bit_png(cli, tmp_path):
    rgb, depth = tmp_path / "rgb.png", tmp_path / "depth.png"
    Image.fromarray(smooth_image(64, 96, 3, 1)).save(rgb)
    d = smooth_image(64, 96, 1, 2, dtype=np.uint16)
    Image.fromarray(d).save(depth)
    r = cli("compress", "--rgb", rgb, "--depth", depth, "-o", tmp_path / "x.mmc")
    assert r.returncode == 0, r.stderr
    r = cli("decompress", tmp_path / "x.mmc", "-o", tmp_path / "dec")
    assert r.returncode == 0, r.stderr
    back = np.asarray(Image.open(tmp_path / "dec" / "depth" / "x.png"))
    assert back.dtype == np.uint16 and back.shape == (64, 96)


def test_bad_inputs_exit_2_with_one_line(cli, synthetic_pair_dir, tmp_path):
    vi = synthetic_pair_dir / "vi" / "pair0.png"
    cases = [
        (("compress", "--rgb", tmp_path / "nope.png", "--ir", vi, "-o", tmp_path / "a.mmc"), "file not found"),
        (("compress", "--rgb", vi, "--ir", synthetic_pair_dir / "ir" / "pair1.png", "-o", tmp_path / "b.mmc"),
         "pair sizes differ"),
        (("decompress", vi, "-o", tmp_path / "d"), "bad magic"),
        (("compress", "--rgb", vi, "--ir", vi, "-o", tmp_path / "c.mmc"), "must have one channel"),
        (("compress", "--rgb", vi, "--ir", synthetic_pair_dir / "ir" / "pair0.png", "-o", tmp_path / "e.mmc",
          "--model", "ir-vi/nonexistent"), "not installed"),
        (("compress", "--rgb", vi, "--ir", synthetic_pair_dir / "ir" / "pair0.png", "-o", tmp_path / "f.mmc",
          "--quality", "9"), "quality 9"),
    ]
    for args, message in cases:
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr
    assert not any(p.suffix == ".mmc" or ".tmp" in p.name for p in tmp_path.iterdir())


def test_bad_training_configs_exit_2_with_one_line(cli, synthetic_pair_dir, tmp_path, capsys) -> None:
    """Unknown key, wrong type, missing file, bad value: the user's mistake (exit 2), never an
    internal error. The cases run in-process; one runs as the real command."""
    from mmcodec.cli import main

    def config(**settings) -> str:
        path = tmp_path / f"train{len(list(tmp_path.glob('train*.json')))}.json"
        path.write_text(json.dumps({"train_split": str(synthetic_pair_dir), "out": str(tmp_path / "run"),
                                    "steps": 2, **settings}))
        return str(path)
    cases = [
        (["--config", config(stepz=5)], "unknown config keys"),
        (["--config", config(steps="100")], "steps must be an integer, got '100'"),
        (["--config", config(lambdas=0.01)], "lambdas must be a list of numbers"),
        (["--config", str(tmp_path / "missing.json")], "config file not found"),
        (["--config", config(init_from=str(tmp_path / "missing.pt"))], "init_from: file not found"),
        (["--config", config(batch=0)], "batch must be at least 1"),
        (["--config", config(modalities=["rgb", "thermal"])], "modalities must be distinct names"),
        (["--config", config(kwargs={"modalities": ["rgb", "ir"], "N": 8, "bogus": 1})], "do not build a separate"),
        (["--config", config(), "threads=0"], "threads must be at least 1"),
    ]
    for args, message in cases:
        code = main(["train", *args])
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        errors = [line for line in err.splitlines() if line.startswith("mmcodec:")]  # after any warning
        assert len(errors) == 1 and errors[0].startswith("mmcodec: error: ") and message in errors[0], err
    (tmp_path / "list.json").write_text("[1, 2]")
    r = cli("train", "--config", tmp_path / "list.json")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"mmcodec: error: config {tmp_path / 'list.json'} must be a JSON object of settings, got list"], r.stderr


def test_config_overrides_of_optional_fields_get_their_types() -> None:
    from mmcodec.train.config import load_config

    cfg = load_config(None, ["eval_limit=3", "budget_cpu_minutes=2.5", "init_from=runs/x/checkpoint.pt",
                             "eval_split=none"])
    assert cfg.eval_limit == 3 and isinstance(cfg.eval_limit, int)
    assert cfg.budget_cpu_minutes == 2.5
    assert cfg.init_from == "runs/x/checkpoint.pt"
    assert cfg.eval_split is None


def test_config_override_null_resets_an_optional_field_the_file_sets(tmp_path) -> None:
    import json

    from mmcodec.train.config import load_config

    path = tmp_path / "c.json"
    path.write_text(json.dumps({"eval_split": "roadscene-test", "ship_to": "mmcodec/weights"}))
    cfg = load_config(str(path), ["eval_split=null", "ship_to=none"])
    assert cfg.eval_split is None and cfg.ship_to is None


def test_ledger_versus_picks_the_reference_entry_by_steps_or_model(cli, tmp_path) -> None:
    def entry(model: str, steps: int, gain: float) -> str:
        rows = [{"quality": q, "bpp_ir": b, "psnr_ir": p + gain}
                for q, (b, p) in enumerate([(0.1, 30.0), (0.2, 32.0), (0.4, 34.0), (0.8, 36.0)], 1)]
        return json.dumps({"date": "2026-11-22T00:00:00+00:00", "model": model, "steps": steps,
                           "cpu_hours": 0.1, "eval": rows})
    ours = tmp_path / "ours.jsonl"
    ours.write_text(entry("ours", 100, 0.0) + "\n")
    refs = tmp_path / "refs.jsonl"
    refs.write_text("\n".join([entry("ref-a", 100, 1.0), entry("ref-b", 100, -1.0), entry("ref-c", 200, 0.0)]) + "\n")
    by_model = cli("ledger", ours, "--versus", f"{refs}@ref-a")
    assert by_model.returncode == 0, by_model.stderr
    assert "ours vs ref-a: ir +" in by_model.stdout      # the reference is 1 dB better
    by_steps = cli("ledger", ours, "--versus", f"{refs}@100")
    assert "ours vs ref-b: ir -" in by_steps.stdout      # the last entry at 100 steps, 1 dB worse
    assert "ours vs ref-c: ir +0.0%" in cli("ledger", ours, "--versus", str(refs)).stdout
    missing = cli("ledger", ours, "--versus", f"{refs}@nobody")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_closed_pipe_is_a_quiet_exit(tiny_model_dir):
    """`mmcodec models | head -1`: the reader closes early; no 'internal error' line."""
    import os as _os
    import subprocess as _sp
    import sys as _sys
    env = {**_os.environ, "MMCODEC_MODEL_PATH": str(tiny_model_dir)}
    proc = _sp.Popen([_sys.executable, "-m", "mmcodec", "models"], stdout=_sp.PIPE, stderr=_sp.PIPE, env=env)
    proc.stdout.close()                     # the reader is gone before anything is written
    _, err = proc.communicate(timeout=120)
    assert b"internal error" not in err and b"Traceback" not in err
    assert proc.returncode == 0
