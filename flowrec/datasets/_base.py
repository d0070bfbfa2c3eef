"""Dataset container, cache folder lookup and checks shared by the loaders."""

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flowrec.exceptions import DuplicateRatingsError

DATA_HOME_ENV = "FLOWREC_DATA"
DEFAULT_DATA_HOME = Path("~") / "flowrec_data"


def get_data_home(data_home=None):
    """Return the folder where flowrec looks for and caches dataset files.

    The folder is, in order of precedence: ``data_home`` when given, the
    ``FLOWREC_DATA`` environment variable when set and not empty, else
    ``~/flowrec_data``. A leading ``~`` is expanded. The folder is not
    created here; a download creates it when it first writes a file.

    Parameters
    ----------
    data_home : str or os.PathLike, default=None
        Folder to use instead of the environment variable and the default.

    Returns
    -------
    pathlib.Path
        The cache folder, which may not exist yet.

    Examples
    --------
    >>> from flowrec.datasets import get_data_home
    >>> get_data_home("/tmp/my_data").as_posix()
    '/tmp/my_data'
    """
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or DEFAULT_DATA_HOME
    return Path(data_home).expanduser()


@dataclass(repr=False)
class RatingDataset:
    """Ratings of one dataset release with the tables it ships.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"movielens-100k"`` or ``"jester-1-1"``.
    ratings : pandas.DataFrame
        One row per rating with columns ``user_id``, ``item_id``, ``rating``
        and, where the release records it, ``timestamp`` (Unix seconds).
        Ids are the release's own ids.
    items : pandas.DataFrame or None
        Item metadata keyed by ``item_id`` (titles, genres, joke texts), or
        None when the release ships none or it was not found.
    users : pandas.DataFrame or None
        User metadata keyed by ``user_id`` (demographics), or None.
    rating_scale : tuple of float
        ``(min, max)`` of the scale documented by the publisher.
    description : str
        One paragraph on what the data is, its size and its quirks.
    source : pathlib.Path or None
        The archive, folder or file the ratings were read from.
    """

    name: str
    ratings: pd.DataFrame
    items: pd.DataFrame | None
    users: pd.DataFrame | None
    rating_scale: tuple
    description: str
    source: Path | None = field(default=None)

    @property
    def n_ratings(self):
        """Number of rating rows."""
        return len(self.ratings)

    @property
    def n_users(self):
        """Number of distinct users with at least one rating."""
        return int(self.ratings["user_id"].nunique())

    @property
    def n_items(self):
        """Number of distinct items with at least one rating."""
        return int(self.ratings["item_id"].nunique())

    def __repr__(self):
        low, high = self.rating_scale
        return (
            f"RatingDataset(name={self.name!r}, n_ratings={self.n_ratings}, "
            f"n_users={self.n_users}, n_items={self.n_items}, "
            f"rating_scale=({low:g}, {high:g}))"
        )


def check_unique_pairs(ratings, where):
    """Raise DuplicateRatingsError if a (user_id, item_id) pair occurs twice.

    ``where`` names the file or table in the message.
    """
    duplicated = ratings.duplicated(["user_id", "item_id"], keep=False)
    if not duplicated.any():
        return
    repeated = ratings.loc[duplicated, ["user_id", "item_id"]]
    counts = repeated.value_counts()
    (user_id, item_id), count = next(iter(counts.items()))
    raise DuplicateRatingsError(
        f"{where} contains {len(counts)} (user_id, item_id) pairs more than "
        f"once, e.g. user {user_id!r} and item {item_id!r} occur {count} times; "
        "aggregate them (for example keep the latest rating) before using them"
    )


def check_random_state(random_state):
    """Return a numpy Generator for an int seed, None or an existing Generator."""
    if random_state is None or isinstance(random_state, (int, np.integer)):
        if random_state is not None and random_state < 0:
            raise ValueError(
                f"random_state must be a non-negative int, None or a "
                f"numpy.random.Generator, got {random_state}"
            )
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    raise TypeError(
        "random_state must be a non-negative int, None or a "
        f"numpy.random.Generator, got {type(random_state).__name__}"
    )
