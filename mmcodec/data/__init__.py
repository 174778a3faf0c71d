"""Image and pair loading (8/16-bit), pair discovery, training datasets."""
from mmcodec.data.images import ModalityImage, read_image, write_image, load_modality
from mmcodec.data.pairs import PairRecord, find_pairs, data_root, read_split

__all__ = ["ModalityImage", "read_image", "write_image", "load_modality", "PairRecord",
           "find_pairs", "data_root", "read_split"]
