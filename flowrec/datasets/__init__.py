"""Rating datasets, synthetic ground truth and train/test splits.

Loaders read the official releases from a local cache (see
:func:`get_data_home`) or download them on request; flowrec ships no data.
"""

from flowrec.datasets._base import RatingDataset, get_data_home
from flowrec.datasets.jester import load_jester
from flowrec.datasets.matrix import ratings_from_matrix
from flowrec.datasets.movielens import load_movielens, load_movielens_100k_split
from flowrec.datasets.splits import kfold_split, per_user_split, random_split, temporal_split
from flowrec.datasets.synthetic import (
    SyntheticMatrix,
    SyntheticTensor,
    make_low_rank_matrix,
    make_low_rank_tensor,
)

__all__ = [
    "RatingDataset",
    "SyntheticMatrix",
    "SyntheticTensor",
    "get_data_home",
    "kfold_split",
    "load_jester",
    "load_movielens",
    "load_movielens_100k_split",
    "make_low_rank_matrix",
    "make_low_rank_tensor",
    "per_user_split",
    "random_split",
    "ratings_from_matrix",
    "temporal_split",
]
