"""Brain MRI data: sources, cached HR tensors, splits, and the on-device degradation to LR."""

from medivision.data.datamodule import SRDataModule
from medivision.data.degradations import augment, degrade, upsample_bicubic
from medivision.data.sources import DataError

__all__ = ["DataError", "SRDataModule", "augment", "degrade", "upsample_bicubic"]
