#!/usr/bin/env python
"""Measure THESIS_SCALE (mmcodec.train.loss) for the thesis depth loss.

With loss R + lambda * S * D the optimum sits where dR/dD = -lambda * S; with MSE it is
dR/dMSE = -lambda * 255^2. So a lambda keeps its operating point when S = 255^2 * dMSE/dD
along the RD curve. This runs the shipped (MSE-trained) rgb-d/hyperprior on 128-px depth
crops of rgbdd-train (every 10th pair, centre crop; never a test split) at its rate points
(eval forward: rounded latents) and prints, per rate, 255^2*MSE, D_thesis and their ratio,
and between adjacent rates the slope ratio 255^2 * dMSE / dD.

    PYTHONPATH=. .venv/bin/python scripts/depth_loss_scale.py
"""
import numpy as np
import torch

from mmcodec.data.images import load_modality
from mmcodec.data.pairs import standard_split
from mmcodec.models.registry import find_model
from mmcodec.distortion import MSE_SCALE, thesis_distortion

CROP = 128
torch.set_num_threads(1)
model = find_model("rgb-d/hyperprior").load().eval()
records = standard_split("rgbdd-train")[::10]
crops = {"rgb": [], "depth": []}
for rec in records:
    for m, key in (("rgb", "rgb" if "rgb" in rec.paths else "vi"), ("depth", "depth")):
        d = load_modality(m, rec.paths[key]).data
        h, w = d.shape[1:]
        top, left = (h - CROP) // 2, (w - CROP) // 2
        crops[m].append(d[:, top:top + CROP, left:left + CROP])
x = {m: torch.from_numpy(np.stack(v)) for m, v in crops.items()}
holes = float((x["depth"] == 0).float().mean())
print(f"{len(records)} crops of {CROP} px, {holes:.2%} hole pixels")
rows = []
with torch.no_grad():
    for rate in range(model.num_rates):
        x_hat = model(x, torch.full((len(records),), rate))["x_hat"]["depth"].clamp(0, 1)
        mse = float(MSE_SCALE * (x_hat - x["depth"]).pow(2).flatten(1).mean(1).mean())
        d = float(thesis_distortion(x_hat, x["depth"]).mean())
        rows.append((mse, d))
        print(f"rate {rate}: 255^2*MSE {mse:8.3f}  D_thesis {d:.5f}  ratio {mse / d:8.1f}")
for r in range(1, len(rows)):
    (m0, d0), (m1, d1) = rows[r - 1], rows[r]
    print(f"rates {r - 1}->{r}: slope ratio 255^2*dMSE/dD = {(m0 - m1) / (d0 - d1):8.1f}")
