"""Shared building blocks, one place for all models.

- conv: convolutions, GDN analysis/synthesis stacks, hyper transforms, residual blocks
Paper modules (mmcodec.models.lu2022, .ccem, .rgbd_tcm) import blocks from here.
"""
from mmcodec.layers.conv import (ResidualBlock, analysis_transform, conv, deconv, hyper_analysis,
                                 hyper_synthesis_mean_scale, ste_round, synthesis_transform)

__all__ = ["ResidualBlock", "analysis_transform", "conv", "deconv", "hyper_analysis",
           "hyper_synthesis_mean_scale", "ste_round", "synthesis_transform"]
