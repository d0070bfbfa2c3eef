"""Ranking metrics checked against values worked out by hand."""

import math

import pandas as pd
import pytest

from flowrec.ranking import ndcg_at_k, precision_at_k, recall_at_k, relevant_items

# Two users. User 1 has relevant items {a, c, e}; user 2 has {b}.
RECOMMENDED = {1: ["a", "b", "c", "d"], 2: ["a", "b", "c", "d"]}
RELEVANT = {1: {"a", "c", "e"}, 2: {"b"}}


def test_precision_by_hand():
    # user 1: hits a, c in top 3 -> 2/3; user 2: hit b -> 1/3
    assert precision_at_k(RECOMMENDED, RELEVANT, k=3) == pytest.approx((2 / 3 + 1 / 3) / 2)


def test_precision_divides_by_k():
    # one relevant item found in a list of 4 scores 1/4, not 1/1
    assert precision_at_k({2: ["b", "x", "y", "z"]}, {2: {"b"}}, k=4) == pytest.approx(0.25)


def test_recall_by_hand():
    # user 1: 2 of 3 relevant found; user 2: 1 of 1
    assert recall_at_k(RECOMMENDED, RELEVANT, k=3) == pytest.approx((2 / 3 + 1.0) / 2)


def test_ndcg_by_hand():
    # user 1: hits at ranks 1 and 3, three relevant items, so the ideal list has hits at 1, 2, 3
    dcg_1 = 1 / math.log2(2) + 1 / math.log2(4)
    idcg_1 = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    # user 2: hit at rank 2, one relevant item
    dcg_2 = 1 / math.log2(3)
    idcg_2 = 1.0
    expected = (dcg_1 / idcg_1 + dcg_2 / idcg_2) / 2
    assert ndcg_at_k(RECOMMENDED, RELEVANT, k=3) == pytest.approx(expected)


def test_ndcg_perfect_list_is_one():
    assert ndcg_at_k({1: ["a", "c", "e", "x"]}, {1: {"a", "c", "e"}}, k=3) == pytest.approx(1.0)


def test_ndcg_ideal_is_capped_at_k():
    # three relevant items but k=1: a hit at rank 1 is already ideal
    assert ndcg_at_k({1: ["c"]}, {1: {"a", "c", "e"}}, k=1) == pytest.approx(1.0)


def test_repeated_item_counts_once():
    assert ndcg_at_k({1: ["a", "a"]}, {1: {"a", "b"}}, k=2) == pytest.approx(
        1.0 / (1.0 + 1 / math.log2(3))
    )
    assert precision_at_k({1: ["a", "a"]}, {1: {"a", "b"}}, k=2) == pytest.approx(0.5)


def test_missing_recommendations_score_zero():
    only_user_1 = {1: ["a", "c", "e"]}
    assert precision_at_k(only_user_1, RELEVANT, k=3) == pytest.approx((1.0 + 0.0) / 2)
    assert recall_at_k(only_user_1, RELEVANT, k=3) == pytest.approx(0.5)


def test_users_without_relevant_items_are_skipped():
    relevant = {1: {"a"}, 2: set()}
    assert precision_at_k({1: ["a"], 2: ["b"]}, relevant, k=1) == pytest.approx(1.0)


def test_dataframe_with_threshold():
    test = pd.DataFrame(
        {"user_id": [1, 1, 1, 2], "item_id": ["a", "c", "e", "b"], "rating": [5, 4, 2, 3]}
    )
    assert relevant_items(test, threshold=4) == {1: {"a", "c"}}
    # with the threshold only user 1 counts, and a, c are both in its top 3
    assert recall_at_k(RECOMMENDED, test, k=3, threshold=4) == pytest.approx(1.0)
    assert recall_at_k(RECOMMENDED, test, k=3) == pytest.approx((2 / 3 + 1.0) / 2)


def test_numpy_lists_accepted():
    import numpy as np

    assert precision_at_k({1: np.array([3, 4])}, {1: {4}}, k=2) == pytest.approx(0.5)


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "10"])
def test_invalid_k_rejected(k):
    with pytest.raises(ValueError, match="k must be a positive int"):
        precision_at_k(RECOMMENDED, RELEVANT, k=k)


def test_no_relevant_items_rejected():
    with pytest.raises(ValueError, match="no user has a relevant item"):
        ndcg_at_k(RECOMMENDED, {1: set()}, k=3)


def test_threshold_needs_dataframe():
    with pytest.raises(ValueError, match="threshold applies only"):
        recall_at_k(RECOMMENDED, RELEVANT, k=3, threshold=4)


def test_threshold_needs_rating_column():
    test = pd.DataFrame({"user_id": [1], "item_id": ["a"]})
    with pytest.raises(ValueError, match=r"missing the column\(s\) \['rating'\]"):
        relevant_items(test, threshold=4)


def test_recommended_must_be_mapping():
    with pytest.raises(TypeError, match="recommended must be a mapping"):
        precision_at_k([["a"]], RELEVANT, k=1)
