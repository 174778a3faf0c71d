"""Digests for golden-output tests, split by what is exact on every machine.

A `.mmc` file holds the entropy-coded latents (exact given the latents), a CRC of the
decoded latents (format versions 9-16) and a CRC of the float reconstruction. The reconstruction is not exact across CPUs: another SIMD kernel can
move a float across a rounding boundary and change one code value in a few pixels (most
often for 16-bit depth), which changes the CRC and so the file. So a golden test checks
- `coded_digest`: everything in the file but the reconstruction CRCs (header, streams,
  side information), exactly; the latent CRCs only of exact streams (see below);
- `reconstruction_means`: the decoded images' mean code values, within `MEAN_TOLERANCE`;
- the whole file's hash, only on a machine whose float kernels reproduce the recording
  machine's (`same_float_kernels`: a canary of conv and attention outputs).
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

import mmcodec
from mmcodec.bitstream import pack, unpack

MEAN_TOLERANCE = 0.05       # code values: a few one-step flips move a mean by far less
# sha256 prefix of `float_canary()` on the machine that recorded the golden tables.
RECORDING_CANARY = "b80e17959ce3e295"


def coded_digest(blob: bytes) -> str:
    c = unpack(blob)
    h = hashlib.sha256()
    for field in (c.model, c.weights, c.quality, c.version, getattr(c, "effort", 0), c.exact_params,
                  None if c.tiling is None else (c.tiling.tile_pixels, c.tiling.halo_pixels)):
        h.update(repr(field).encode())
    for m in c.modalities:
        info = m.to_json()
        info.pop("recon_crc")
        # The latent CRC (versions 9-16) hashes the decoded latents: exact on every machine for
        # exact streams (integer entropy parameters), so it counts there. A float-path stream's
        # latents (CCEM, LIC-TCM: float means and latent residual prediction) are not, like the
        # reconstruction. Streams without it (versions 1-8) hash as before latent CRCs existed.
        latent_crc = info.pop("latent_crc", None)
        if latent_crc is not None and c.exact_params:
            info["latent_crc"] = latent_crc
        if not info.get("grey_via_ir"):   # unflagged records hash as before the flag existed
            info.pop("grey_via_ir", None)
        h.update(repr(sorted(info.items())).encode())
    for name in sorted(c.streams):
        for part in c.streams[name]:
            h.update(len(part).to_bytes(4, "big") + part)
    h.update(c.side)
    return h.hexdigest()[:16]


def without_latent_crcs(blob: bytes) -> bytes:
    """The same file as mmcodec wrote it before latent CRCs (`Codec.latent_crcs = False`):
    format version - 8, one u32 less per modality record, everything else unchanged."""
    c = unpack(blob)
    for m in c.modalities:
        m.latent_crc = None
    return pack(c)


def file_digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:16]


def reconstruction_means(blob: bytes) -> dict[str, float]:
    return {m: round(float(np.asarray(img, np.float64).mean()), 3) for m, img in mmcodec.decompress(blob).items()}


def float_canary() -> str:
    """Hash of float outputs of the kernels the codecs use (convolutions of several shapes,
    a transposed convolution, GDN-like arithmetic, matmul + softmax), on fixed inputs."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 64, 64, generator=g)
    h = hashlib.sha256()
    with torch.no_grad():
        for c_in, c_out, k, s in ((3, 16, 5, 2), (16, 24, 5, 2), (24, 24, 3, 1), (24, 24, 1, 1)):
            w = torch.randn(c_out, c_in, k, k, generator=g) * 0.2
            x = torch.nn.functional.conv2d(x, w, stride=s, padding=k // 2)
            h.update(x.numpy().tobytes())
        wt = torch.randn(24, 12, 5, 5, generator=g) * 0.2
        y = torch.nn.functional.conv_transpose2d(x, wt, stride=2, padding=2, output_padding=1)
        y = y * torch.rsqrt(1.0 + 0.1 * y * y)
        h.update(y.numpy().tobytes())
        t = y.flatten(2).transpose(1, 2)[:, :64]
        h.update(((t @ t.transpose(1, 2)) * 0.1).softmax(-1).numpy().tobytes())
    return h.hexdigest()[:16]


def same_float_kernels() -> bool:
    return float_canary() == RECORDING_CANARY
