"""The `.mmc` pair container (see docs/bitstream.md)."""
from mmcodec.bitstream.container import Container, StreamInfo, MAGIC, FORMAT_VERSION, pack, unpack

__all__ = ["Container", "StreamInfo", "MAGIC", "FORMAT_VERSION", "pack", "unpack"]
