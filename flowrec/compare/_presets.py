"""Named model presets for the comparison harness and the command line."""

from dataclasses import dataclass
from typing import Callable

__all__ = ["PRESETS", "DEFAULT_MODELS", "make_model"]


@dataclass(frozen=True)
class Preset:
    """A named, unfitted model configuration.

    Attributes
    ----------
    factory : callable
        Returns a new unfitted estimator with the preset's settings.
    description : str
        One line for ``flowrec compare --help`` and the docs.
    """

    factory: Callable
    description: str


def _low_rank_mf(optimizer):
    def build():
        from flowrec.models import LowRankMF

        return LowRankMF(optimizer=optimizer)

    return build


def _baseline(class_name):
    def build():
        from flowrec import baselines

        return getattr(baselines, class_name)()

    return build


PRESETS = {
    "flowadam": Preset(_low_rank_mf("flowadam"), "LowRankMF trained by FlowAdam (estimator defaults)"),
    "adam": Preset(_low_rank_mf("adam"), "LowRankMF trained by Adam (estimator defaults)"),
    "lion": Preset(_low_rank_mf("lion"), "LowRankMF trained by Lion"),
    "adabelief": Preset(_low_rank_mf("adabelief"), "LowRankMF trained by AdaBelief"),
    "surprise-svd": Preset(_baseline("SurpriseSVD"), "Surprise SVD with Surprise's defaults"),
    "surprise-baseline": Preset(
        _baseline("SurpriseBaselineOnly"), "Surprise BaselineOnly (mean plus user and item biases)"
    ),
    "surprise-svdpp": Preset(
        _baseline("SurpriseSVDpp"), "Surprise SVD++ with Surprise's defaults (slow)"
    ),
    "implicit-als": Preset(
        _baseline("ImplicitALS"), "implicit ALS on the ratings as interactions (ranking metrics only)"
    ),
}

DEFAULT_MODELS = ("flowadam", "adam", "surprise-svd", "surprise-baseline")


def make_model(name):
    """Build the unfitted estimator of the preset ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`PRESETS`.

    Returns
    -------
    estimator
        A new, unfitted scikit-learn-style estimator.

    Raises
    ------
    ValueError
        If ``name`` is not a preset.
    """
    preset = PRESETS.get(name)
    if preset is None:
        raise ValueError(
            f"unknown model preset {name!r}; choose from {', '.join(PRESETS)}, "
            "or pass an estimator object"
        )
    return preset.factory()
