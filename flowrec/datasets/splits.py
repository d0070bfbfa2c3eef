"""Train/test splits of a ratings DataFrame.

Every function splits rows, so train and test never share a row, and each
first checks that no (user_id, item_id) pair occurs twice, so they never
share a pair either. Outputs keep the input's columns and get a fresh
0..n-1 index; the input is not modified. Randomness comes only from
``random_state`` through a numpy Generator, so one seed gives one split.
"""

import logging
import numbers
import warnings

import numpy as np
import pandas as pd

from flowrec.datasets._base import check_random_state, check_unique_pairs

logger = logging.getLogger(__name__)


def _check_ratings(ratings, required=("user_id", "item_id")):
    if not isinstance(ratings, pd.DataFrame):
        raise TypeError(f"ratings must be a pandas DataFrame, got {type(ratings).__name__}")
    missing = [column for column in required if column not in ratings.columns]
    if missing:
        raise ValueError(
            f"ratings lacks the column(s) {', '.join(missing)}; it has "
            f"{', '.join(map(str, ratings.columns))}"
        )
    if len(ratings) < 2:
        raise ValueError(f"ratings must have at least 2 rows to split, got {len(ratings)}")
    check_unique_pairs(ratings, "ratings")


def _n_test_rows(test_size, n_rows):
    """Return the number of test rows for a fraction or an absolute count."""
    if isinstance(test_size, bool):
        raise TypeError("test_size must be a float in (0, 1) or an int, got a bool")
    if isinstance(test_size, numbers.Integral):
        if not 1 <= test_size <= n_rows - 1:
            raise ValueError(
                f"test_size as an int must be between 1 and {n_rows - 1} (rows - 1), "
                f"got {test_size}"
            )
        return int(test_size)
    if isinstance(test_size, numbers.Real) and 0 < test_size < 1:
        return min(max(int(round(test_size * n_rows)), 1), n_rows - 1)
    raise ValueError(
        f"test_size must be a float in (0, 1) or an int row count, got {test_size!r}"
    )


def _take(ratings, mask):
    return ratings.loc[mask].reset_index(drop=True)


def random_split(ratings, test_size=0.2, random_state=None):
    """Split ratings into train and test rows uniformly at random.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Columns ``user_id``, ``item_id`` and any others, with unique pairs.
    test_size : float or int, default=0.2
        Fraction of rows in (0, 1), rounded to the nearest count and kept
        between 1 and ``len(ratings) - 1``, or an absolute number of rows.
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator for the shuffle.

    Returns
    -------
    train, test : pandas.DataFrame

    Examples
    --------
    >>> import pandas as pd
    >>> from flowrec.datasets import random_split
    >>> ratings = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 1, 3, 2],
    ...                         "rating": [5.0, 3.0, 4.0, 1.0, 2.0]})
    >>> train, test = random_split(ratings, test_size=0.4, random_state=0)
    >>> len(train), len(test)
    (3, 2)
    """
    _check_ratings(ratings)
    rng = check_random_state(random_state)
    n_test = _n_test_rows(test_size, len(ratings))

    is_test = np.zeros(len(ratings), dtype=bool)
    is_test[rng.permutation(len(ratings))[:n_test]] = True
    return _take(ratings, ~is_test), _take(ratings, is_test)


def per_user_split(ratings, test_size=0.2, random_state=None):
    """Hold out a share of each user's ratings, chosen at random.

    Each user keeps at least one training rating. With a fraction, a user
    with ``n`` ratings gets ``round(test_size * n)`` test ratings, capped at
    ``n - 1``. With an int ``k`` (leave-k-out), a user gets ``k`` test
    ratings when they have more than ``k``. Users with ``k`` or fewer stay
    wholly in train, and their number is logged.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Columns ``user_id``, ``item_id`` and any others, with unique pairs.
    test_size : float in (0, 1) or int >= 1, default=0.2
        Share of each user's ratings, or their number, to hold out.
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator.

    Returns
    -------
    train, test : pandas.DataFrame

    Examples
    --------
    >>> import pandas as pd
    >>> from flowrec.datasets import per_user_split
    >>> ratings = pd.DataFrame({"user_id": [1, 1, 1, 2, 2], "item_id": [1, 2, 3, 1, 2],
    ...                         "rating": [5.0, 3.0, 4.0, 1.0, 2.0]})
    >>> train, test = per_user_split(ratings, test_size=1, random_state=0)
    >>> sorted(test["user_id"])
    [1, 2]
    """
    _check_ratings(ratings)
    rng = check_random_state(random_state)
    leave_k_out = _check_per_user_size(test_size)

    users = ratings["user_id"].to_numpy()
    # group rows by user in a random order within each user
    order = rng.permutation(len(ratings))
    order = order[np.argsort(users[order], kind="stable")]
    _, starts, counts = np.unique(users[order], return_index=True, return_counts=True)

    if leave_k_out:
        n_test = np.where(counts > test_size, test_size, 0)
        n_skipped = int((counts <= test_size).sum())
        if n_skipped:
            logger.info(
                "per_user_split: %d users have %d or fewer ratings and stay wholly in train",
                n_skipped,
                test_size,
            )
    else:
        n_test = np.minimum(np.round(test_size * counts).astype(int), counts - 1)

    rank_in_user = np.arange(len(order)) - np.repeat(starts, counts)
    is_test = np.zeros(len(ratings), dtype=bool)
    is_test[order] = rank_in_user < np.repeat(n_test, counts)
    return _take(ratings, ~is_test), _take(ratings, is_test)


def _check_per_user_size(test_size):
    """Return True for a leave-k-out count, False for a fraction."""
    if isinstance(test_size, bool):
        raise TypeError("test_size must be a float in (0, 1) or an int >= 1, got a bool")
    if isinstance(test_size, numbers.Integral):
        if test_size < 1:
            raise ValueError(f"test_size as an int (leave-k-out) must be >= 1, got {test_size}")
        return True
    if isinstance(test_size, numbers.Real) and 0 < test_size < 1:
        return False
    raise ValueError(
        f"test_size must be a float in (0, 1) or an int >= 1, got {test_size!r}"
    )


def temporal_split(ratings, test_size=0.2, *, per_user=False):
    """Split ratings by time so that the test set lies in the future.

    With ``per_user=False`` (the default) one global cutoff time is used:
    every training timestamp is strictly earlier than every test timestamp,
    so no model sees the future. The cutoff is the timestamp of the row at
    position ``len(ratings) - n_test`` in time order; all rows sharing that
    timestamp go to test, so ties can make the test set larger than asked.

    ``per_user=True`` instead holds out the latest ratings of each user as
    in :func:`per_user_split`, ties broken by row order. One user's test
    rating can then be older than another user's training rating, which
    leaks future information into training; a UserWarning says so.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Columns ``user_id``, ``item_id`` and ``timestamp`` (numbers or
        datetimes), with unique pairs.
    test_size : float or int, default=0.2
        Fraction or number of rows to hold out; per user with
        ``per_user=True``.
    per_user : bool, default=False
        Use a cutoff per user instead of one global cutoff.

    Returns
    -------
    train, test : pandas.DataFrame

    Raises
    ------
    ValueError
        Every row has the same timestamp as the cutoff, so train would be empty.

    Examples
    --------
    >>> import pandas as pd
    >>> from flowrec.datasets import temporal_split
    >>> ratings = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [1, 2, 1, 2],
    ...                         "rating": [5.0, 3.0, 4.0, 1.0], "timestamp": [10, 40, 20, 30]})
    >>> train, test = temporal_split(ratings, test_size=0.5)
    >>> list(train["timestamp"]), list(test["timestamp"])
    ([10, 20], [40, 30])
    """
    _check_ratings(ratings, required=("user_id", "item_id", "timestamp"))
    if ratings["timestamp"].isna().any():
        raise ValueError("timestamp has missing values; drop or fill them before splitting")

    if per_user:
        return _temporal_split_per_user(ratings, test_size)

    n_test = _n_test_rows(test_size, len(ratings))
    timestamps = ratings["timestamp"].to_numpy()
    cutoff = np.sort(timestamps, kind="stable")[len(ratings) - n_test]
    is_test = timestamps >= cutoff
    if is_test.all():
        raise ValueError(
            f"every rating has a timestamp >= the cutoff {cutoff}, so train would be "
            "empty; use a smaller test_size"
        )
    if is_test.sum() > n_test:
        logger.info(
            "temporal_split: %d ratings share the cutoff time %s, so test has %d rows "
            "instead of %d",
            int((timestamps == cutoff).sum()),
            cutoff,
            int(is_test.sum()),
            n_test,
        )
    return _take(ratings, ~is_test), _take(ratings, is_test)


def _temporal_split_per_user(ratings, test_size):
    warnings.warn(
        "temporal_split(per_user=True) holds out each user's latest ratings, so "
        "training can contain ratings made after some test ratings of other users; "
        "use the default global cutoff to avoid this leak",
        UserWarning,
        stacklevel=3,
    )
    leave_k_out = _check_per_user_size(test_size)
    users = ratings["user_id"].to_numpy()
    # latest first within each user, ties kept in row order
    by_time = np.argsort(-_as_number(ratings["timestamp"]), kind="stable")
    order = by_time[np.argsort(users[by_time], kind="stable")]
    _, starts, counts = np.unique(users[order], return_index=True, return_counts=True)
    if leave_k_out:
        n_test = np.where(counts > test_size, test_size, 0)
    else:
        n_test = np.minimum(np.round(test_size * counts).astype(int), counts - 1)

    rank_in_user = np.arange(len(order)) - np.repeat(starts, counts)
    is_test = np.zeros(len(ratings), dtype=bool)
    is_test[order] = rank_in_user < np.repeat(n_test, counts)
    return _take(ratings, ~is_test), _take(ratings, is_test)


def _as_number(timestamps):
    if pd.api.types.is_datetime64_any_dtype(timestamps):
        return timestamps.to_numpy().astype("datetime64[ns]").astype("int64")
    if pd.api.types.is_integer_dtype(timestamps):
        # float64 would merge integer times above 2**53, such as epoch nanoseconds
        return timestamps.to_numpy(dtype="int64")
    return timestamps.to_numpy(dtype="float64")


def kfold_split(ratings, n_splits=5, random_state=None):
    """Yield (train, test) pairs of a k-fold split of the rows.

    Rows are shuffled once and cut into ``n_splits`` folds whose sizes
    differ by at most one. Each fold is the test set once, so the test
    sets partition the ratings.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Columns ``user_id``, ``item_id`` and any others, with unique pairs.
    n_splits : int, default=5
        Number of folds, between 2 and ``len(ratings)``.
    random_state : int, numpy.random.Generator or None, default=None
        Seed or generator for the shuffle.

    Returns
    -------
    iterator of (train, test) pandas.DataFrame pairs

    Examples
    --------
    >>> import pandas as pd
    >>> from flowrec.datasets import kfold_split
    >>> ratings = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [1, 2, 1, 2],
    ...                         "rating": [5.0, 3.0, 4.0, 1.0]})
    >>> [len(test) for _, test in kfold_split(ratings, n_splits=2, random_state=0)]
    [2, 2]
    """
    _check_ratings(ratings)
    if isinstance(n_splits, bool) or not isinstance(n_splits, numbers.Integral):
        raise TypeError(f"n_splits must be an int, got {type(n_splits).__name__}")
    if not 2 <= n_splits <= len(ratings):
        raise ValueError(
            f"n_splits must be between 2 and the number of rows ({len(ratings)}), "
            f"got {n_splits}"
        )
    rng = check_random_state(random_state)
    fold_of_row = np.empty(len(ratings), dtype=np.int64)
    fold_of_row[rng.permutation(len(ratings))] = np.arange(len(ratings)) % n_splits
    # arguments are checked above, at the call, not at the first next()
    return _iterate_folds(ratings, fold_of_row, n_splits)


def _iterate_folds(ratings, fold_of_row, n_splits):
    for fold in range(n_splits):
        is_test = fold_of_row == fold
        yield _take(ratings, ~is_test), _take(ratings, is_test)
