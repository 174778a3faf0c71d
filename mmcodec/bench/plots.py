"""Rate-distortion figures: bpp vs PSNR and bpp vs MS-SSIM (dB), one figure per modality."""
from __future__ import annotations

from pathlib import Path

from mmcodec.bench.metrics import PRIMARY_METRIC

_YLABEL = {"psnr-rgb": "RGB PSNR (dB)", "psnr": "PSNR (dB)"}


def plot_rd(codec_results: dict[str, dict], group: str, path: Path, title: str = "") -> bool:
    """Write rd_<group>.png from the aggregated results; False when no codec has this group."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {name: res[group]["results"] for name, res in codec_results.items() if group in res}
    if not curves:
        return False
    metric = PRIMARY_METRIC[group]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, r in curves.items():
        style = "-o" if name.startswith("mmcodec:") else "--."
        axes[0].plot(r["bpp"], r[metric], style, label=name, markersize=4)
        ms = [(b, v) for b, v in zip(r["bpp"], r.get("ms-ssim-db", [])) if v is not None]
        if ms:
            axes[1].plot([b for b, _ in ms], [v for _, v in ms], style, label=name, markersize=4)
    ylabel = _YLABEL.get(metric, metric)
    if group == "pair":
        ylabel = "mean PSNR of both modalities (dB)"
    elif group == "depth":
        ylabel = "depth PSNR, peak 65535 (dB)"
    axes[0].set_ylabel(ylabel)
    axes[1].set_ylabel("MS-SSIM (dB)" + (" , mean of both" if group == "pair" else ""))
    for ax in axes:
        ax.set_xlabel("bits per pixel" + (" (both images / pixels of one)" if group == "pair" else ""))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
