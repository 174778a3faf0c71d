"""Per-codec lineage in the budget of a separate-coding model.

The codecs of a separate model train together, but per-modality shipping (`compose`) can put
codecs from different runs into one model, and a later run continues all of them. The budget
then keeps, beside the run's own fields, two flat per-codec entries:

- `codec_steps` {modality: training steps that codec has had, over its whole history};
- `codec_budgets` {modality: the budget of the run that last trained that codec}, present for
  codecs that did not come from the run the top-level fields describe. Each entry is a run's
  budget without per-codec entries of its own, so the lineage never nests.

Manifests written before this module named the source budget instead (`"base_budget"`, with the
base model's whole budget nested under that key); the readers below resolve that form too.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

LINEAGE_KEYS = ("codec_steps", "codec_budgets", "base_budget")


def run_budget(budget: dict[str, Any]) -> dict[str, Any]:
    """The fields of the run that produced `budget`, without per-codec lineage."""
    return {k: v for k, v in budget.items() if k not in LINEAGE_KEYS}


def codec_budget(budget: dict[str, Any], modality: str) -> dict[str, Any]:
    """The budget of the run that last trained `modality`'s codec."""
    entry = budget.get("codec_budgets", {}).get(modality)
    if isinstance(entry, dict):
        return entry
    if entry == "base_budget":                       # the older, nested form
        return codec_budget(budget["base_budget"], modality)
    return run_budget(budget)


def codec_steps(budget: dict[str, Any], modality: str) -> int:
    """How many training steps `modality`'s codec has had."""
    steps = budget.get("codec_steps", {})
    if modality in steps:
        return int(steps[modality])
    if budget.get("codec_budgets", {}).get(modality) == "base_budget":
        return codec_steps(budget["base_budget"], modality)
    return int(budget["steps"])


def composed_budget(base: dict[str, Any], donor: dict[str, Any], modalities: Iterable[str],
                    take: Iterable[str], same_pair: bool = True) -> dict[str, Any]:
    """The budget of a model whose codecs of `take` come from `donor` and the rest from `base`.

    Its run fields are the donor's when the donor is the same kind of model (a campaign arm:
    a resumed campaign continues from its step count and CPU-hours); when a codec moves into
    a model of another pair (`same_pair` False: the visible codec of ir-vi/separate into
    rgb-d/hyperprior) they stay those of the run that trained the base's own codecs. Every codec
    trained elsewhere has its budget under `codec_budgets`, and every codec its steps."""
    take = set(take)
    modalities = list(modalities)
    source = {m: donor if m in take else base for m in modalities}
    kept = [m for m in modalities if m not in take]
    out = run_budget(donor) if same_pair or not kept else dict(codec_budget(base, kept[0]))
    out["codec_steps"] = {m: codec_steps(b, m) for m, b in source.items()}
    out["codec_budgets"] = {m: codec_budget(b, m) for m, b in source.items() if codec_budget(b, m) != run_budget(out)}
    if not out["codec_budgets"]:
        del out["codec_budgets"]
    return out


def continued_lineage(start: dict[str, Any] | None, start_step: int, step: int,
                      trained: dict[str, bool]) -> dict[str, Any]:
    """The per-codec entries of a run that continued the model of budget `start` (None: a run
    from scratch, or a start without per-codec history) from `start_step` to `step`, training
    the codecs marked True in `trained`. Empty when every codec simply has the run's steps."""
    history = start is not None and any(k in start for k in ("codec_steps", "codec_budgets"))
    if not history and all(trained.values()):
        return {}
    base = start or {"steps": 0}
    out: dict[str, Any] = {"codec_steps": {
        m: codec_steps(base, m) + (step - start_step if t else 0) for m, t in trained.items()}}
    kept = {m: codec_budget(base, m) for m, t in trained.items() if not t and start is not None}
    if kept:
        out["codec_budgets"] = kept
    return out
