#!/usr/bin/env python
"""Parameter counts of every training config's architecture (no weights needed).

    .venv/bin/python scripts/param_counts.py configs/ir-vi-ccem.json configs/ir-vi-ccem-paper.json ...
"""
import sys

from mmcodec.models.registry import build_model
from mmcodec.train.config import load_config

print("| config | arch | parameters |\n|---|---|---|")
for path in sys.argv[1:]:
    cfg = load_config(path)
    model = build_model(cfg.arch, cfg.kwargs)
    print(f"| {path} | {cfg.arch} | {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M |")
