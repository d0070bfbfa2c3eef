"""Tests of interaction parsing, id mapping and duplicate merging."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st

from flowrec._input import IdMap, merge_duplicates, parse_interactions
from flowrec.exceptions import DuplicateRatingsError, IdTypeError

# ---------------------------------------------------------------------------
# parse_interactions


def test_parse_frame_named_columns():
    frame = pd.DataFrame({"rating": [4.0, 3.0], "item_id": ["a", "b"], "user_id": [1, 2]})
    users, items, ratings = parse_interactions(frame)
    assert users.tolist() == [1, 2]
    assert items.tolist() == ["a", "b"]
    assert ratings.tolist() == [4.0, 3.0]


def test_parse_frame_two_columns_in_order():
    frame = pd.DataFrame({"who": [7, 8], "what": [1, 2]})
    users, items, ratings = parse_interactions(frame, [1, 2])
    assert users.tolist() == [7, 8]
    assert items.tolist() == [1, 2]
    assert ratings.dtype == np.float64


def test_parse_y_overrides_rating_column():
    frame = pd.DataFrame({"user_id": [1], "item_id": [2], "rating": [5.0]})
    _, _, ratings = parse_interactions(frame, [1.0])
    assert ratings.tolist() == [1.0]


def test_parse_frame_wrong_columns():
    frame = pd.DataFrame({"a": [1], "b": [2], "c": [3]})
    with pytest.raises(ValueError, match=r"needs 'user_id' and 'item_id' columns.*\['a', 'b', 'c'\]"):
        parse_interactions(frame)


def test_parse_list_keeps_mixed_column_types():
    users, items, _ = parse_interactions([(1, "x"), (2, "y")])
    assert users.dtype == np.int64
    assert items.tolist() == ["x", "y"]


def test_parse_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \(n_ratings, 2\).*\(3, 3\)"):
        parse_interactions(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"got an array of shape \(4,\)"):
        parse_interactions(np.zeros(4))


def test_parse_empty_input():
    with pytest.raises(ValueError, match="no interactions"):
        parse_interactions(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="no interactions"):
        parse_interactions([])


def test_parse_nan_and_inf_ratings_name_rows():
    with pytest.raises(ValueError, match=r"2 NaN or infinite values at rows \[1, 3\]"):
        parse_interactions([[1, 1], [1, 2], [2, 1], [2, 2]], [3.0, np.nan, 4.0, np.inf])


def test_parse_length_mismatch():
    with pytest.raises(ValueError, match="same number of rows, got 2 pairs and 3 ratings"):
        parse_interactions([[1, 1], [1, 2]], [1.0, 2.0, 3.0])


def test_parse_non_numeric_ratings():
    with pytest.raises(ValueError, match="numeric ratings"):
        parse_interactions([[1, 1]], ["good"])


def test_parse_missing_ids_name_rows():
    frame = pd.DataFrame({"user_id": [1.0, np.nan, 3.0], "item_id": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"1 missing user ids \(None or NaN\) at rows \[1\]"):
        parse_interactions(frame)


def test_parse_requires_ratings_for_fit():
    with pytest.raises(ValueError, match="fit requires y to be passed"):
        parse_interactions([[1, 1]], require_ratings=True)


def test_parse_sparse_matrix_rejected():
    with pytest.raises(TypeError, match="sparse matrix.*np.column_stack"):
        parse_interactions(scipy.sparse.eye(3, format="csr"))


def test_parse_does_not_modify_input():
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [3, 4], "rating": [1.0, 2.0]})
    copy = frame.copy()
    parse_interactions(frame)
    pd.testing.assert_frame_equal(frame, copy)


# ---------------------------------------------------------------------------
# IdMap


def test_idmap_sorted_contiguous_indices():
    ids = IdMap("user").fit([30, 10, 20, 10])
    assert ids.ids_.tolist() == [10, 20, 30]
    assert ids.transform([20, 30, 10]).tolist() == [1, 2, 0]


def test_idmap_unknown_maps_to_minus_one():
    ids = IdMap("item").fit(["a", "b"])
    assert ids.transform(["b", "zz", "a"]).tolist() == [1, -1, 0]


def test_idmap_integral_float_equals_int():
    ids = IdMap("user").fit([17, 18])
    assert ids.transform([17.0, np.int32(18), 17.5]).tolist() == [0, 1, -1]


def test_idmap_str_for_int_ids_raises():
    ids = IdMap("user").fit([17, 18])
    with pytest.raises(IdTypeError, match=r"user ids have type str \(for example '17'\).*fitted on user ids of type number"):
        ids.transform(["17"])


def test_idmap_int_for_str_ids_raises():
    ids = IdMap("item").fit(["17"])
    with pytest.raises(IdTypeError, match="item ids have type number"):
        ids.transform([17])


def test_idmap_mixed_types_in_fit_raise():
    with pytest.raises(IdTypeError, match=r"user ids mix several types: 1 \(number, row 0\), 'a' \(str, row 1\)"):
        IdMap("user").fit(np.array([1, "a"], dtype=object))


def test_idmap_tuple_ids():
    ids = IdMap("item").fit([(1, 2), (0, 5), (1, 2)])
    assert ids.transform([(0, 5), (9, 9)]).tolist() == [1, -1]


def test_idmap_pickle_keeps_lookup():
    import pickle

    ids = pickle.loads(pickle.dumps(IdMap("item").fit([(1, 2), (3, 4)])))
    assert ids.transform([(3, 4), (5, 6)]).tolist() == [1, -1]


def test_parse_categorical_columns():
    frame = pd.DataFrame({"user_id": pd.Categorical(["a", "b"]), "item_id": pd.Categorical([3, 4])})
    users, items, _ = parse_interactions(frame)
    assert users.tolist() == ["a", "b"]
    assert items.tolist() == [3, 4]
    assert IdMap().fit(items).kind_ == "number"


def test_idmap_inverse_rejects_out_of_range():
    ids = IdMap("user").fit([5])
    with pytest.raises(IndexError, match=r"user indices must lie in \[0, 0\], got \[1\]"):
        ids.inverse_transform([1])


@settings(deadline=None)
@given(st.lists(st.integers(-10**12, 10**12), min_size=1))
def test_idmap_round_trip_ints(values):
    ids = IdMap().fit(values)
    indices = ids.transform(values)
    assert sorted(set(indices.tolist())) == list(range(len(set(values))))
    assert ids.inverse_transform(indices).tolist() == values


@settings(deadline=None)
@given(st.lists(st.text(max_size=5), min_size=1))
def test_idmap_round_trip_strings(values):
    ids = IdMap().fit(values)
    assert ids.inverse_transform(ids.transform(values)).tolist() == values


@settings(deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1), st.lists(st.integers(0, 100), min_size=1))
def test_idmap_unknowns_are_exactly_unseen(fitted, queried):
    ids = IdMap().fit(fitted)
    indices = ids.transform(queried)
    for value, index in zip(queried, indices.tolist()):
        assert (index == -1) == (value not in fitted)


# ---------------------------------------------------------------------------
# merge_duplicates


def _duplicated():
    users = np.array([0, 1, 0, 0])
    items = np.array([1, 0, 1, 1])
    ratings = np.array([1.0, 2.0, 3.0, 5.0])
    return users, items, ratings


def test_duplicates_raise_names_pair_and_count():
    user_ids = IdMap("user").fit(["u0", "u1"])
    item_ids = IdMap("item").fit(["i0", "i1"])
    with pytest.raises(DuplicateRatingsError, match=r"user 'u0' and item 'i1' with 3 ratings \(first at row 0\).*duplicates='mean'"):
        merge_duplicates(*_duplicated(), user_ids=user_ids, item_ids=item_ids)


def test_duplicates_mean():
    users, items, ratings = merge_duplicates(*_duplicated(), policy="mean")
    assert list(zip(users.tolist(), items.tolist(), ratings.tolist())) == [(0, 1, 3.0), (1, 0, 2.0)]


def test_duplicates_last():
    users, items, ratings = merge_duplicates(*_duplicated(), policy="last")
    assert list(zip(users.tolist(), items.tolist(), ratings.tolist())) == [(0, 1, 5.0), (1, 0, 2.0)]


def test_no_duplicates_returns_inputs():
    users, items, ratings = np.array([0, 1]), np.array([0, 0]), np.array([1.0, 2.0])
    result = merge_duplicates(users, items, ratings)
    assert result[0] is users
    assert result[2] is ratings


def test_uint64_ids_beyond_int64_rejected():
    items = np.array([2**63 + 5, 7], dtype=np.uint64)
    with pytest.raises(ValueError, match=r"item ids up to 9223372036854775813 do not fit in int64"):
        IdMap("item").fit(items)
