"""Training: RD loss, recipes, checkpoints/resume, and the ledger of training campaigns."""
from mmcodec.train.config import TrainConfig, load_config
from mmcodec.train.trainer import train

__all__ = ["TrainConfig", "load_config", "train"]
