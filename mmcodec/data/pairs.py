"""Finding aligned pairs on disk: `vi/`+`ir/` or `rgb/`+`depth/` folders sharing file stems."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from mmcodec.data.images import IMAGE_SUFFIXES
from mmcodec.errors import BadInputError

# Folder names on disk -> modality names used by the models.
LAYOUTS = {"ir-vi": {"rgb": "vi", "ir": "ir"}, "rgb-d": {"rgb": "rgb", "depth": "depth"}}


def data_root() -> Path:
    """Where the shared datasets live: $MMCODEC_DATA, else ../shared/data beside the project."""
    env = os.environ.get("MMCODEC_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


@dataclass(frozen=True)
class PairRecord:
    stem: str
    kind: str                  # "ir-vi" or "rgb-d"
    paths: dict[str, Path]     # modality name -> file


def detect_kind(folder: Path) -> str:
    for kind, layout in LAYOUTS.items():
        if all((folder / sub).is_dir() for sub in layout.values()):
            return kind
    raise BadInputError(f"no pairs in {folder}: expected subfolders vi/+ir/ or rgb/+depth/")


def _images_by_stem(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            out.setdefault(p.stem, p)
    return out


def find_pairs(folder: str | os.PathLike, split: str | os.PathLike | None = None,
               strict: bool = True) -> list[PairRecord]:
    """All pairs in `folder`, optionally restricted to the stems listed in `split`.

    With strict=True a stem present in only one modality folder is an error (naming it);
    otherwise such stems are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"not a directory: {folder}")
    kind = detect_kind(folder)
    per_mod = {mod: _images_by_stem(folder / sub) for mod, sub in LAYOUTS[kind].items()}
    stems_sets = [set(v) for v in per_mod.values()]
    common = set.intersection(*stems_sets)
    unmatched = sorted(set.union(*stems_sets) - common)
    if split is not None:
        wanted = read_split(split)
        missing = [s for s in wanted if s not in common]
        if missing:
            raise BadInputError(f"split {split} names {len(missing)} stems without a pair, e.g. {missing[0]}")
        stems = wanted
    else:
        if unmatched and strict:
            raise BadInputError(f"unmatched stems in {folder}: {', '.join(unmatched[:3])}"
                                + (" ..." if len(unmatched) > 3 else "") + " (each needs a file in both folders)")
        stems = sorted(common)
    if not stems:
        raise BadInputError(f"no pairs found in {folder}")
    return [PairRecord(s, kind, {m: per_mod[m][s] for m in per_mod}) for s in stems]


def read_split(path: str | os.PathLike) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"split file not found: {path}")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def tno_groups(root: Path, groups: set[str]) -> list[str]:
    """Stems of the TNO pairs whose group is in `groups` (from tno_full/pairs.csv)."""
    with open(root / "pairs.csv", newline="") as fh:
        return [row["id"] for row in csv.DictReader(fh) if row["group"] in groups]


TNO_TRAIN_GROUPS = {"seq_nato_camp", "seq_tree", "seq_duine"}
# Pairs of the TNO test groups that no ir-vi codec can take: "tank"'s infrared file is a colour
# (3-channel, unequal channels) image, which every codec refuses as infrared.
TNO_TEST_EXCLUDED = {"tank"}


def standard_split(name: str, root: Path | None = None) -> list[PairRecord]:
    """Named splits of ../shared/data used for training and benchmarks."""
    root = data_root() if root is None else root
    rs, tno = root / "ir_vi" / "roadscene", root / "ir_vi" / "tno_full"
    rgbdd = root / "rgb_depth" / "rgbdd"
    if name == "ir-vi-train":
        recs = find_pairs(rs, rs / "split_train_rest171.txt")
        keep = set(tno_groups(tno, TNO_TRAIN_GROUPS))
        return recs + [r for r in find_pairs(tno, strict=False) if r.stem in keep]
    if name == "roadscene-test":
        return find_pairs(rs, rs / "split_test_cddfuse50.txt")
    if name == "msrs-subset":
        return find_pairs(root / "ir_vi" / "msrs_subset")
    if name == "tno-test":
        import csv as _csv
        with open(tno / "pairs.csv", newline="") as fh:
            keep = {r["id"] for r in _csv.DictReader(fh)
                    if r["group"] == "athena" or r["group"].startswith("single_")}
        return [r for r in find_pairs(tno, strict=False) if r.stem in keep and r.stem not in TNO_TEST_EXCLUDED]
    if name == "rgbdd-train":
        return find_pairs(rgbdd, rgbdd / "split_train.txt")
    if name == "rgbdd-test":
        return find_pairs(rgbdd, rgbdd / "split_test.txt")
    if name == "rgbd-unseen":   # Kinect cameras not in the training data: validation only
        return (find_pairs(root / "rgb_depth" / "nyu_samples", strict=False)
                + find_pairs(root / "rgb_depth" / "open3d_testdata" / "redwood", strict=False))
    raise BadInputError(f"unknown split {name!r}")


SPLITS = ("ir-vi-train", "roadscene-test", "msrs-subset", "tno-test", "rgbdd-train", "rgbdd-test", "rgbd-unseen")


def split_records(split: str) -> list[PairRecord]:
    """The pairs of `split`: a named split (SPLITS) or a folder of pairs, whose unpaired
    files are skipped (training and evaluation take what is there)."""
    if split in SPLITS:
        return standard_split(split)
    return find_pairs(split, strict=False)
