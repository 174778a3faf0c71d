"""Per-modality shipping: a separate-coding model built from two models' modality codecs.

The codecs of a separate model are independent (`independent_modalities`), so the ship rule can
judge each modality on its own figures and replace only the codecs that pass. `compose` takes
every modality from `base` except those in `take`, which come from `donor`, and checks on a
synthetic pair that each modality's stream equals the one of the model its codec came from
before anything is written.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmcodec.bitstream import unpack
from mmcodec.codec import Codec
from mmcodec.errors import BadInputError
from mmcodec.files import atomic_output
from mmcodec.models.registry import InstalledModel, install_model, read_manifest
from mmcodec.train.lineage import composed_budget


def _stream_bytes(codec: Codec, modality: str) -> bytes:
    rng = np.random.default_rng(0)
    probes = {"rgb": rng.integers(0, 256, (64, 96, 3), dtype=np.uint8),
              "ir": rng.integers(0, 256, (64, 96), dtype=np.uint8),
              "depth": rng.integers(0, 65536, (64, 96), dtype=np.uint16)}
    blob = codec.compress(**{m: probes[m] for m in codec.modalities})
    return b"".join(b"".join(parts) for name, parts in sorted(unpack(blob).streams.items())
                    if name.startswith(modality))


def compose(base: InstalledModel, donor: InstalledModel, take: Sequence[str], out_dir: Path,
            note: str = "") -> Path:
    """Install into `out_dir` the model `base` with the codecs of `take` from `donor`; return
    the manifest path. The manifest's budget keeps each codec's lineage
    (`mmcodec.train.lineage.composed_budget`)."""
    def codec_config(m: InstalledModel) -> tuple:
        # Everything but the modality list shapes each codec: a donor may pair its codec with
        # another modality (the visible codec of ir-vi/separate into rgb-d/hyperprior).
        return (m.arch, {k: v for k, v in m.kwargs.items() if k != "modalities"}, list(m.lambdas))
    if base.arch != "separate" or codec_config(base) != codec_config(donor):
        raise BadInputError("both models must be separate coding with the same codec settings and lambdas")
    if not take:
        raise BadInputError("name at least one modality to take from the donor")
    unknown = set(take) - (set(base.modalities) & set(donor.modalities))
    if unknown:
        raise BadInputError(f"modalities {sorted(unknown)} are not in both models "
                            f"({base.modalities}, {donor.modalities})")
    model, donor_model = base.load(), donor.load()
    state = model.state_dict()
    prefixes = tuple(f"codecs.{m}." for m in take)
    state.update({k: v for k, v in donor_model.state_dict().items() if k.startswith(prefixes)})
    model.load_state_dict(state)
    model.update(force=True)
    budget = composed_budget(base.budget, donor.budget, base.modalities, take,
                             same_pair=list(donor.modalities) == list(base.modalities))
    with tempfile.TemporaryDirectory() as tmp:
        manifest = install_model(Path(tmp), base.name, base.arch, base.kwargs, base.modalities, base.lambdas,
                                 model, default=base.default, description=(base.description + note).strip(),
                                 budget=budget)
        composed = Codec(read_manifest(manifest))
        for m in base.modalities:
            if _stream_bytes(composed, m) != _stream_bytes(Codec(donor if m in take else base), m):
                raise RuntimeError(f"compose: the {m} streams differ from its source model's; nothing written")
        # The checked files themselves go out (weights first, so a manifest never names missing ones).
        out_dir.mkdir(parents=True, exist_ok=True)
        for src in (manifest.with_suffix(".safetensors"), manifest):
            with atomic_output(out_dir / src.name) as dst:
                shutil.copyfile(src, dst)
        return out_dir / manifest.name
