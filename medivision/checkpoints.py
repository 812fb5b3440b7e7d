"""Loading checkpoints as data: tensors and plain containers only, never arbitrary pickled code."""

import pickle
import zipfile
from pathlib import Path

import torch


def load_checkpoint(path: str | Path) -> dict:
    """A Lightning checkpoint as a dict, loaded with `weights_only=True` onto the CPU.

    Raises FileNotFoundError for a missing file and ValueError, naming the file, for a truncated file,
    a non-checkpoint, or one that would need code to unpickle.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError) as error:
        raise ValueError(
            f"{path} cannot be loaded as a checkpoint (truncated, not a checkpoint, or it contains code "
            f"objects, which are refused): {str(error).splitlines()[0]}"
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a MediVision/Lightning checkpoint: it has no 'state_dict'")
    return checkpoint
