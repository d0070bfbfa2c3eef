"""Rating-prediction estimators trained full-batch by torch optimizers."""

from flowrec.models.mf import LowRankMF, fit_low_rank_mf

__all__ = ["LowRankMF", "fit_low_rank_mf"]
