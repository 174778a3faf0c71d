"""Registry: architecture names -> constructors, and installed models -> manifests + weights.

An installed model is two files side by side in a model directory:
    <pair>__<method>.json          manifest: name, arch, constructor kwargs, lambdas, budget
    <pair>__<method>.safetensors   weights (fp16), without the CDF tables (rebuilt by update())
Model directories searched: the package's `mmcodec/weights/`, then every entry of
$MMCODEC_MODEL_PATH (os.pathsep-separated), so users install their own trained models.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file

from mmcodec.errors import UnknownModelError
from mmcodec.files import atomic_output, atomic_write
from mmcodec.models.base import PairModel

PACKAGE_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
# Buffers rebuilt by update() at load time; never stored.
_DERIVED_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


def _separate(**kw: Any) -> PairModel:
    from mmcodec.models.separate import SeparateCoding
    return SeparateCoding(**kw)


def _lazy(module: str, cls: str) -> Callable[..., PairModel]:
    def build(**kw: Any) -> PairModel:
        import importlib
        return getattr(importlib.import_module(module), cls)(**kw)
    return build


ARCHITECTURES: dict[str, Callable[..., PairModel]] = {
    "separate": _separate,
    "lu2022": _lazy("mmcodec.models.lu2022", "Lu2022"),
    "ccem": _lazy("mmcodec.models.ccem", "CCEM"),
    "rgbd_tcm": _lazy("mmcodec.models.rgbd_tcm", "RGBDTCM"),
}


def build_model(arch: str, kwargs: dict[str, Any]) -> PairModel:
    if arch not in ARCHITECTURES:
        raise UnknownModelError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[arch](**kwargs)


@dataclass
class InstalledModel:
    name: str
    arch: str
    kwargs: dict[str, Any]
    modalities: list[str]
    lambdas: list[float]
    weights_path: Path
    default: bool = False
    description: str = ""
    budget: dict[str, Any] = field(default_factory=dict)
    kind: str = "image"       # "video": an mmcodec.video model (`installed_models(kind="video")`)
    extra: dict[str, Any] = field(default_factory=dict)   # other manifest keys (video: iframe_model)

    @property
    def pair(self) -> str:
        return self.name.split("/")[0]

    @property
    def qualities(self) -> list[int]:
        return list(range(1, len(self.lambdas) + 1))

    @property
    def default_quality(self) -> int:
        """The quality used when none is given: the manifest's "default_quality" if it names one
        of the qualities (kept when rate points are added above, so the default file does not
        change), else the one just above the middle of the ladder (3 of 1-4)."""
        chosen = self.extra.get("default_quality")
        if isinstance(chosen, int) and not isinstance(chosen, bool) and chosen in self.qualities:
            return chosen
        q = self.qualities
        return q[(len(q) - 1) // 2 + 1] if len(q) > 2 else q[0]

    @property
    def weights_hash(self) -> str:
        return _file_hash(str(self.weights_path), self.weights_path.stat().st_mtime_ns)

    def decodes(self, weights: str, quality: int) -> bool:
        """Whether these weights decode a stream written by `weights` at `quality`: their own
        streams, and those of earlier weights the manifest lists under "decodes_weights"
        (hash -> highest quality coded identically, e.g. after rate points were added above
        the old ones with every other parameter unchanged: mmcodec.models.ladder)."""
        if weights == self.weights_hash:
            return True
        earlier = self.extra.get("decodes_weights", {})
        top = earlier.get(weights) if isinstance(earlier, dict) else None
        return isinstance(top, int) and quality <= top

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "arch": self.arch, "modalities": self.modalities,
                "qualities": self.qualities, "default_quality": self.default_quality,
                "lambdas": self.lambdas, "default": self.default,
                "weights": self.weights_hash, "path": str(self.weights_path),
                "description": self.description, "budget": self.budget}

    def load(self, device: str | torch.device = "cpu") -> PairModel:
        model = build_model(self.arch, self.kwargs)
        load_weights(model, self.weights_path)
        model.update(force=True)
        return model.to(device).eval()


@lru_cache(maxsize=64)
def _file_hash(path: str, _mtime: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def model_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("MMCODEC_MODEL_PATH", "").split(os.pathsep) if p]
    return [PACKAGE_WEIGHTS, *extra]


def read_manifest(manifest: Path) -> InstalledModel:
    """The installed model a `<name>.json` manifest describes (weights beside it); a file
    that is not a well-formed manifest raises UnknownModelError naming it and the reason."""
    path = Path(manifest)

    def malformed(reason: str) -> UnknownModelError:
        return UnknownModelError(f"malformed model manifest {path}: {reason}")
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise malformed(f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise malformed(f"cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    if not isinstance(m, dict):
        raise malformed(f"expected a JSON object, got {type(m).__name__}")
    missing = [k for k in ("name", "arch", "modalities", "lambdas") if k not in m]
    if missing:
        raise malformed(f"missing {', '.join(repr(k) for k in missing)}")
    expected = {"name": str, "arch": str, "kwargs": dict, "modalities": list, "lambdas": list, "default": bool,
                "description": str, "budget": dict, "kind": str}
    wrong = [k for k, kind in expected.items() if k in m and not isinstance(m[k], kind)]
    if wrong:
        raise malformed(f"{wrong[0]!r} must be a JSON {expected[wrong[0]].__name__}, got {m[wrong[0]]!r}")
    if not m["lambdas"] or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in m["lambdas"]):
        raise malformed(f"'lambdas' must be a non-empty list of numbers, got {m['lambdas']!r}")
    return InstalledModel(m["name"], m["arch"], m.get("kwargs", {}), list(m["modalities"]), list(m["lambdas"]),
                          path.with_suffix(".safetensors"), bool(m.get("default", False)),
                          m.get("description", ""), m.get("budget", {}), m.get("kind", "image"),
                          {k: v for k, v in m.items() if k not in expected and k not in ("name", "arch", "kwargs")})


_WARNED: set[tuple[str, str]] = set()   # (manifest, problem) already reported by this process


def installed_models(kind: str = "image") -> list[InstalledModel]:
    """Every model of `kind` ("image" pair models, or "video" models) with a well-formed
    manifest and its weights in the model directories. A
    manifest that cannot be used is skipped with a one-line warning on stderr (once per
    process), so that a broken file does not silently hide a model."""
    import sys
    seen: dict[str, InstalledModel] = {}
    for d in model_dirs():
        if not d.is_dir():
            continue
        for manifest in sorted(d.glob("*.json")):
            problem = None
            try:
                model = read_manifest(manifest)
            except UnknownModelError as exc:
                problem = str(exc)
            else:
                if not model.weights_path.is_file():
                    problem = f"model manifest {manifest}: weights {model.weights_path.name} not found"
            if problem is None:
                if model.kind == kind:
                    seen[model.name] = model
            elif (str(manifest), problem) not in _WARNED:
                _WARNED.add((str(manifest), problem))
                print(f"mmcodec: warning: skipped {problem}", file=sys.stderr)
    return list(seen.values())


def find_model(name: str | None = None, pair: str | None = None) -> InstalledModel:
    """Look up an installed model by name, or the default model of a pair type."""
    models = installed_models()
    if name is None:
        candidates = [m for m in models if m.pair == pair]
        for m in candidates:
            if m.default:
                return m
        if candidates:
            return candidates[0]
        raise UnknownModelError(f"no installed model for {pair} pairs")
    for m in models:
        if m.name == name:
            return m
    for d in model_dirs():   # a manifest of that name that could not be used: say why
        manifest = d / (name.replace("/", "__") + ".json")
        if manifest.is_file():
            model = read_manifest(manifest)          # raises the malformed-manifest error
            raise UnknownModelError(f"model {name!r}: weights {model.weights_path} not found")
    known = ", ".join(sorted(m.name for m in models)) or "none"
    raise UnknownModelError(f"model {name!r} is not installed (installed: {known})")


def save_weights(model: torch.nn.Module, path: Path, dtype: torch.dtype = torch.float16) -> None:
    """Store weights compactly; derived CDF buffers are left out."""
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()
             if not k.rsplit(".", 1)[-1] in _DERIVED_BUFFERS}
    # Entropy-bottleneck quantiles/CDF parameters stay fp32: they set the coding tables. (The
    # Gaussian likelihood floors become fp16 zeros; load_weights restores them: see there.)
    state = {k: (v.to(dtype) if v.is_floating_point() and "entropy_bottleneck" not in k else v).contiguous()
             for k, v in state.items()}
    with atomic_output(path) as tmp:
        save_file(state, str(tmp))


# The likelihood floor of an entropy model (CompressAI's `likelihood_lower_bound`) is a constant of
# the architecture. Weight files hold the Gaussian one in fp16, where 1e-9 is zero: a zero floor
# lets -log2(likelihood) reach infinity when training or refining a shipped model. It never enters
# the coding tables, so keeping the constructor's value changes no stream. (Writing it in fp32
# instead would change every weights hash, hence every file header.)
LIKELIHOOD_FLOOR_KEY = "likelihood_lower_bound.bound"


def load_weights(model: torch.nn.Module, path: Path) -> None:
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()
             if not k.endswith(LIKELIHOOD_FLOOR_KEY)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k.rsplit(".", 1)[-1] not in _DERIVED_BUFFERS
               and not k.endswith(LIKELIHOOD_FLOOR_KEY)]
    if missing or unexpected:
        raise UnknownModelError(f"weights {path.name} do not fit the architecture "
                                f"(missing {missing[:2]}, unexpected {unexpected[:2]})")


def install_model(directory: Path, name: str, arch: str, kwargs: dict[str, Any], modalities: list[str],
                  lambdas: list[float], model: torch.nn.Module, default: bool = False,
                  description: str = "", budget: dict[str, Any] | None = None,
                  extra: dict[str, Any] | None = None) -> Path:
    """Write manifest + weights for `model` into `directory`; return the manifest path.
    `extra`: further manifest keys (e.g. "decodes_weights", see InstalledModel.decodes)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = name.replace("/", "__")
    save_weights(model, directory / f"{stem}.safetensors")
    manifest = {"name": name, "arch": arch, "kwargs": kwargs, "modalities": modalities,
                "lambdas": lambdas, "default": default, "description": description,
                "budget": budget or {}, **(extra or {})}
    path = directory / f"{stem}.json"
    atomic_write(path, (json.dumps(manifest, indent=2) + "\n").encode())
    return path
