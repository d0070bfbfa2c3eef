"""Input parsing and id mapping shared by every flowrec estimator.

Estimators take interactions as (user id, item id) pairs plus ratings. This
module turns the accepted input forms into three 1-d arrays, maps caller ids to
contiguous indices and back, and merges duplicate (user, item) pairs.

Id cast rule
------------
Each id is classified into one *kind*:

* ``"number"``: Python and NumPy integers and floats (``bool`` excluded).
  A float with an integral value is the same id as that integer, so ``17``,
  ``np.int32(17)`` and ``17.0`` are one id. Non-integral floats are kept as
  float ids. NaN is a missing id and is rejected.
* ``"str"``: Python and NumPy strings.
* any other hashable type forms a kind of its own, named after the type
  (``"bytes"``, ``"bool"``, ``"tuple"`` ...).

One :class:`IdMap` contains ids of a single kind. Fitting on mixed kinds, or
transforming ids of another kind than the fitted one (a model fitted on
``17`` and queried with ``"17"``), raises :class:`~flowrec.exceptions.IdTypeError`.
Nothing is converted between strings and numbers, because doing so silently
would turn every row into an unknown id or, worse, match the wrong id.
"""

import numbers

import numpy as np
import pandas as pd
import scipy.sparse

from flowrec.exceptions import DuplicateRatingsError, IdTypeError

__all__ = [
    "parse_interactions",
    "IdMap",
    "merge_duplicates",
    "DUPLICATE_POLICIES",
]

DUPLICATE_POLICIES = ("raise", "mean", "last")

_MAX_POSITIONS_SHOWN = 5


def _positions(mask):
    """Return the first few positions where ``mask`` is true, as a short list for messages."""
    return np.flatnonzero(mask)[:_MAX_POSITIONS_SHOWN].tolist()


# ---------------------------------------------------------------------------
# Parsing


def parse_interactions(X, y=None, *, require_ratings=False):
    """Split interaction input into user ids, item ids and ratings.

    Parameters
    ----------
    X : DataFrame or array-like of shape (n_ratings, 2)
        A DataFrame with ``user_id`` and ``item_id`` columns, or with exactly
        two columns taken as (user, item) in order; or an array-like whose
        rows are (user id, item id) pairs. Ids may be of any hashable type
        (see the module docstring for the cast rule).
    y : array-like of shape (n_ratings,), default=None
        Ratings. When None and ``X`` is a DataFrame with a ``rating`` column,
        the ratings come from that column.
    require_ratings : bool, default=False
        Raise when no ratings are found (``fit`` needs them, ``predict`` does not).

    Returns
    -------
    users : ndarray of shape (n_ratings,)
        User ids as given by the caller.
    items : ndarray of shape (n_ratings,)
        Item ids as given by the caller.
    ratings : ndarray of shape (n_ratings,) and dtype float64, or None
        None when no ratings were given.

    Raises
    ------
    ValueError
        If ``X`` has the wrong shape, is empty or contains missing ids, if
        ``y`` has another length than ``X``, or if a rating is NaN, infinite
        or not a number.
    TypeError
        If ``X`` is a sparse matrix or a string.
    """
    if scipy.sparse.issparse(X):
        raise TypeError(
            "X is a sparse matrix, but flowrec expects (user id, item id) pairs; "
            "for a users-by-items rating matrix m, pass "
            "X = np.column_stack([m.row, m.col]) and y = m.data from m.tocoo()"
        )
    if isinstance(X, (str, bytes)):
        raise TypeError(f"X must be a DataFrame or an (n_ratings, 2) array-like, got the string {X!r}")

    rating_column = None
    if isinstance(X, pd.DataFrame):
        users, items, rating_column = _split_frame(X)
    else:
        users, items = _split_array(X)

    n_ratings = users.shape[0]
    if n_ratings == 0 or items.shape[0] == 0:
        raise ValueError(
            "X contains no interactions (0 rows); fit and predict need at least one (user, item) pair"
        )
    for name, ids in (("user", users), ("item", items)):
        missing = _missing_mask(ids)
        if missing.any():
            raise ValueError(
                f"X contains {int(missing.sum())} missing {name} ids (None or NaN) at rows "
                f"{_positions(missing)}; drop those rows before calling flowrec"
            )

    if y is None:
        y = rating_column
    if y is None:
        if require_ratings:
            raise ValueError(
                "fit requires y to be passed, but the target y is None and X has no 'rating' "
                "column; pass the ratings as y or as a 'rating' column of a DataFrame X"
            )
        return users, items, None
    return users, items, _check_ratings(y, n_ratings)


def _split_frame(frame):
    columns = list(frame.columns)
    rating_column = None
    if "rating" in columns:
        rating_column = frame["rating"].to_numpy()
    if "user_id" in columns and "item_id" in columns:
        return _column(frame["user_id"]), _column(frame["item_id"]), rating_column
    if len(columns) == 2:
        return _column(frame.iloc[:, 0]), _column(frame.iloc[:, 1]), None
    raise ValueError(
        "a DataFrame X needs 'user_id' and 'item_id' columns, or exactly two columns "
        f"taken as (user, item); got columns {columns}"
    )


def _column(series):
    """Return a pandas column as a NumPy array, keeping per-element types for object columns."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(series.cat.categories.dtype)
    if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
        return series.to_numpy(dtype=object)
    return series.to_numpy()


def _split_array(X):
    if isinstance(X, np.ndarray):
        array = X
    elif _is_pair_list(X):
        # Fill an object array row by row so that a list like [(1, "a")] keeps
        # the int and the str apart instead of NumPy turning both into strings.
        array = np.empty((len(X), 2), dtype=object)
        for row, pair in enumerate(X):
            array[row, 0], array[row, 1] = pair
        return _narrow_object_columns(array)
    else:
        try:
            array = np.asarray(X)
        except (TypeError, ValueError):
            raise TypeError(
                f"X must be a DataFrame or an (n_ratings, 2) array-like, got {type(X).__name__}"
            ) from None
    if array.ndim in (1, 2) and array.shape[0] == 0:
        return array.reshape(0), array.reshape(0)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(
            f"X must have shape (n_ratings, 2) with one (user id, item id) pair per row, "
            f"got an array of shape {array.shape}"
        )
    return array[:, 0], array[:, 1]


def _is_pair_list(X):
    try:
        return len(X) > 0 and all(
            not isinstance(row, (str, bytes)) and hasattr(row, "__len__") and len(row) == 2
            for row in X
        )
    except TypeError:
        return False


def _narrow_object_columns(array):
    """Return the two object columns, each as int64 when every id in it is an int."""
    columns = []
    for k in range(2):
        column = array[:, k]
        if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in column):
            column = column.astype(np.int64)
        columns.append(column)
    return columns[0], columns[1]


def _show(value):
    """Return ``repr`` of an id as the caller wrote it, without NumPy's scalar wrapper."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _missing_mask(ids):
    if ids.dtype.kind == "f":
        return np.isnan(ids)
    if ids.dtype == object:
        return np.array([v is None or (isinstance(v, float) and v != v) for v in ids], dtype=bool)
    return np.zeros(ids.shape, dtype=bool)


def _check_ratings(y, n_ratings):
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise ValueError(f"y must be 1-d with one rating per row of X, got a DataFrame of shape {y.shape}")
        y = y.iloc[:, 0]
    try:
        ratings = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "y must contain numeric ratings; convert it with np.asarray(y, dtype=float) "
            "after fixing the non-numeric values"
        ) from None
    if ratings.ndim == 2 and ratings.shape[1] == 1:
        ratings = ratings[:, 0]
    if ratings.ndim != 1:
        raise ValueError(f"y must be 1-d with one rating per row of X, got shape {ratings.shape}")
    if ratings.shape[0] != n_ratings:
        raise ValueError(
            f"X and y must have the same number of rows, got {n_ratings} pairs and {ratings.shape[0]} ratings"
        )
    bad = ~np.isfinite(ratings)
    if bad.any():
        raise ValueError(
            f"ratings contain {int(bad.sum())} NaN or infinite values at rows {_positions(bad)}; "
            "drop or impute them before fitting"
        )
    return ratings


# ---------------------------------------------------------------------------
# Id mapping


def _element_kind(value):
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        return "number"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def _normalize(ids, role):
    """Return ``(kind, array)`` with the ids in a canonical dtype, or raise IdTypeError on mixed kinds.

    Number ids become int64 when every value is integral and float64
    otherwise; str ids become a NumPy unicode array; other kinds stay object.
    """
    ids = _as_id_array(ids)
    kind_code = ids.dtype.kind
    if kind_code in "iu":
        if kind_code == "u" and ids.size and ids.max() > np.iinfo(np.int64).max:
            # a cast to int64 would wrap these ids to other (negative) numbers
            raise ValueError(
                f"{role} ids up to {ids.max()} do not fit in int64 (largest "
                f"{np.iinfo(np.int64).max}); pass them as strings, for example "
                "with .astype(str)"
            )
        return "number", ids.astype(np.int64, copy=False)
    if kind_code == "f":
        return "number", _integral_or_float(ids)
    if kind_code == "b":
        return "bool", ids
    if kind_code == "U":
        return "str", ids.astype(object)
    if kind_code == "S":
        return "bytes", ids.astype(object)

    kinds = {}
    for position, value in enumerate(ids):
        kinds.setdefault(_element_kind(value), position)
    if len(kinds) > 1:
        examples = ", ".join(f"{_show(ids[p])} ({kind}, row {p})" for kind, p in kinds.items())
        raise IdTypeError(
            f"{role} ids mix several types: {examples}; convert them to one type first, "
            f"for example with .astype(str) on the {role} column"
        )
    if not kinds:
        return "number", np.zeros(0, dtype=np.int64)
    kind = next(iter(kinds))
    if kind == "number":
        if all(isinstance(v, numbers.Integral) for v in ids):
            return kind, ids.astype(np.int64)
        return kind, _integral_or_float(ids.astype(np.float64))
    if kind == "str":
        # Python str objects, not a NumPy "U" array, which drops trailing NUL characters.
        return kind, np.array([str(v) for v in ids], dtype=object)
    return kind, ids


def _as_id_array(ids):
    """Return ``ids`` as a 1-d array.

    Lists become object arrays element by element, which keeps tuple ids whole
    and keeps strings as Python str (a NumPy "U" array drops trailing NUL
    characters).
    """
    if isinstance(ids, np.ndarray):
        return ids.ravel() if ids.ndim != 1 else ids
    if isinstance(ids, pd.Series | pd.Index):
        return _column(pd.Series(ids))
    values = list(ids)
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _integral_or_float(values):
    values = np.asarray(values, dtype=np.float64)
    if values.size and np.all(np.isfinite(values)) and np.all(values == np.round(values)) \
            and np.all(np.abs(values) < 2**53):
        return values.astype(np.int64)
    return values


class IdMap:
    """Map caller ids to contiguous indices ``0 .. n_ids - 1`` and back.

    Indices follow the sorted order of the distinct ids. See the module
    docstring for which ids count as equal and which combinations raise
    :class:`~flowrec.exceptions.IdTypeError`.

    Parameters
    ----------
    role : str, default="id"
        Word used in error messages, such as ``"user"`` or ``"item"``.

    Attributes
    ----------
    ids_ : ndarray of shape (n_ids,)
        The distinct fitted ids; ``ids_[k]`` is the id with index ``k``.
    kind_ : str
        The kind of the fitted ids (``"number"``, ``"str"`` ...).

    Examples
    --------
    >>> m = IdMap("user").fit(["b", "a", "b"])
    >>> m.transform(["a", "b", "z"]).tolist()
    [0, 1, -1]
    >>> m.inverse_transform([1]).tolist()
    ['b']
    """

    def __init__(self, role="id"):
        self.role = role

    def fit(self, ids):
        """Learn the distinct ids; return self."""
        kind, values = _normalize(ids, self.role)
        self.kind_ = kind
        if values.dtype == object and kind != "str":
            # Hashable but not necessarily sortable: keep first-seen order.
            distinct = list(dict.fromkeys(values.tolist()))
            self.ids_ = np.empty(len(distinct), dtype=object)
            self.ids_[:] = distinct
            self._lookup = {value: k for k, value in enumerate(distinct)}
        else:
            self.ids_ = np.unique(values)
            self._lookup = None
        return self

    def fit_transform(self, ids):
        """Learn the distinct ids and return the index of each given id."""
        return self.fit(ids).transform(ids)

    def __len__(self):
        return len(self.ids_)

    @property
    def n_ids(self):
        """Number of distinct fitted ids."""
        return len(self.ids_)

    def transform(self, ids):
        """Return the index of each id as an int64 array, with -1 for ids not seen in ``fit``.

        Raises
        ------
        IdTypeError
            If the ids are of another kind than the fitted ids, or of mixed kinds.
        """
        kind, values = _normalize(ids, self.role)
        if values.size == 0:
            return np.zeros(0, dtype=np.int64)
        if kind != self.kind_:
            raise IdTypeError(
                f"{self.role} ids have type {kind} (for example {_show(values[0])}) but the model "
                f"was fitted on {self.role} ids of type {self.kind_} (for example "
                f"{_show(self.ids_[0])}); convert them to {self.kind_} ids before calling this method"
            )
        if self._lookup is not None:
            return np.fromiter((self._lookup.get(v, -1) for v in values.tolist()),
                               dtype=np.int64, count=values.size)
        if values.dtype != self.ids_.dtype and values.dtype.kind != self.ids_.dtype.kind:
            # int ids fitted, float ids given (or the reverse): compare as float.
            fitted = self.ids_.astype(np.float64)
            values = values.astype(np.float64)
        else:
            fitted = self.ids_
        positions = np.searchsorted(fitted, values)
        positions = np.minimum(positions, len(fitted) - 1)
        found = fitted[positions] == values
        return np.where(found, positions, -1).astype(np.int64)

    def inverse_transform(self, indices):
        """Return the caller ids for contiguous indices.

        Raises
        ------
        IndexError
            If an index is negative or not below ``n_ids``.
        """
        indices = np.asarray(indices, dtype=np.int64)
        bad = (indices < 0) | (indices >= len(self.ids_))
        if bad.any():
            raise IndexError(
                f"{self.role} indices must lie in [0, {len(self.ids_) - 1}], got "
                f"{indices[bad][:_MAX_POSITIONS_SHOWN].tolist()}"
            )
        return self.ids_[indices]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_lookup", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "ids_" in state and state["ids_"].dtype == object and state["kind_"] != "str":
            self._lookup = {value: k for k, value in enumerate(state["ids_"].tolist())}
        else:
            self._lookup = None


# ---------------------------------------------------------------------------
# Duplicates


def merge_duplicates(user_index, item_index, ratings, *, policy="raise", user_ids=None, item_ids=None):
    """Merge repeated (user, item) pairs according to ``policy``.

    Parameters
    ----------
    user_index, item_index : ndarray of shape (n_ratings,)
        Contiguous indices (non-negative).
    ratings : ndarray of shape (n_ratings,)
    policy : {"raise", "mean", "last"}, default="raise"
        ``"raise"`` raises :class:`~flowrec.exceptions.DuplicateRatingsError`;
        ``"mean"`` keeps one row per pair with the mean rating; ``"last"``
        keeps the rating of the last occurrence in input order.
    user_ids, item_ids : IdMap, default=None
        Used to name the offending pair in caller ids in the error message.

    Returns
    -------
    user_index, item_index, ratings : ndarrays
        Unchanged (same objects) when there are no duplicates, otherwise one
        row per distinct pair, ordered by (user, item).
    """
    if policy not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicates must be one of {list(DUPLICATE_POLICIES)}, got {policy!r}")
    n_items = int(item_index.max()) + 1 if item_index.size else 1
    keys = user_index.astype(np.int64) * n_items + item_index.astype(np.int64)
    distinct, first, inverse, counts = np.unique(
        keys, return_index=True, return_inverse=True, return_counts=True
    )
    if distinct.size == keys.size:
        return user_index, item_index, ratings

    if policy == "raise":
        repeated = np.flatnonzero(counts > 1)
        worst = repeated[np.argmax(counts[repeated])]
        row = first[worst]
        user = user_ids.inverse_transform([user_index[row]])[0] if user_ids is not None else user_index[row]
        item = item_ids.inverse_transform([item_index[row]])[0] if item_ids is not None else item_index[row]
        raise DuplicateRatingsError(
            f"{repeated.size} (user, item) pairs occur more than once, for example user {_show(user)} "
            f"and item {_show(item)} with {int(counts[worst])} ratings (first at row {int(row)}); "
            "pass duplicates='mean' or duplicates='last' to merge them, or deduplicate the input"
        )

    merged_user = (distinct // n_items).astype(user_index.dtype)
    merged_item = (distinct % n_items).astype(item_index.dtype)
    if policy == "mean":
        merged = np.bincount(inverse, weights=ratings, minlength=distinct.size) / counts
    else:
        last = np.zeros(distinct.size, dtype=np.int64)
        np.maximum.at(last, inverse, np.arange(keys.size))
        merged = ratings[last]
    return merged_user, merged_item, merged.astype(ratings.dtype, copy=False)
