"""Install a copy of a separate-coding model whose codec for one modality has more latent
channels (--M) or wider analysis/synthesis transforms (--transform-N), or both
(`mmcodec.train.widen`): it decodes every image as the original does, and training continues
from it (`mmcodec train --resume ... ship_to=<out>` with the printed kwargs).

    .venv/bin/python scripts/widen_latent.py ir-vi/separate --modality rgb --transform-N 96 --out runs/wide-start
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmcodec.errors import BadInputError
from mmcodec.models.registry import find_model, install_model, read_manifest
from mmcodec.train.widen import codec_widths, widen_latent, widen_transforms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="installed model name or manifest path")
    p.add_argument("--modality", required=True)
    p.add_argument("--M", type=int, help="latent channels of the widened codec")
    p.add_argument("--transform-N", type=int, help="channels of the widened analysis and synthesis transforms")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    base = read_manifest(Path(args.model)) if args.model.endswith(".json") else find_model(args.model)
    if base.arch != "separate" or base.kwargs.get("context", "hyperprior") != "hyperprior":
        raise BadInputError("only separate coding with the hyperprior context can be widened")
    if args.modality not in base.modalities:
        raise BadInputError(f"unknown modality {args.modality!r}; the model has {base.modalities}")
    if args.M is None and args.transform_N is None:
        raise BadInputError("give --M, --transform-N or both")
    wide = base.load()
    try:
        if args.transform_N is not None:
            wide = widen_transforms(wide, args.modality, args.transform_N)
        if args.M is not None:
            wide = widen_latent(wide, args.modality, args.M)
    except ValueError as exc:
        raise BadInputError(str(exc)) from None
    kwargs = {**base.kwargs, "widths": codec_widths(wide)}
    budget = {**base.budget, "widened": {"modality": args.modality, "M": args.M, "transform_N": args.transform_N,
                                        "from": base.weights_path.name}}
    manifest = install_model(args.out, base.name, base.arch, kwargs, base.modalities, base.lambdas, wide,
                             default=base.default, description=base.description, budget=budget)
    print(f"installed {manifest}; train with kwargs={json.dumps(kwargs)}")


if __name__ == "__main__":
    try:
        main()
    except BadInputError as exc:
        raise SystemExit(f"widen_latent: {exc}") from None
