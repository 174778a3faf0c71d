"""Build a separate-coding model from the modality codecs of two installed models of the same
architecture: every modality from `base`, except those named with --take, which come from
`donor` (`mmcodec.train.compose`; each modality is checked to code exactly as in the model it
came from before anything is written). The campaign does this itself when only some modalities
pass the ship rule; this script is the manual path.

    .venv/bin/python scripts/compose_modalities.py ir-vi/separate runs/<arm>/model/ir-vi__separate.json \
        --take ir --out mmcodec/weights --note "..."
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mmcodec.errors import BadInputError
from mmcodec.models.registry import find_model, read_manifest
from mmcodec.train.compose import compose


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base", help="installed model name or manifest path")
    p.add_argument("donor", help="installed model name or manifest path")
    p.add_argument("--take", nargs="+", required=True, help="modalities taken from the donor")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--note", default="", help="appended to the description")
    args = p.parse_args()
    base, donor = (read_manifest(Path(s)) if s.endswith(".json") else find_model(s) for s in (args.base, args.donor))
    out = compose(base, donor, args.take, args.out, args.note)
    print(f"installed {out}: {', '.join(args.take)} from {donor.weights_path}, the rest from {base.weights_path}")


if __name__ == "__main__":
    try:
        main()
    except (BadInputError, RuntimeError) as exc:
        raise SystemExit(f"compose: {exc}") from None
