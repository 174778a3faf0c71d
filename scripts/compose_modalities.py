"""Build a separate-coding model from the modality codecs of two installed models of the same
architecture: every modality from `base`, except those named with --take, which come from
`donor`. The codecs of a separate model are independent, so each modality codes exactly as in
the model it came from (checked here on a synthetic pair before anything is written).

Issue 21's per-modality ship: the mixed-data arm's infrared codec passes the ship rule on its
own while its visible codec does not.

    .venv/bin/python scripts/compose_modalities.py ir-vi/separate runs/<arm>/model/ir-vi__separate.json \
        --take ir --out mmcodec/weights --note "..."
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from mmcodec.bitstream import unpack
from mmcodec.codec import Codec
from mmcodec.errors import BadInputError
from mmcodec.files import atomic_output
from mmcodec.models.registry import find_model, install_model, read_manifest


def _stream_bytes(codec: Codec, modality: str) -> bytes:
    rng = np.random.default_rng(0)
    images = {"rgb": rng.integers(0, 256, (64, 96, 3), dtype=np.uint8),
              "ir": rng.integers(0, 256, (64, 96), dtype=np.uint8)}
    blob = codec.compress(rgb=images["rgb"], ir=images["ir"])
    return b"".join(b"".join(parts) for name, parts in sorted(unpack(blob).streams.items())
                    if name.startswith(modality))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base", help="installed model name or manifest path")
    p.add_argument("donor", help="installed model name or manifest path")
    p.add_argument("--take", nargs="+", required=True, help="modalities taken from the donor")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--note", default="", help="appended to the description")
    args = p.parse_args()
    base, donor = (read_manifest(Path(s)) if s.endswith(".json") else find_model(s) for s in (args.base, args.donor))
    if base.arch != "separate" or (base.arch, base.kwargs, base.lambdas) != (donor.arch, donor.kwargs, donor.lambdas):
        raise BadInputError("both models must be separate coding with the same kwargs and lambdas")
    unknown = set(args.take) - set(base.modalities)
    if unknown:
        raise BadInputError(f"unknown modalities {sorted(unknown)}; the model has {base.modalities}")
    model, donor_model = base.load(), donor.load()
    state = model.state_dict()
    taken = [f"codecs.{m}." for m in args.take]
    for k, v in donor_model.state_dict().items():
        if k.startswith(tuple(taken)):
            state[k] = v
    model.load_state_dict(state)
    model.update(force=True)
    budget = dict(donor.budget)
    # Which budget trained which codec: this one (the donor's) or "base_budget".
    budget["codec_budgets"] = {m: ("budget" if m in args.take else "base_budget") for m in base.modalities}
    budget["base_budget"] = base.budget
    with tempfile.TemporaryDirectory() as tmp:
        manifest = install_model(Path(tmp), base.name, base.arch, base.kwargs, base.modalities, base.lambdas,
                                 model, default=base.default,
                                 description=(base.description + args.note).strip(), budget=budget)
        composed = Codec(read_manifest(manifest))
        for m in base.modalities:
            want = Codec(donor if m in args.take else base)
            if _stream_bytes(composed, m) != _stream_bytes(want, m):
                raise SystemExit(f"compose: the {m} streams differ from its source model's; nothing written")
        # The checked files themselves go out (weights first, so a manifest never names missing ones).
        args.out.mkdir(parents=True, exist_ok=True)
        for src in (manifest.with_suffix(".safetensors"), manifest):
            with atomic_output(args.out / src.name) as dst:
                shutil.copyfile(src, dst)
        out = args.out / manifest.name
    print(f"installed {out}: {', '.join(args.take)} from {donor.weights_path}, the rest from {base.weights_path}")


if __name__ == "__main__":
    try:
        main()
    except BadInputError as exc:
        raise SystemExit(f"compose: {exc}") from None
