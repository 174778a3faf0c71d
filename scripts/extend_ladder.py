"""Issue 22, item 4: add rate points above an installed model's top quality by extrapolating its
learned gain units (mmcodec.models.ladder), and install the result.

    .venv/bin/python scripts/extend_ladder.py ir-vi/separate --lambdas 0.06 0.144 \
        --name ir-vi/separate-ladder --out runs/ladder/model
    MMCODEC_MODEL_PATH=runs/ladder/model mmcodec bench --data msrs-subset --limit 4 \
        --codecs hevc,mmcodec:ir-vi/separate-ladder --anchor hevc --out results/ladder
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mmcodec.models.ladder import install_extended
from mmcodec.models.registry import find_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("--lambdas", type=float, nargs="+", required=True, help="new rate points, increasing")
    p.add_argument("--name", help="installed name (default: the model's own)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    manifest = install_extended(find_model(args.model), args.lambdas, args.out, args.name)
    print(f"installed {manifest}")


if __name__ == "__main__":
    main()
