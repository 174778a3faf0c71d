"""`PairModel.modality_latent_codec`: the entropy model coding one modality's latent, whatever
the model's layout (what scripts/rate_parts.py names stream parts by)."""
from __future__ import annotations

from conftest import TINY
from mmcodec.latent_codecs.channel_slice import SliceLoopCodec
from mmcodec.models.ccem import CCEM
from mmcodec.models.separate import SeparateCoding


def _owned(model, module) -> bool:
    return any(m is module for m in model.modules())


def test_separate_coding_names_each_codecs_latent_codec():
    model = SeparateCoding(modalities=["rgb", "ir"], **TINY)
    rgb, ir = model.modality_latent_codec("rgb"), model.modality_latent_codec("ir")
    assert rgb is model.codecs["rgb"].latent_codec and ir is model.codecs["ir"].latent_codec and rgb is not ir
    assert model.modality_latent_codec("depth") is None


def test_ccem_names_its_channel_slice_codecs():
    model = CCEM(num_rates=2, N=8, M=16)
    for m in ("rgb", "ir"):
        codec = model.modality_latent_codec(m)
        assert isinstance(codec, SliceLoopCodec) and _owned(model, codec)
    assert model.modality_latent_codec("rgb") is not model.modality_latent_codec("ir")
