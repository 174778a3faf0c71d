"""Bulk compression: --workers N gives the same files as one worker, --shard splits an archive,
reruns skip finished pairs, and a failing pair stops the run without partial outputs.

The CLI runs in-process (`mmcodec.cli.main`) to spare interpreter start-ups; the pool's
workers are real spawned processes.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import mmcodec
from mmcodec.cli import main
from mmcodec.errors import BadInputError


def _run(capsys, *args) -> tuple[int, dict | None, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and "--json" in args else None), err


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_two_workers_match_one_worker(tiny_env, synthetic_pair_dir, tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    code1, s1, err1 = _run(capsys, "compress", synthetic_pair_dir, "-o", one, "--model", "ir-vi/tiny", "--json")
    code2, s2, err2 = _run(capsys, "compress", synthetic_pair_dir, "-o", two, "--model", "ir-vi/tiny",
                           "--workers", "2", "--json")
    assert code1 == 0 and code2 == 0, err1 + err2
    assert _outputs(one) == _outputs(two)  # byte-identical, and no temp files left behind
    for r in s1["results"] + s2["results"]:
        r.get("refinement", {}).pop("seconds", None)     # a wall time, the one field that may differ
    assert s2["results"] == [{**r, "output": r["output"].replace(str(one), str(two))} for r in s1["results"]]
    assert [r["stem"] for r in s2["results"]] == ["pair0", "pair1", "pair2"]
    for r in s2["results"]:
        images = mmcodec.decompress(Path(r["output"]).read_bytes())
        assert set(images) == {"rgb", "ir"}

    (two / "pair1.mmc").unlink()
    code, again, _ = _run(capsys, "compress", synthetic_pair_dir, "-o", two, "--model", "ir-vi/tiny",
                          "--workers", "2", "--json")
    assert code == 0 and (again["coded"], again["skipped"]) == (1, 2)
    assert _outputs(one) == _outputs(two)


def test_shards_partition_the_archive(tiny_env, synthetic_pair_dir, tmp_path, capsys):
    out = tmp_path / "out"
    coded = []
    for i in range(2):
        code, summary, err = _run(capsys, "compress", synthetic_pair_dir, "-o", out, "--model", "ir-vi/tiny",
                                  "--shard", f"{i}/2", "--json")
        assert code == 0, err
        coded.append({x["stem"] for x in summary["results"]})
    assert coded[0].isdisjoint(coded[1]) and coded[0] | coded[1] == {"pair0", "pair1", "pair2"}
    assert sorted(p.name for p in out.iterdir()) == ["pair0.mmc", "pair1.mmc", "pair2.mmc"]
    for bad in ("2/2", "a/b", "1"):
        code, _, err = _run(capsys, "compress", synthetic_pair_dir, "-o", out, "--shard", bad)
        assert code == 2 and "--shard" in err


def test_first_failing_pair_stops_the_pool_without_partial_file(tiny_env, synthetic_pair_dir, tmp_path):
    from mmcodec.parallel import compress_parallel
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    jobs = [(p.stem, {"rgb": p, "ir": synthetic_pair_dir / "ir" / p.name}, tmp_path / "out" / f"{p.stem}.mmc")
            for p in sorted((synthetic_pair_dir / "vi").iterdir())]
    jobs.insert(1, ("broken", {"rgb": bad, "ir": bad}, tmp_path / "out" / "broken.mmc"))
    with pytest.raises(BadInputError, match="broken.png"):
        compress_parallel("ir-vi/tiny", 1, jobs, workers=2, progress=False)
    assert not (tmp_path / "out" / "broken.mmc").exists()
    assert not list((tmp_path / "out").glob(".*"))  # no temp files
