"""The channel-slice context as a single-modality latent codec (recipe study arm h)."""
import torch

from mmcodec.models.single import SingleModalityCodec


def test_channel_slice_context_round_trip_is_exact():
    torch.manual_seed(0)
    model = SingleModalityCodec(in_ch=1, N=16, M=24, num_rates=2, context="channel-slice").eval()
    model.latent_codec.update(force=True)
    x = torch.rand(1, 1, 64, 64)
    out = model(x, torch.tensor([1]))
    assert set(out["likelihoods"]) == {"y", "z"} and out["x_hat"].shape == x.shape
    coded = model.compress(x, 1)
    assert len(coded.strings) == 1 + 4   # z + 4 slices
    again = model.decompress(coded.strings, (64, 64), 1)
    assert torch.equal(again, coded.x_hat)
