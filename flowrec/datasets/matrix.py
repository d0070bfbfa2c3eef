"""Conversion of a dense or sparse users-by-items matrix into a ratings table."""

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["ratings_from_matrix"]


def _check_ids(ids, size, name):
    if ids is None:
        return np.arange(size)
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.shape[0] != size:
        raise ValueError(
            f"{name} must list one id per matrix {'row' if name == 'user_ids' else 'column'}: "
            f"expected {size}, got shape {ids.shape}"
        )
    if pd.Index(ids).has_duplicates:
        duplicated = pd.Index(ids)[pd.Index(ids).duplicated()][0]
        raise ValueError(f"{name} must be unique, but {duplicated!r} occurs more than once")
    return ids


def ratings_from_matrix(matrix, *, missing=None, user_ids=None, item_ids=None):
    """Turn a users-by-items rating matrix into a ``user_id, item_id, rating`` table.

    Rows are users and columns are items, the orientation every flowrec
    estimator uses.

    Parameters
    ----------
    matrix : array-like of shape (n_users, n_items) or scipy sparse matrix
        Dense ratings, or a sparse matrix whose stored entries are the
        ratings (stored zeros count as ratings of 0; absent entries are
        missing).
    missing : float, default=None
        Value that marks a missing cell of a dense matrix, declared
        explicitly: ``np.nan`` for NaN cells, or a sentinel such as ``99``
        (Jester). With None every cell is a rating, so a NaN cell raises.
        Ignored for sparse input except that stored NaN values still raise.
    user_ids, item_ids : array-like, default=None
        Ids of the rows and columns; by default their positions.

    Returns
    -------
    DataFrame
        Columns ``user_id``, ``item_id``, ``rating`` (float64), ordered by
        user then item.

    Raises
    ------
    ValueError
        If the matrix is not 2-d, an id list has the wrong length or repeats
        an id, or a remaining rating is NaN or infinite. For bad ratings the
        message gives the (row, column) positions of the first such cells.

    Examples
    --------
    >>> import numpy as np
    >>> ratings_from_matrix([[5, np.nan], [np.nan, 3]], missing=np.nan)
       user_id  item_id  rating
    0        0        0     5.0
    1        1        1     3.0
    """
    if sp.issparse(matrix):
        coo = sp.coo_array(matrix)
        if coo.ndim != 2:
            raise ValueError(f"matrix must be 2-d (users by items), got {coo.ndim} dimensions")
        shape = coo.shape
        rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
        values = coo.data.astype(np.float64)
        order = np.lexsort((cols, rows))
        rows, cols, values = rows[order], cols[order], values[order]
    else:
        dense = np.asarray(matrix, dtype=np.float64)
        if dense.ndim != 2:
            raise ValueError(
                f"matrix must be 2-d (users by items), got shape {dense.shape}; "
                "pass a table of (user, item, rating) rows to the estimators directly"
            )
        shape = dense.shape
        if missing is None:
            present = np.ones(shape, dtype=bool)
        elif isinstance(missing, float) and np.isnan(missing):
            present = ~np.isnan(dense)
        else:
            present = dense != missing
        rows, cols = np.nonzero(present)
        values = dense[rows, cols]

    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        cells = [(int(rows[k]), int(cols[k])) for k in bad[:5]]
        hint = (
            "declare missing cells with missing=np.nan"
            if missing is None and np.isnan(values[bad]).any() and not sp.issparse(matrix)
            else "drop or impute those cells first"
        )
        raise ValueError(
            f"matrix has {bad.size} NaN or infinite ratings, first at (row, column) {cells}; {hint}"
        )

    users = _check_ids(user_ids, shape[0], "user_ids")
    items = _check_ids(item_ids, shape[1], "item_ids")
    return pd.DataFrame({"user_id": users[rows], "item_id": items[cols], "rating": values})
