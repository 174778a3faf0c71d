"""Rate and distortion of the integer entropy-parameter path against the float path
(docs/bitstream.md, Determinism): the same model, the same pairs, both stream formats.

    python scripts/exact_params_rd.py [--model ir-vi/separate] [--pairs 10] [--qualities 1 4]
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import mmcodec
from mmcodec.bench.metrics import psnr
from mmcodec.bitstream import unpack
from mmcodec.data.images import load_modality
from mmcodec.data.pairs import standard_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ir-vi/separate")
    parser.add_argument("--split", default="roadscene-test")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--qualities", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    torch.set_num_threads(1)
    codec = mmcodec.load(args.model)
    records = standard_split(args.split)[:args.pairs]
    images = [{m: load_modality(m, r.paths[m]) for m in codec.modalities} for r in records]
    rows = []
    for q in args.qualities:
        totals = {}
        for exact in (False, True):
            codec.exact_entropy_parameters = exact
            bits, pixels, psnrs = 0, 0, []
            for ims in images:
                blob, recon = codec.encode(ims, q)
                c = unpack(blob)
                assert c.exact_params == exact
                bits += 8 * sum(c.stream_bytes().values())   # payload only: headers are equal
                pixels += max(im.height * im.width for im in ims.values())
                psnrs += [psnr(ims[m].to_integer(), recon[m]) for m in ims]
                # every stream decodes to the encoder's reconstruction
                assert all(np.array_equal(a, recon[m]) for m, a in mmcodec.decompress(blob).items())
            totals[exact] = {"pair_bpp": bits / pixels, "mean_psnr": float(np.mean(psnrs))}
        change = totals[True]["pair_bpp"] / totals[False]["pair_bpp"] - 1
        rows.append({"quality": q, "float": totals[False], "integer": totals[True],
                     "bpp_change_percent": 100 * change,
                     "psnr_change_db": totals[True]["mean_psnr"] - totals[False]["mean_psnr"]})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"model": args.model, "split": args.split, "pairs": len(records), "rows": rows}))


if __name__ == "__main__":
    main()
