"""Cross-modal fusion at the encoder input (the RGB-D thesis on LIC-TCM): the target
modality's encoder sees the *uncoded* side modality; nothing extra is sent, and the target
decodes from its own stream.

- "concat4": target and side stacked as one 4-channel input (`SideCondition.side_input`).
- "convfusion": a second analysis pipeline over the side modality (`SideAnalysis`) whose
  stage features are added to the target encoder's stages by structure-prior fusion
  (mmcodec.layers.StructurePriorFusion, with enhanced spatial attention) through
  `mmcodec.modality_codec.stage_fusion`.
- "prompt": a feature pyramid over the side modality (`ConvPyramid`) gives prompt tokens
  that join the keys and values of every attention window of the target's TCM stages.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from compressai.layers import ResidualBlockWithStride

from mmcodec.layers import TCMStage
from mmcodec.layers.conv import standard_layout
from mmcodec.modality_codec import FeatureHook


@dataclass
class SideCondition:
    """What the target codec of an RGB-D pair gets from the side modality for one image:
    encoder-side inputs (from the uncoded side image) and, for decoder-side fusion, a
    synthesis hook (from its reconstruction)."""

    side_input: torch.Tensor | None = None      # concat4: stacked with the target image
    prompts: list[torch.Tensor] | None = None   # prompt maps for the target encoder's stages
    encoder_fuse: FeatureHook | None = None     # convfusion: after each encoder stage
    decoder_fuse: FeatureHook | None = None     # decoder side: after each synthesis stage


def four_channel_input(target: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    return torch.cat([target, side], 1)


class SideAnalysis(nn.Module):
    """The second analysis pipeline of "convfusion": features of the side modality at the
    resolutions of the target encoder's stages 0..num_stages-1 (1/2, 1/4, 1/8)."""

    def __init__(self, in_ch: int, C: int, num_stages: int, depths: list[int], head_dims: list[int],
                 window: int) -> None:
        super().__init__()
        width = 2 * C
        self.downs = nn.ModuleList(ResidualBlockWithStride(in_ch if i == 0 else width, width, 2)
                                   for i in range(num_stages))
        self.stages = nn.ModuleList(TCMStage(C, depths[i], head_dims[i], window) for i in range(num_stages))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, feats = standard_layout(x), []
        for down, stage in zip(self.downs, self.stages):
            x = stage(down(x))
            feats.append(x)
        return feats


class ConvPyramid(nn.Module):
    """Cheap feature pyramid (stride-2 3x3 convs): features at 1/2, 1/4, 1/8 of the input.
    Used for prompt maps (encoder) and for the decoder-side reference features."""

    def __init__(self, in_ch: int, width: int, out_ch: int) -> None:
        super().__init__()
        self.downs = nn.ModuleList(nn.Sequential(nn.Conv2d(in_ch if i == 0 else width, width, 3, 2, 1), nn.GELU())
                                   for i in range(3))
        self.heads = nn.ModuleList(nn.Conv2d(width, out_ch, 1) for _ in range(3))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, feats = standard_layout(x), []
        for down, head in zip(self.downs, self.heads):
            x = down(x)
            feats.append(head(x))
        return feats
