"""Installed video models: the same two files as the image models (mmcodec.models.registry),
`<name>.json` with `"kind": "video"` + fp16 `<name>.safetensors`, in the same model
directories. The manifest also names the image pair model that codes the I-frames and the
hash of its weights (a stream records both)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mmcodec.errors import UnknownModelError
from mmcodec.files import atomic_write
from mmcodec.models.registry import InstalledModel, installed_models, load_weights, save_weights
from mmcodec.video.fvc import VideoPairModel


def video_models() -> list[InstalledModel]:
    return installed_models(kind="video")


def find_video_model(name: str | None = None) -> InstalledModel:
    models = video_models()
    if name is None:
        for m in models:
            if m.default:
                return m
        if models:
            return models[0]
        raise UnknownModelError("no installed video model")
    for m in models:
        if m.name == name:
            return m
    known = ", ".join(sorted(m.name for m in models)) or "none"
    raise UnknownModelError(f"video model {name!r} is not installed (installed: {known})")


def load_video_model(installed: InstalledModel) -> VideoPairModel:
    model = VideoPairModel(installed.arch, **installed.kwargs)
    load_weights(model, installed.weights_path)
    model.update(force=True)
    return model.eval()


def install_video_model(directory: Path, cfg: dict[str, Any], model: torch.nn.Module,
                        budget: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stem = cfg["name"].replace("/", "__")
    save_weights(model, directory / f"{stem}.safetensors")
    manifest = {"name": cfg["name"], "kind": "video", "arch": cfg["arch"], "kwargs": cfg["kwargs"],
                "modalities": ["rgb", "ir"], "lambdas": cfg["lambdas"], "default": bool(cfg["default"]),
                "description": cfg["description"], "iframe_model": cfg["iframe_model"], "budget": budget}
    path = directory / f"{stem}.json"
    atomic_write(path, (json.dumps(manifest, indent=2) + "\n").encode())
    return path
