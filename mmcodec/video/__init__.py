"""Multi-modal video coding (issue 25): FVC-style P-frames in feature space per modality,
Lu et al.'s infrared-guided visible codec, I-frames by the shipped image pair codec, and the
`.mmv` container (mmcodec.bitstream.video_container)."""
