"""Brain MRI data: sources, cached HR tensors, splits, and the on-device degradation to LR.

Import from the submodules (`medivision.data.datamodule.SRDataModule`, `medivision.data.degradations`):
this package imports nothing itself, so inference tools load without Lightning.
"""
