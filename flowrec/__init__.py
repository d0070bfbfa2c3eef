"""flowrec: collaborative filtering and tensor completion trained by FlowAdam.

The names below are the entry points most users need. Loaders, synthetic data
and split helpers are in :mod:`flowrec.datasets`, error and ranking metrics in
:mod:`flowrec.metrics`, and the comparison harness in :mod:`flowrec.compare`.
"""

from flowrec.models import LowRankMF
from flowrec.optim import FlowAdam, make_optimizer

__version__ = "0.1.0.dev0"

__all__ = ["FlowAdam", "LowRankMF", "make_optimizer", "__version__"]
