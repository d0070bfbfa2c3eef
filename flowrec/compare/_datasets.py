"""Datasets and train/test splits known to the comparison harness."""

from dataclasses import dataclass

import pandas as pd

__all__ = ["DATASETS", "Fold", "make_folds"]

MOVIELENS_100K_FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


@dataclass(frozen=True)
class DatasetSpec:
    """Loading and splitting settings of one dataset in the harness.

    Attributes
    ----------
    description : str
        One line for ``flowrec datasets``.
    files : tuple of str
        Paths relative to the data folder where the loader finds the data,
        any one of them being enough; empty when nothing is read.
    splits : tuple of str
        Accepted values of ``split``; the first is the default.
    report_nmae : bool
        Whether the summary shows NMAE, the figure usually published for it.
    """

    description: str
    files: tuple
    splits: tuple
    report_nmae: bool = False


def _jester_files(stem, archive):
    names = tuple(f"jester/{stem}.{extension}" for extension in ("xls", "xlsx", "csv", "zip"))
    return (f"jester/{archive}",) + names


DATASETS = {
    "synthetic": DatasetSpec(
        "200 x 200 rank-5 matrix with entries of RMS 1; 20% of the cells observed with "
        "Gaussian noise 0.1, split 80/20 into train and test (generated, no files)",
        (),
        ("holdout",),
    ),
    "movielens-100k": DatasetSpec(
        "MovieLens 100K: 100,000 ratings 1-5 of 1,682 movies by 943 users",
        ("ml-100k/", "ml-100k.zip"),
        ("u1-u5",) + MOVIELENS_100K_FOLDS + ("random",),
    ),
    "movielens-latest-small": DatasetSpec(
        "MovieLens latest small: about 100,000 ratings 0.5-5 by 610 users, random 80/20 split",
        ("ml-latest-small/", "ml-latest-small.zip"),
        ("random",),
    ),
    "jester-1": DatasetSpec(
        "Jester dataset 1, part 1: ratings -10 to 10 of 100 jokes by 24,983 users, "
        "random 80/20 split",
        _jester_files("jester-data-1", "jester_dataset_1_1.zip"),
        ("random",),
        report_nmae=True,
    ),
    "jester-4": DatasetSpec(
        "Jester dataset 4: 106,489 ratings -10 to 10 of 136 jokes by 7,699 users, "
        "the 541 ratings outside that scale clipped to it, random 80/20 split",
        ("jester/Dataset4JokeSet.xlsx", "jester/Dataset4JokeSet.xls"),
        ("random",),
        report_nmae=True,
    ),
}


@dataclass(frozen=True)
class Fold:
    """One train/test split used by every model of a comparison.

    Attributes
    ----------
    name : str
        ``"u1"`` ... for the official MovieLens folds, else the split name.
    seed : int
        Seed of the split (for random splits and synthetic data) and of the models.
    train, test : pandas.DataFrame
        Columns ``user_id``, ``item_id``, ``rating``.
    rating_scale : tuple of (float, float) or None
        None when the data has no fixed scale (synthetic data).
    """

    name: str
    seed: int
    train: pd.DataFrame
    test: pd.DataFrame
    rating_scale: tuple | None


def check_dataset(dataset, split):
    """Return the split name to use, raising ValueError for an unknown dataset or split."""
    spec = DATASETS.get(dataset)
    if spec is None:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    if split is None:
        return spec.splits[0]
    if split not in spec.splits:
        raise ValueError(
            f"split {split!r} is not available for {dataset}; choose from {', '.join(spec.splits)}"
        )
    return split


def _columns(frame):
    return frame[["user_id", "item_id", "rating"]].reset_index(drop=True)


def make_folds(dataset, split, seeds, data_home=None):
    """Load ``dataset`` and return its folds, one per (official fold or seed) combination.

    Official MovieLens 100K folds do not depend on the seed, so they are read
    once and repeated for every seed. Random splits and synthetic data are
    drawn again for each seed.

    Raises
    ------
    ValueError
        If the dataset or split is unknown.
    DatasetNotFoundError
        If the dataset's files are not in ``data_home``.
    """
    split = check_dataset(dataset, split)
    from flowrec import datasets

    folds = []
    if dataset == "synthetic":
        for seed in seeds:
            problem = datasets.make_low_rank_matrix(
                n_users=200, n_items=200, rank=5, density=0.2, noise=0.1, random_state=seed
            )
            folds.append(Fold(split, seed, _columns(problem.train), _columns(problem.test), None))
        return folds

    if dataset == "movielens-100k" and split != "random":
        names = ("u1", "u2", "u3", "u4", "u5") if split == "u1-u5" else (split,)
        for name in names:
            train, test = datasets.load_movielens_100k_split(name, data_home=data_home)
            for seed in seeds:
                folds.append(Fold(name, seed, _columns(train), _columns(test), (1.0, 5.0)))
        return folds

    if dataset == "movielens-100k":
        data = datasets.load_movielens("100k", data_home=data_home)
    elif dataset == "movielens-latest-small":
        data = datasets.load_movielens("latest-small", data_home=data_home)
    elif dataset == "jester-1":
        data = datasets.load_jester("1-1", data_home=data_home)
    else:
        data = datasets.load_jester("4", data_home=data_home, out_of_range="clip")
    scale = tuple(float(v) for v in data.rating_scale)
    for seed in seeds:
        train, test = datasets.random_split(data.ratings, test_size=0.2, random_state=seed)
        folds.append(Fold(split, seed, _columns(train), _columns(test), scale))
    return folds
