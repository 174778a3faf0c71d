"""Benchmark harness behind `mmcodec bench`: metrics, classical codecs, BD-rate, RD plots,
complexity. See mmcodec/bench/runner.py for the command and its outputs."""
from mmcodec.bench.bdrate import BDResult, bd
from mmcodec.bench.classical import CODECS, get_codec
from mmcodec.bench.metrics import modality_metrics, pair_metrics

__all__ = ["BDResult", "bd", "CODECS", "get_codec", "modality_metrics", "pair_metrics"]
