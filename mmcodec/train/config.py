"""Training configuration: a JSON file plus `key=value` overrides from the command line.

`joint_objective` (Lu et al. CVPR 2022, optional joint fine-tuning): `{"weight": w}` (w = 5
in the paper, the default when "weight" is left out) replaces the RD loss by

    L = L_v + w * |L_i - L_i*|

with L_v = R_v + lambda*D_v the reference (visible) modality's loss, L_i the current
(infrared) modality's loss (R with side information), and L_i* the current modality's loss
under a frozen copy of the model as it was at the start of this run (after `init_from`;
kept in the checkpoint, so a resumed run compares with the same copy). The reference codec
trains for itself while the infrared loss is held near its pretrained value. Only for
models with a reference/current split (lu2022) whose reference codec is not frozen.
L_i* is computed like L_i, for a like-for-like difference: a training-mode forward of the
frozen copy (additive quantisation noise for the rates) under no_grad, on the same batch and
rates with the same noise samples (the random state is replayed), so L_i - L_i* measures
only how the weights moved. Losses are batch means; the log gets their components.

`distortion` picks D per modality in R + lambda*D: `{}` (default) is 255^2*MSE for every
modality; `{"depth": "thesis"}` uses the RGB-D thesis depth loss THESIS_SCALE*(0.1*L1 +
gradient L1 + (1 - MS-SSIM)) on the normalised depth, holes left out of the L1 terms
(mmcodec.train.loss; THESIS_SCALE = 640 keeps a lambda's RD slope about where MSE puts it).
Values: "mse" | "thesis" ("thesis" for depth only). The log still shows PSNR and bpp;
budget.json records the distortion of every modality.

`darken` (`{"rgb": [p, g]}` or `[p, g, j]`) is a low-light augmentation: with probability p a
crop of that modality is multiplied by a gain drawn log-uniformly from [g, 1], and with j each
channel by its own extra factor exp(U(-j, j)), a colour cast (mmcodec.data.crops).

`single_images` (`{"rgb": {"natural/bsds400/train": 0.3}, "ir": {"thermal/hituav300": 0.3}}`)
mixes folders of single images into one modality's crops: each crop comes from that folder
with that probability, from the pairs otherwise (folders relative to the data root; a folder of
videos gives every 8th frame of each, `mmcodec.data.crops.VIDEO_FRAME_STRIDE`; a named training
split, `mmcodec.data.crops.TRAINING_SPLITS`, gives its pairs' images of that modality). Only for
models that code each modality on its own (separate coding): the crops of a sample are then
not aligned.

`downsample` (`{"ir": 2}`) makes 2:1 training data from aligned same-size pairs, the way Lu et
al. made theirs (visible resized to 1280x1024 against 640x512 infrared): that modality's images
are area-averaged f x f as they are loaded (a trailing odd row or column dropped; depth holes
are averaged in like any value), so the visible image has twice the infrared resolution.
Factors are integers 2 to 4 (2 for Lu2022 `ratio=2`); the resolutions they leave must be the
model's `size_ratio` (lowest resolution = 1), checked before any work. Without it the pairs
must already have the model's geometry (each side r times the base modality's, ±(r - 1)
pixels), or loading names the pair that does not. For such models `crop` (and crop_schedule's
sizes) is the side of the lowest-resolution modality's crops; a modality of ratio r gets the
aligned crop r times that side, which must be a multiple of its padding multiple (e.g. a 2:1
Lu2022: crop 64 = infrared 64 + visible 128). The post-training evaluation codes the split's
pairs as they are on disk, so a `downsample` that changes the pair geometry cannot be combined
with eval_split, select_split or validate_split.

Ship rule (mmcodec.train.campaign): with `validate_split` (cameras not in the training data,
e.g. "msrs-subset"), new weights ship only if their BD-rate against the shipped weights is
below 0 on every modality of the validation split and at most `select_tolerance` percent on
`select_split` (the training subset); without it, below 0 on `select_split`.
"""
from __future__ import annotations

import json
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mmcodec.distortion import DISTORTIONS
from mmcodec.errors import BadInputError
from mmcodec.modalities import CHANNELS

THESIS_MODALITIES = ("depth",)
JOINT_OBJECTIVE_WEIGHT = 5.0   # w in Lu et al.'s L_v + w|L_i - L_i*|
SCHEDULES = ("cosine", "constant")
_DEVICE = re.compile(r"(cpu|cuda|mps|xpu)(:\d+)?")
# Keys whose shape `validate` checks itself, with a message that shows the expected form.
_STRUCTURED = ("joint_objective", "crop_schedule", "darken", "single_images", "distortion", "downsample")
DOWNSAMPLE_FACTORS = (2, 3, 4)   # `downsample`: area-average factors a modality may take


@dataclass
class TrainConfig:
    name: str = "ir-vi/separate"                 # installed-model name to produce
    arch: str = "separate"
    kwargs: dict[str, Any] = field(default_factory=lambda: {"modalities": ["rgb", "ir"], "N": 64, "M": 96,
                                                            "num_rates": 4})
    modalities: list[str] = field(default_factory=lambda: ["rgb", "ir"])
    train_split: str = "ir-vi-train"             # a named split (mmcodec.data.pairs.SPLITS) or a folder
    lambdas: list[float] = field(default_factory=lambda: [0.0018, 0.0043, 0.0104, 0.025])
    modality_weight: dict[str, float] = field(default_factory=dict)  # per-modality lambda factor
    steps: int = 2000
    batch: int = 8
    crop: int = 128
    # Defaults = the recipe study's winner (BENCHMARKS.md, "Recipe study"): lr 2e-3, warm-up +
    # cosine, 64-px crops for the first 1500 steps (4x cheaper steps) then 128 px.
    lr: float = 2e-3
    lr_min_factor: float = 0.05                  # cosine decay to lr * this at `steps`
    warmup: int = 200
    schedule: str = "cosine"                     # "cosine" or "constant" (after warm-up)
    budget_cpu_minutes: float | None = None      # stop after this much process CPU time (recipe study)
    crop_schedule: list[list[int]] = field(default_factory=lambda: [[0, 64], [1500, 128]])  # [[step, crop(, batch)], ...]
    aux_lr: float = 1e-3
    clip: float = 1.0
    # Speed options (recipe study arms i and j, BENCHMARKS.md): "bf16" runs the forward pass
    # under CPU/CUDA bfloat16 autocast (the loss is computed in float32); `compile` wraps the
    # model's forward in torch.compile. On a CPU without native bfloat16 (no AVX512-BF16/AMX)
    # "bf16" falls back to float32, since emulated bf16 is several times slower there.
    autocast: str | None = None
    compile: bool = False
    checkpoint_every: int = 250
    log_every: int = 25
    threads: int = 2
    seed: int = 0
    device: str = "cpu"
    init_from: str | None = None                 # installed model name or .safetensors/.pt path
    init_map: dict[str, str] = field(default_factory=dict)   # key prefix renames for warm starts
    freeze: list[str] = field(default_factory=list)          # parameter-name prefixes kept fixed
    # Rate indices to sample (default: all). With everything but the gain units frozen, training
    # [4, 5] of a 6-point ladder fits new rows and leaves the old rows' streams as they were.
    train_rates: list[int] | None = None
    stage: str = "joint"                         # passed to model.stage_parameters
    joint_objective: dict[str, float] | None = None  # {"weight": 5.0}: Lu et al.'s L_v + w|L_i - L_i*|
    distortion: dict[str, str] = field(default_factory=dict)  # {"depth": "thesis"}; default "mse"
    darken: dict[str, list[float]] = field(default_factory=dict)  # {"rgb": [prob, min_gain(, jitter)]}
    single_images: dict[str, dict[str, float]] = field(default_factory=dict)  # {"rgb": {folder: weight}}
    downsample: dict[str, int] = field(default_factory=dict)  # {"ir": 2}: 2:1 pairs from same-size ones
    out: str = "runs/ir-vi-separate"
    default: bool = False                        # mark the exported model as its pair's default
    # After training: real-bitstream evaluation, a ledger row, and (optionally) shipping.
    eval_split: str | None = None                # e.g. "roadscene-test": reported in the ledger
    select_split: str | None = None              # e.g. "ir-vi-train": decides shipping (never a test split)
    select_every: int = 10                       # use every n-th pair of select_split
    validate_split: str | None = None            # unseen cameras, e.g. "msrs-subset": must improve to ship
    validate_anchor_results: str | None = None   # bench results holding validate_split's HEVC curve
    select_tolerance: float = 1.0                # with validate_split: max BD-rate % on select_split
    eval_limit: int | None = None                # evaluate on the first n pairs only (quick runs)
    ledger: str | None = None                    # JSONL file appended with one row per run
    anchor_results: str | None = None            # bench results.json holding the HEVC curve
    ship_to: str | None = None                   # model dir to copy the weights to if they improved
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Refuse malformed option values with a one-line BadInputError (the model-dependent
        checks of `joint_objective` are made by the trainer once the model is built)."""
        hints = typing.get_type_hints(TrainConfig)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in _STRUCTURED and not _matches(value, hints[f.name]):
                raise BadInputError(f"{f.name} must be {_describe(hints[f.name])}, got {value!r}")
        self._validate_values()
    def _validate_values(self) -> None:
        # Each check names the key: the types are right (validate), the values may not be.
        positive_ints = ("steps", "batch", "crop", "checkpoint_every", "log_every", "threads", "select_every")
        for key in positive_ints:
            if getattr(self, key) < 1:
                raise BadInputError(f"{key} must be at least 1, got {getattr(self, key)!r}")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise BadInputError(f"eval_limit must be at least 1 (or null), got {self.eval_limit!r}")
        if self.warmup < 0:
            raise BadInputError(f"warmup must be at least 0, got {self.warmup!r}")
        for key in ("lr", "aux_lr"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) > 0):
                raise BadInputError(f"{key} must be a positive number, got {getattr(self, key)!r}")
        if not 0 <= self.lr_min_factor <= 1:
            raise BadInputError(f"lr_min_factor must be in 0..1, got {self.lr_min_factor!r}")
        if self.budget_cpu_minutes is not None and not self.budget_cpu_minutes > 0:
            raise BadInputError(f"budget_cpu_minutes must be positive (or null), got {self.budget_cpu_minutes!r}")
        if self.schedule not in SCHEDULES:
            raise BadInputError(f"schedule must be {' or '.join(SCHEDULES)}, got {self.schedule!r}")
        if not _DEVICE.fullmatch(self.device):
            raise BadInputError(f"device must be cpu, cuda, cuda:N, mps or xpu, got {self.device!r}")
        if not self.name:
            raise BadInputError("name must not be empty")
        if not self.lambdas or not all(math.isfinite(v) and v > 0 for v in self.lambdas):
            raise BadInputError(f"lambdas must be a non-empty list of positive numbers, got {self.lambdas!r}")
        if self.train_rates is not None:
            ok = isinstance(self.train_rates, list) and self.train_rates and all(
                isinstance(r, int) and not isinstance(r, bool) and 0 <= r < len(self.lambdas)
                for r in self.train_rates) and len(set(self.train_rates)) == len(self.train_rates)
            if not ok:
                raise BadInputError(f"train_rates must be distinct rate indices 0..{len(self.lambdas) - 1}, "
                                    f"got {self.train_rates!r}")
        unknown = [m for m in self.modalities if m not in CHANNELS]
        if not self.modalities or unknown or len(set(self.modalities)) != len(self.modalities):
            raise BadInputError(f"modalities must be distinct names from {', '.join(CHANNELS)}, "
                                f"got {self.modalities!r}")
        for modality, weight in self.modality_weight.items():
            if modality not in self.modalities or not (math.isfinite(weight) and weight > 0):
                raise BadInputError(f"modality_weight needs {{modality: positive number}} for the run's "
                                    f"modalities, got {self.modality_weight!r}")
        if self.joint_objective is not None:
            if not isinstance(self.joint_objective, dict) or set(self.joint_objective) - {"weight"}:
                raise BadInputError(f"joint_objective must be {{\"weight\": w}}, got {self.joint_objective!r}")
            weight = self.joint_objective.get("weight", JOINT_OBJECTIVE_WEIGHT)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                    or weight <= 0:
                raise BadInputError(f"joint_objective weight must be a positive number, got {weight!r}")
        for entry in self.crop_schedule:
            ok = isinstance(entry, (list, tuple)) and len(entry) in (2, 3) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in entry)
            if not ok or entry[0] < 0 or any(v <= 0 for v in entry[1:]):
                raise BadInputError(f"crop_schedule entries must be [step, crop] or [step, crop, batch] "
                                    f"(non-negative step, positive sizes), got {entry!r}")
        if not isinstance(self.darken, dict):
            raise BadInputError(f"darken must be {{modality: [probability, min_gain]}}, got {self.darken!r}")
        for modality, spec in self.darken.items():
            if modality not in self.modalities:
                raise BadInputError(f"darken: unknown modality {modality!r} (modalities: {', '.join(self.modalities)})")
            ok = isinstance(spec, (list, tuple)) and len(spec) in (2, 3) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec)
            if not ok or not (0 <= spec[0] <= 1 and 0 < spec[1] <= 1 and (len(spec) < 3 or 0 <= spec[2] <= 1)):
                raise BadInputError(f"darken for {modality}: need [probability in 0..1, min_gain in (0, 1]"
                                    f"(, channel_jitter in 0..1)], got {spec!r}")
        if not isinstance(self.single_images, dict):
            raise BadInputError(f"single_images must be {{modality: {{folder: weight}}}}, got {self.single_images!r}")
        for modality, sources in self.single_images.items():
            if modality not in self.modalities:
                raise BadInputError(f"single_images: unknown modality {modality!r} "
                                    f"(modalities: {', '.join(self.modalities)})")
            ok = isinstance(sources, dict) and all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and 0 <= w <= 1 for w in sources.values())
            if not ok or sum(sources.values()) > 1:
                raise BadInputError(f"single_images for {modality}: need {{folder: weight in 0..1}} with weights "
                                    f"summing to at most 1, got {sources!r}")
        if not isinstance(self.downsample, dict):
            raise BadInputError(f"downsample must be {{modality: factor}}, e.g. {{\"ir\": 2}}, got {self.downsample!r}")
        for modality, factor in self.downsample.items():
            if modality not in self.modalities:
                raise BadInputError(f"downsample: unknown modality {modality!r} "
                                    f"(modalities: {', '.join(self.modalities)})")
            if not isinstance(factor, int) or isinstance(factor, bool) or factor not in DOWNSAMPLE_FACTORS:
                raise BadInputError(f"downsample for {modality}: the factor must be an integer from "
                                    f"{DOWNSAMPLE_FACTORS[0]} to {DOWNSAMPLE_FACTORS[-1]}, got {factor!r}")
        if not isinstance(self.distortion, dict):
            raise BadInputError(f"distortion must be {{modality: type}}, got {self.distortion!r}")
        for modality, kind in self.distortion.items():
            if modality not in self.modalities:
                raise BadInputError(f"distortion: unknown modality {modality!r} (modalities: "
                                    f"{', '.join(self.modalities)})")
            if kind not in DISTORTIONS:
                raise BadInputError(f"distortion for {modality}: unknown type {kind!r} "
                                    f"(expected {' | '.join(DISTORTIONS)})")
            if kind == "thesis" and modality not in THESIS_MODALITIES:
                raise BadInputError(f"distortion for {modality}: \"thesis\" is a depth loss")

    def distortion_of(self, modality: str) -> str:
        """The distortion type of one modality ("mse" unless configured)."""
        return self.distortion.get(modality, "mse")

    @property
    def joint_objective_weight(self) -> float | None:
        """w of the joint objective, or None when it is off."""
        if self.joint_objective is None:
            return None
        return float(self.joint_objective.get("weight", JOINT_OBJECTIVE_WEIGHT))


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's annotation (ints count as floats, bools as neither)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_matches(k, args[0]) and _matches(v, args[1])
                                               for k, v in value.items())
    raise TypeError(f"config annotation {hint!r} has no check")  # a new field type: extend this


def _describe(hint: Any, form: str = "a") -> str:
    """A field's annotation in the words of a JSON config; `form`: "a" (an integer),
    "plural" (integers) or "bare" (integer)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a, form) for a in args)
    if origin is list:
        return {"a": "a list", "plural": "lists", "bare": "list"}[form] + " of " + _describe(args[0], "plural")
    if origin is dict:
        inner = f"{{{_describe(args[0], 'bare')}: {_describe(args[1], 'bare')}}}"
        return {"a": "an object ", "plural": "objects ", "bare": "object "}[form] + inner
    words = {bool: ("true or false", "booleans", "boolean"), int: ("an integer", "integers", "integer"),
             float: ("a number", "numbers", "number"), str: ("a string", "strings", "string"),
             type(None): ("null", "nulls", "null"), Any: ("any value", "values", "value")}
    return words[hint][("a", "plural", "bare").index(form)] if hint in words else str(hint)


def _coerce(value: str, current: Any) -> Any:
    if isinstance(current, bool):
        return value.lower() in ("1", "true", "yes")
    if isinstance(current, int) and not isinstance(current, bool):
        return int(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, (list, dict)) or value[:1] in "[{":
        return json.loads(value)
    if current is None:
        # Optional fields default to None: infer the type from the text (numbers, JSON, strings).
        if value.lower() in ("none", "null"):
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def load_config(path: str | None, overrides: list[str] | None = None) -> TrainConfig:
    cfg = TrainConfig()
    if path:
        p = Path(path)
        if not p.is_file():
            raise BadInputError(f"config file not found: {p}")
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise BadInputError(f"config {p} is not valid JSON: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInputError(f"cannot read config {p}: {exc}") from None
        if not isinstance(data, dict):
            raise BadInputError(f"config {p} must be a JSON object of settings, got {type(data).__name__}")
        known = {f.name for f in fields(TrainConfig)}
        unknown = set(data) - known - {"_comment"}
        if unknown:
            raise BadInputError(f"unknown config keys in {p}: {', '.join(sorted(unknown))}")
        for k, v in data.items():
            if k in known:
                setattr(cfg, k, v)
    for item in overrides or []:
        if "=" not in item:
            raise BadInputError(f"override {item!r} is not key=value")
        k, v = item.split("=", 1)
        if not hasattr(cfg, k):
            raise BadInputError(f"unknown config key {k!r}")
        optional = next(f for f in fields(TrainConfig) if f.name == k).default is None
        if optional and v.lower() in ("none", "null"):  # e.g. eval_split=null on a config that sets it
            setattr(cfg, k, None)
            continue
        try:
            setattr(cfg, k, _coerce(v, getattr(cfg, k)))
        except ValueError as exc:
            raise BadInputError(f"bad value for {k}: {exc}") from None
    cfg.validate()
    return cfg
