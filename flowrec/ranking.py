r"""Top-k ranking metrics with binary relevance.

Each metric compares, user by user, a ranked list of recommended items with
the set of items that are relevant to that user, usually the items the user
interacted with in a held-out test set. Scores are averaged over the users
that have at least one relevant item. A user with relevant items but no
recommendation list scores 0, so a model cannot raise its score by leaving
hard users out.

Relevant items can be given as a mapping ``user -> collection of items`` or
as a DataFrame of held-out interactions with columns ``user_id`` and
``item_id`` (and ``rating`` when ``threshold`` is set). With ``threshold``,
only held-out items rated at or above it count as relevant.
"""

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["precision_at_k", "recall_at_k", "ndcg_at_k", "relevant_items"]


def relevant_items(test, threshold=None):
    """Group held-out interactions into one set of relevant items per user.

    Parameters
    ----------
    test : pandas.DataFrame
        Held-out interactions with columns ``user_id`` and ``item_id``, and
        ``rating`` when ``threshold`` is given.
    threshold : float, default=None
        Minimum rating for an item to count as relevant. ``None`` makes every
        held-out item relevant.

    Returns
    -------
    dict
        Maps each user id to a ``set`` of relevant item ids. Users left with
        no relevant item are omitted.

    Examples
    --------
    >>> import pandas as pd
    >>> test = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 10],
    ...                      "rating": [5, 2, 4]})
    >>> relevant_items(test, threshold=4)
    {1: {10}, 2: {10}}
    """
    if not isinstance(test, pd.DataFrame):
        raise TypeError(
            f"test must be a pandas DataFrame with user_id and item_id columns, "
            f"got {type(test).__name__}"
        )
    missing = [c for c in ("user_id", "item_id") if c not in test.columns]
    if threshold is not None:
        if "rating" not in test.columns:
            missing.append("rating")
    if missing:
        raise ValueError(
            f"test is missing the column(s) {missing}; it has {list(test.columns)}"
        )

    if threshold is not None:
        test = test[test["rating"].to_numpy(dtype=np.float64) >= float(threshold)]
    grouped = test.groupby("user_id", sort=True)["item_id"]
    return {user: set(items.tolist()) for user, items in grouped}


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    return int(k)


def _prepare(recommended, relevant, k, threshold):
    """Validate the inputs and return (k, recommended, relevant) with relevant as a dict of sets."""
    k = _check_k(k)
    if not isinstance(recommended, Mapping):
        raise TypeError(
            "recommended must be a mapping from user id to a ranked sequence of item ids, "
            f"got {type(recommended).__name__}"
        )
    if isinstance(relevant, pd.DataFrame):
        relevant = relevant_items(relevant, threshold=threshold)
    elif isinstance(relevant, Mapping):
        if threshold is not None:
            raise ValueError(
                "threshold applies only when relevant is a DataFrame with a rating column; "
                "filter the mapping yourself or pass the held-out DataFrame"
            )
        relevant = {user: set(items) for user, items in relevant.items()}
    else:
        raise TypeError(
            "relevant must be a mapping from user id to item ids or a DataFrame of "
            f"held-out interactions, got {type(relevant).__name__}"
        )

    relevant = {user: items for user, items in relevant.items() if items}
    if not relevant:
        raise ValueError(
            "no user has a relevant item, so the metric is undefined; check the held-out "
            "data and the rating threshold"
        )
    return k, recommended, relevant


def _top_k(recommended, user, k):
    ranked = recommended.get(user)
    if ranked is None:
        return []
    return list(ranked)[:k]


def precision_at_k(recommended, relevant, k=10, *, threshold=None):
    r"""Precision at k, averaged over users with at least one relevant item.

    For a user :math:`u` with top-k list :math:`L_u` and relevant set
    :math:`R_u`:

    .. math:: \mathrm{P@k}(u) = \frac{|L_u[1..k] \cap R_u|}{k}

    The divisor is always ``k``, even when the user has fewer than ``k``
    relevant items. implicit's ``precision_at_k`` (implicit 0.7.3) divides by
    :math:`\min(k, |R_u|)` instead, so its values are higher.

    Parameters
    ----------
    recommended : mapping of user id to sequence of item ids
        Ranked recommendations, best first. Items past position ``k`` are ignored.
    relevant : mapping of user id to collection of item ids, or pandas.DataFrame
        Relevant items per user, or held-out interactions (see
        :func:`relevant_items`).
    k : int, default=10
        Length of the list that is scored.
    threshold : float, default=None
        Minimum held-out rating for relevance; only valid with a DataFrame.

    Returns
    -------
    float

    Examples
    --------
    >>> precision_at_k({1: [10, 11, 12]}, {1: {10, 12, 99}}, k=2)
    0.5
    """
    k, recommended, relevant = _prepare(recommended, relevant, k, threshold)
    scores = [
        len(set(_top_k(recommended, user, k)) & items) / k for user, items in relevant.items()
    ]
    return float(np.mean(scores))


def recall_at_k(recommended, relevant, k=10, *, threshold=None):
    r"""Recall at k, averaged over users with at least one relevant item.

    .. math:: \mathrm{R@k}(u) = \frac{|L_u[1..k] \cap R_u|}{|R_u|}

    Parameters and return value are those of :func:`precision_at_k`.

    Examples
    --------
    >>> recall_at_k({1: [10, 11, 12]}, {1: {10, 12, 99}}, k=2)
    0.3333333333333333
    """
    k, recommended, relevant = _prepare(recommended, relevant, k, threshold)
    scores = [
        len(set(_top_k(recommended, user, k)) & items) / len(items)
        for user, items in relevant.items()
    ]
    return float(np.mean(scores))


def ndcg_at_k(recommended, relevant, k=10, *, threshold=None):
    r"""Normalized discounted cumulative gain at k with binary relevance.

    With :math:`\mathrm{rel}_i = 1` when the item at rank :math:`i` of
    :math:`L_u` is in :math:`R_u` and 0 otherwise:

    .. math::

        \mathrm{DCG@k}(u) = \sum_{i=1}^{k} \frac{\mathrm{rel}_i}{\log_2(i + 1)},
        \qquad
        \mathrm{IDCG@k}(u) = \sum_{i=1}^{\min(k, |R_u|)} \frac{1}{\log_2(i + 1)},

    and :math:`\mathrm{NDCG@k}(u) = \mathrm{DCG@k}(u) / \mathrm{IDCG@k}(u)`.
    An item repeated in :math:`L_u` counts only at its first rank.

    Parameters and return value are those of :func:`precision_at_k`.

    Examples
    --------
    >>> round(ndcg_at_k({1: [10, 11, 12]}, {1: {11}}, k=3), 4)
    0.6309
    """
    k, recommended, relevant = _prepare(recommended, relevant, k, threshold)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    scores = []
    for user, items in relevant.items():
        seen = set()
        dcg = 0.0
        for rank, item in enumerate(_top_k(recommended, user, k)):
            if item in items and item not in seen:
                dcg += discounts[rank]
            seen.add(item)
        ideal = float(np.sum(discounts[: min(k, len(items))]))
        scores.append(dcg / ideal)
    return float(np.mean(scores))

