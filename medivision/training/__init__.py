"""Training: the LightningModule, its losses, the EMA generator, the NaN guard, callbacks and loggers."""
