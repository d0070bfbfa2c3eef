"""Held-out metrics: rating-prediction errors and top-k ranking quality.

The error metrics take true and predicted ratings as 1-d array-likes of equal
length, reject NaN or infinite values, and return a Python float. The ranking
metrics are defined in :mod:`flowrec.ranking` and re-exported here.
"""

import numpy as np

from flowrec.ranking import ndcg_at_k, precision_at_k, recall_at_k, relevant_items

__all__ = [
    "rmse",
    "mae",
    "nmae",
    "precision_at_k",
    "recall_at_k",
    "ndcg_at_k",
    "relevant_items",
]


def _check_pair(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {y_true.size} and {y_pred.size}"
        )
    if y_true.size == 0:
        raise ValueError("y_true and y_pred are empty; metrics need at least one rating")
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(
                f"{name} contains {bad.size} NaN or infinite values, first at positions "
                f"{bad[:5].tolist()}; drop or impute them before scoring"
            )
    return y_true, y_pred


def rmse(y_true, y_pred):
    r"""Root mean squared error.

    .. math:: \mathrm{RMSE} = \sqrt{\frac{1}{n} \sum_{k=1}^{n} (y_k - \hat y_k)^2}

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_ratings,)
        True and predicted ratings.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the lengths differ, the inputs are empty, or a value is NaN or infinite.

    Examples
    --------
    >>> rmse([1.0, 2.0], [1.0, 4.0])
    1.4142135623730951
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true, y_pred):
    r"""Mean absolute error.

    .. math:: \mathrm{MAE} = \frac{1}{n} \sum_{k=1}^{n} |y_k - \hat y_k|

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_ratings,)
        True and predicted ratings.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the lengths differ, the inputs are empty, or a value is NaN or infinite.

    Examples
    --------
    >>> mae([1.0, 2.0], [1.0, 4.0])
    1.0
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def nmae(y_true, y_pred, rating_scale):
    r"""Normalized mean absolute error: MAE divided by the width of the rating scale.

    .. math:: \mathrm{NMAE} = \frac{\mathrm{MAE}}{r_{\max} - r_{\min}}

    This is the figure reported for Jester (Goldberg et al., 2001), whose scale
    is -10 to 10, so the divisor there is 20.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_ratings,)
        True and predicted ratings.
    rating_scale : tuple of (float, float)
        The lowest and highest possible rating, ``(r_min, r_max)``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``rating_scale`` is not an increasing pair of finite numbers, or for
        the reasons :func:`mae` raises.

    Examples
    --------
    >>> nmae([0.0, 10.0], [2.0, 8.0], rating_scale=(-10, 10))
    0.1
    """
    try:
        low, high = (float(v) for v in rating_scale)
    except (TypeError, ValueError):
        raise ValueError(
            f"rating_scale must be a pair (r_min, r_max), got {rating_scale!r}"
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise ValueError(
            f"rating_scale must satisfy r_min < r_max with finite values, got {rating_scale!r}"
        )
    return mae(y_true, y_pred) / (high - low)
