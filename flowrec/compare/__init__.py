"""Side-by-side comparison of recommenders and optimizers on shared splits.

:func:`compare` fits every model on the same train/test folds and seeds and
reports held-out RMSE, MAE (and NMAE for Jester), ranking metrics where asked,
fit time, epochs and gradient evaluations. ``flowrec compare`` on the command
line runs it with the presets in :data:`PRESETS`.
"""

from flowrec.compare._datasets import DATASETS, Fold, make_folds
from flowrec.compare._presets import (
    DEFAULT_MODELS,
    PRESETS,
    RECOVERY_MODELS,
    default_models,
    make_model,
)
from flowrec.compare._runner import ComparisonResult, compare

__all__ = [
    "compare",
    "ComparisonResult",
    "PRESETS",
    "DEFAULT_MODELS",
    "RECOVERY_MODELS",
    "default_models",
    "make_model",
    "DATASETS",
    "Fold",
    "make_folds",
]
