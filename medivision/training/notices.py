"""Third-party notices that say nothing about a MediVision run, silenced by their exact text so that every
other warning still shows. Called once by the commands that build a Trainer (and by the tests' conftest)."""

import logging
import warnings

# Lightning's own pytree helper builds torch's deprecated LeafSpec on every fit.
_LEAFSPEC = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
# The model summary sizes bf16/16-mixed weights as float32; the parameter counts it prints stay right.
_SUMMARY_PRECISION = r"Precision .* is not supported by the model summary"
# StepCheckpoint (callbacks.last_checkpoint) saves after the optimizer steps on purpose: resume goes on from there.
_AFTER_OPTIMIZATION = r"Using ModelCheckpoint with manual optimization and every_n_train_steps"
# A resumed run writes its checkpoints into its own, non-empty folder (ckpt_path=last).
_RESUMED_FOLDER = r"Checkpoint directory .* exists and is not empty"
# Lightning's advertisement for its hosted logger, printed whenever a Trainer is built without it.
_TIP = "💡 Tip:"


def silence_third_party_notices(resuming: bool = False) -> None:
    """Drop the notices above from warnings and from Lightning's rank-zero log; the non-empty checkpoint folder
    only when `resuming`. Idempotent."""
    warnings.filterwarnings("ignore", message=_LEAFSPEC, category=FutureWarning)
    for message in (_SUMMARY_PRECISION, _AFTER_OPTIMIZATION, *([_RESUMED_FOLDER] if resuming else [])):
        warnings.filterwarnings("ignore", message=message)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        rank_zero = logging.getLogger(name)
        if _drop_tips not in rank_zero.filters:
            rank_zero.addFilter(_drop_tips)


def _drop_tips(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_TIP)
