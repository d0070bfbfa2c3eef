"""Rating-prediction estimators trained full-batch by torch optimizers."""

from flowrec.models.mf import LowRankMF

__all__ = ["LowRankMF"]
