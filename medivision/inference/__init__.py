"""Using a trained model: loading it from any file, tiling large images, data consistency."""
