"""Training campaigns: evaluate after each run, append to the ledger, ship only improvements.

A campaign is a sequence of `mmcodec train --resume` runs on the same model. After each run
the exported model is coded for real on
- `validate_split` (cameras not in the training data, e.g. "msrs-subset"), when set: the
  shipped weights are replaced only if the BD-rate against them is < 0 on every modality
  here and at most `select_tolerance` % on `select_split`; a generalisation gate, since a
  model can learn its training cameras rather than images;
- `select_split` (a subset of the *training* pairs): without `validate_split`, decides
  whether the shipped weights are replaced (BD-rate against the shipped model < 0 on every
  modality);
- `eval_split` (a test split): reported in the ledger, with BD-rate against HEVC intra when
  `anchor_results` points at a `mmcodec bench` results.json. Never used to select.

For separate coding (`independent_modalities`) the rule is applied per modality: when only some
modalities pass, only their codecs replace the shipped ones (`mmcodec.train.compose`).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from mmcodec.bench.learned import evaluate_codec
from mmcodec.codec import Codec
from mmcodec.data.pairs import split_records
from mmcodec.files import atomic_output
from mmcodec.models.registry import read_manifest
from mmcodec.train.compose import compose
from mmcodec.train.config import TrainConfig
from mmcodec.train.evaluate import anchor_rows_from_results, append_ledger, bd_rates


def _records(split: str, every: int = 1, limit: int | None = None):
    recs = split_records(split)[::every]
    return recs[:limit] if limit else recs


def after_training(cfg: TrainConfig, manifest: Path, budget: dict[str, Any], progress: bool) -> dict[str, Any]:
    candidate = read_manifest(Path(manifest))
    codec = Codec(candidate)
    # The ship rule judges each codec on its own modality: a grey visible image (TNO pairs of
    # the training subset) is coded by the visible codec here, not routed to the infrared one.
    codec.grey_via_ir = False
    entry: dict[str, Any] = {"model": cfg.name, "run": cfg.out, "steps": budget["steps"],
                             "cpu_hours": budget["cpu_hours"], "budget": budget}
    result: dict[str, Any] = {}
    if cfg.eval_split:
        rows = evaluate_codec(codec, _records(cfg.eval_split, 1, cfg.eval_limit), progress=progress)
        entry["eval_split"], entry["eval"] = cfg.eval_split, rows
        # The anchor curve covers the whole split: a BD-rate against it needs the whole split too.
        anchor = anchor_rows_from_results(Path(cfg.anchor_results), "hevc", cfg.modalities) \
            if cfg.anchor_results and not cfg.eval_limit else None
        if anchor:
            entry["bd_rate_vs_hevc"] = bd_rates(rows, anchor, cfg.modalities)
    if cfg.select_split and cfg.ship_to:
        recs = _records(cfg.select_split, cfg.select_every, cfg.eval_limit)
        new_rows = evaluate_codec(codec, recs, progress=progress)
        # Read the shipped manifest from ship_to itself: that directory need not be on the
        # model search path (a study arm shipping into a scratch copy must still be compared).
        shipped_path = Path(cfg.ship_to) / Path(manifest).name
        shipped = read_manifest(shipped_path) if shipped_path.is_file() else None
        val_vs = None
        if shipped is None:
            better, vs = True, None
        else:
            old_codec = Codec(shipped)
            old_codec.grey_via_ir = False
            old_rows = evaluate_codec(old_codec, recs, progress=progress)
            vs = bd_rates(new_rows, old_rows, cfg.modalities)
            if cfg.validate_split:
                val_recs = _records(cfg.validate_split, 1, cfg.eval_limit)
                val_new = evaluate_codec(codec, val_recs, progress=progress)
                val_vs = bd_rates(val_new, evaluate_codec(old_codec, val_recs, progress=progress), cfg.modalities)
                entry["validate_split"], entry["validate"] = cfg.validate_split, val_new
                entry["bd_rate_vs_shipped_validate"] = val_vs
                anchor = anchor_rows_from_results(Path(cfg.validate_anchor_results), "hevc", cfg.modalities) \
                    if cfg.validate_anchor_results and not cfg.eval_limit else None
                if anchor:
                    entry["bd_rate_vs_hevc_validate"] = bd_rates(val_new, anchor, cfg.modalities)
            better = ship_decision(vs, val_vs, cfg.select_tolerance)
        entry["select_split"], entry["bd_rate_vs_shipped"], entry["shipped"] = cfg.select_split, vs, better
        dest = Path(cfg.ship_to)
        if better:
            dest.mkdir(parents=True, exist_ok=True)
            for suffix in (".safetensors", ".json"):
                src = Path(manifest).with_suffix(suffix)
                with atomic_output(dest / src.name) as tmp:
                    shutil.copyfile(src, tmp)
            entry["shipped_modalities"] = list(cfg.modalities)
        elif shipped is not None and getattr(codec.model, "independent_modalities", False):
            passing = ship_modalities(vs, val_vs, cfg.select_tolerance)
            if passing:
                compose(shipped, candidate, passing, dest,
                        note=f"; {'+'.join(passing)} codec(s) from {cfg.out} ({budget['steps']} steps), shipped per modality")
            entry["shipped_modalities"] = passing
        result["shipped"] = better
        result["shipped_modalities"] = entry.get("shipped_modalities", [])
    if cfg.ledger:
        append_ledger(Path(cfg.ledger), entry)
    result["ledger_entry"] = entry
    return result


def ship_modalities(select_vs: dict[str, float | None], validate_vs: dict[str, float | None] | None,
                    tolerance: float) -> list[str]:
    """The ship rule, per modality. BD-rates (%) against the shipped weights. Without a
    validation split a modality passes if it is better on the training subset. With one: if it
    is better on the validation split (unseen cameras) and no worse than `tolerance` on the
    training subset. A missing BD-rate (no curve overlap) fails."""
    def passes(m: str) -> bool:
        sel = select_vs.get(m)
        if sel is None:
            return False
        if validate_vs is None:
            return sel < 0
        val = validate_vs.get(m)
        return val is not None and val < 0 and sel <= tolerance
    return [m for m in select_vs if passes(m)]


def ship_decision(select_vs: dict[str, float | None], validate_vs: dict[str, float | None] | None,
                  tolerance: float) -> bool:
    """Whether the whole model ships: every modality passes `ship_modalities`."""
    return bool(select_vs) and len(ship_modalities(select_vs, validate_vs, tolerance)) == len(select_vs)


def plot_ledger(entries: list[dict[str, Any]], png: Path, title: str = "") -> None:
    """BD-rate vs HEVC intra (test split) against cumulative CPU-hours, one line per modality."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    mods = sorted({m for e in entries for m in (e.get("bd_rate_vs_hevc") or {})})
    for i, m in enumerate(mods):
        pts = [(e["cpu_hours"], e["bd_rate_vs_hevc"][m]) for e in entries
               if (e.get("bd_rate_vs_hevc") or {}).get(m) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", color=f"C{i}", label=f"{m}, test ({entries[0].get('eval_split', '')})")
        # Runs judged on unseen cameras (issue 21's ship rule) also carry a validation BD-rate.
        val = [(e["cpu_hours"], e["bd_rate_vs_hevc_validate"][m]) for e in entries
               if (e.get("bd_rate_vs_hevc_validate") or {}).get(m) is not None]
        if val:
            ax.plot(*zip(*val), marker="s", ls="--", color=f"C{i}",
                    label=f"{m}, validation ({next(e['validate_split'] for e in entries if 'validate_split' in e)})")
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.axhline(25, color="tab:red", lw=0.8, ls=":", label="+25% goal")
    ax.set_xlabel("cumulative training CPU-hours")
    ax.set_ylabel("BD-rate vs HEVC intra (%)")
    ax.set_title(title or (entries[0]["model"] if entries else ""))
    ax.legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)
