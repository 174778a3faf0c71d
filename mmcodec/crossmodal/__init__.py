"""Cross-modal coding: one idea, four placements. Each module here is one placement; the
paper modules under mmcodec.models only wire these pieces into `ModalityPipeline` codecs
(mmcodec.modality_codec) through its hooks.

- `transforms`: conditioning *in the transforms*, on the decoded other modality (the
  decoder can repeat it): Lu et al.'s channel-wise (CA, side information) and element-wise
  (EA) alignment, spatial alignment by window cross-attention between decoder stages (SA)
  and its FeatCat ablation; the decoder-side variant of the RGB-D models.
- `entropy_context`: context *in the entropy model*: CCEM's LCFB, the other modality's
  decoded latent as context for a channel-slice codec's slice parameters.
- `input_fusion`: fusion *at the encoder input*, from the uncoded other modality (encoder
  only, not sent): the RGB-D 4-channel input, structure-prior fusion of a side analysis,
  and prompts for the TCM attention windows.
- `latent_exchange`: exchange *between the latents before quantisation* (CCEM's encoder-side
  cross-attention): each modality's latent gets a residual from the other's.

Direction matters for decoding: the first two need the other modality decoded first
(`PairModel.requires`); the last two cost the decoder nothing.
"""
