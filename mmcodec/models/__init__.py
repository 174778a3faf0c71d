"""Models and the registry that maps names to constructors and installed weights."""
from mmcodec.models.base import CompressedPair, PairModel
from mmcodec.models.registry import ARCHITECTURES, InstalledModel, build_model, find_model, installed_models

__all__ = ["CompressedPair", "PairModel", "ARCHITECTURES", "InstalledModel", "build_model",
           "find_model", "installed_models"]
