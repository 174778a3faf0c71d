"""The pair-model interface every mmcodec model implements.

Inputs and outputs are dicts keyed by modality name ("rgb", "ir", "depth"); tensors are
(B, C, H, W) in [0, 1], H and W multiples of `PairModel.padding_multiple(modality)`
(`multiple`, 64, unless the model says otherwise). The modalities of a pair have the same
size unless the model declares another geometry (`size_ratio`). A model codes all rate
points with one set of weights: `rate` selects a gain vector (variable-rate coding, Cui et
al. 2021) and training samples a rate per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from compressai.models.base import CompressionModel


@dataclass
class CompressedPair:
    """What `PairModel.compress` produces."""

    streams: dict[str, list[bytes]]            # per modality: its byte strings
    x_hat: dict[str, torch.Tensor]             # the reconstruction the decoder will produce
    side: bytes = b""                          # model side information, counted in the file
    # Per modality: the coded latent as the decoder's latent codec will return it (before the
    # inverse gain), whose CRC the stream carries. Models may leave it None: mmcodec.codec
    # observes the pipelines (mmcodec.modality_codec.observe_latents) and fills it in.
    latents: dict[str, torch.Tensor] | None = None
    # Per modality: the side information its codec sends (b"" for most), sealed into that
    # modality's latent CRC; filled in with `latents`.
    latent_side: dict[str, bytes] | None = None


class PairModel(CompressionModel):
    """Base class: CompressAI conventions (`forward`, `compress`, `decompress`, `update`,
    `aux_loss`) over a dict of modalities."""

    modalities: tuple[str, ...] = ()
    channels: dict[str, int] = {}
    num_rates: int = 1
    multiple: int = 64
    # Models whose compress/decompress take `tiling=` (mmcodec.tiling); the others code whole
    # images only.
    supports_tiling: bool = False

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load weights; CDF tables are derived data (rebuilt by `update()`), never loaded."""
        derived = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
        keep = {k: v for k, v in state_dict.items() if k.rsplit(".", 1)[-1] not in derived}
        result = torch.nn.Module.load_state_dict(self, keep, strict=False)
        if strict:
            missing = [k for k in result.missing_keys if k.rsplit(".", 1)[-1] not in derived]
            if missing or result.unexpected_keys:
                raise RuntimeError(f"state dict mismatch: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}")
        return result

    def forward(self, x: dict[str, torch.Tensor], rate: torch.Tensor) -> dict:
        """Returns {"x_hat": {mod: tensor}, "likelihoods": {mod: {name: tensor}}}."""
        raise NotImplementedError

    def compress(self, x: dict[str, torch.Tensor], rate: int) -> CompressedPair:
        raise NotImplementedError

    def decompress(self, streams: dict[str, list[bytes]], side: bytes, sizes: dict[str, tuple[int, int]],
                   rate: int, only: str | None = None) -> dict[str, torch.Tensor]:
        """`sizes` are the padded (H, W) of each modality. With `only`, decode that modality
        reading no more streams than `requires(only)`."""
        raise NotImplementedError

    def latent_modality(self, pipeline: object) -> str | None:
        """The modality whose latent a `ModalityPipeline` of this model codes (for the stream's
        latent CRCs): the key of `self.codecs` holding it (separate, Lu et al., RGB-D TCM), or
        the pipeline's own `modality` (CCEM's per-modality views); None if neither names it."""
        codecs = getattr(self, "codecs", None)
        if isinstance(codecs, torch.nn.ModuleDict):
            for name, codec in codecs.items():
                if codec is pipeline:
                    return name
        modality = getattr(pipeline, "modality", None)
        return modality if modality in self.modalities else None

    def modality_latent_codec(self, modality: str) -> torch.nn.Module | None:
        """The latent codec (entropy model) that codes `modality`'s latent, for tools that read
        streams part by part (scripts/rate_parts.py): `self.codecs[modality].latent_codec` here;
        models laid out otherwise override it. None if the model has no such part."""
        codecs = getattr(self, "codecs", None)
        pipeline = codecs[modality] if isinstance(codecs, torch.nn.ModuleDict) and modality in codecs else None
        return getattr(pipeline, "latent_codec", None)

    def size_ratio(self, modality: str) -> int:
        """Linear resolution of `modality` relative to the pair's lowest-resolution modality:
        1 for every modality of a same-size model; Lu2022(ratio=2) answers 2 for its visible
        reference and 1 for the infrared. `mmcodec.codec.Codec` checks input pairs against it."""
        return 1

    def padding_multiple(self, modality: str) -> int:
        """Each side of `modality`'s image is padded to a multiple of this (its codec's total
        downsampling, hyper-latent included)."""
        return self.multiple

    def requires(self, only: str) -> set[str]:
        """Modalities whose streams must be decoded to reconstruct `only`."""
        return set(self.modalities)

    def stage_parameters(self, stage: str) -> list[torch.nn.Parameter]:
        """Trainable parameters for a training stage (models with staged recipes override)."""
        return [p for n, p in self.named_parameters() if not n.endswith(".quantiles")]
