"""The `.mmc` pair container (see docs/bitstream.md). Imports no torch: reading a header
needs only the standard library."""
from mmcodec.bitstream.container import Container, StreamInfo, MAGIC, FORMAT_VERSION, pack, unpack
from mmcodec.bitstream.layout import Tiling

__all__ = ["Container", "StreamInfo", "MAGIC", "FORMAT_VERSION", "Tiling", "pack", "unpack"]
