"""Shared building blocks, one place for all models.

- conv: convolutions, GDN analysis/synthesis stacks, hyper transforms, residual blocks,
  masked (causal) convolutions for autoregressive context models
- window_attention: Swin-style windowed multi-head cross-attention (shifted windows,
  relative position bias) and a patch-embedded wrapper for conv feature maps
- agent_attention: agent attention (linear-cost, cross-modal queries vs keys/values)
- lite_transformer: global attention || depth-wise conv blocks (CCEM LCEB)
- fusion: the patch-embedded cross-modal fusion block, agent or full cross-attention (CCEM LCFB
  and encoder exchange)
- tcm: window self-attention (Swin) blocks, TCM / prompted TCM blocks, SWAtten, enhanced
  spatial attention and structure-prior fusion
Paper modules (mmcodec.models.lu2022, .ccem, .rgbd_tcm) import blocks from here.
"""
from mmcodec.layers.conv import (MaskedConv2d, ResidualBlock, analysis_transform, conv, deconv, hyper_analysis,
                                 hyper_synthesis_mean_scale, ste_round, synthesis_transform)
from mmcodec.layers.window_attention import (PatchCrossAttention, SwinCrossAttentionBlock,
                                             WindowCrossAttention, window_merge, window_partition)

__all__ = ["MaskedConv2d", "ResidualBlock", "analysis_transform", "conv", "deconv", "hyper_analysis",
           "hyper_synthesis_mean_scale", "ste_round", "synthesis_transform"]
__all__ += ["PatchCrossAttention", "SwinCrossAttentionBlock", "WindowCrossAttention", "window_merge",
            "window_partition"]
from mmcodec.layers.agent_attention import AgentAttention, ChannelLayerNorm  # noqa: E402
from mmcodec.layers.fusion import FUSION_ATTENTION, FusionBlock  # noqa: E402
from mmcodec.layers.lite_transformer import GlobalAttention, LiteTransformer, LiteTransformerBlock  # noqa: E402

__all__ += ["AgentAttention", "ChannelLayerNorm", "FUSION_ATTENTION", "FusionBlock", "GlobalAttention", "LiteTransformer",
            "LiteTransformerBlock"]
from mmcodec.layers.tcm import (EnhancedSpatialAttention, PromptedTCMBlock, StructurePriorFusion, SwinBlock,  # noqa: E402
                                SWAtten, TCMBlock, TCMStage, WindowAttention)

__all__ += ["EnhancedSpatialAttention", "PromptedTCMBlock", "StructurePriorFusion", "SwinBlock", "SWAtten",
            "TCMBlock", "TCMStage", "WindowAttention"]
