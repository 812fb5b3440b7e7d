"""Third-party notices that say nothing about a MediVision run, silenced by their exact text so that every
other warning still shows. Called once by the commands that build a Trainer."""

import logging
import warnings

# Lightning's own pytree helper builds torch's deprecated LeafSpec on every fit.
_LEAFSPEC = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
# Lightning's advertisement for its hosted logger, printed whenever a Trainer is built without it.
_TIP = "💡 Tip:"


def silence_third_party_notices() -> None:
    """Drop the notices above from warnings and from Lightning's rank-zero log; idempotent."""
    warnings.filterwarnings("ignore", message=_LEAFSPEC, category=FutureWarning)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        rank_zero = logging.getLogger(name)
        if _drop_tips not in rank_zero.filters:
            rank_zero.addFilter(_drop_tips)


def _drop_tips(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_TIP)
