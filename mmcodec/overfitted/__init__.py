"""Overfitted per-image codec (issue 26): latent pyramid + checkerboard ARM + tiny synthesis,
fitted at encode time and sent in the stream. Measurement code, not a registry model."""
from mmcodec.overfitted.coding import decode, encode
from mmcodec.overfitted.model import OverfitConfig, OverfittedImage
from mmcodec.overfitted.train import Encoded, fit, fit_and_encode

__all__ = ["OverfitConfig", "OverfittedImage", "Encoded", "decode", "encode", "fit", "fit_and_encode"]
