import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from flowrec import LowRankMF
from flowrec.datasets import ratings_from_matrix


def test_nan_cells_raise_unless_declared_missing():
    matrix = np.array([[5.0, np.nan, 1.0], [np.nan, 3.0, 2.0]])
    with pytest.raises(ValueError, match=r"2 NaN or infinite ratings, first at \(row, column\) \[\(0, 1\), \(1, 0\)\]; declare missing cells with missing=np.nan"):
        ratings_from_matrix(matrix)
    table = ratings_from_matrix(matrix, missing=np.nan)
    assert table.to_dict("list") == {
        "user_id": [0, 0, 1, 1], "item_id": [0, 2, 1, 2], "rating": [5.0, 1.0, 3.0, 2.0],
    }


def test_sentinel_marks_missing_cells():
    matrix = np.array([[99.0, -9.5], [7.25, 99.0]])
    table = ratings_from_matrix(matrix, missing=99, user_ids=["a", "b"], item_ids=[10, 20])
    assert table.to_dict("list") == {"user_id": ["a", "b"], "item_id": [20, 10], "rating": [-9.5, 7.25]}


def test_infinite_rating_rejected():
    with pytest.raises(ValueError, match=r"1 NaN or infinite ratings, first at \(row, column\) \[\(1, 1\)\]; drop or impute"):
        ratings_from_matrix([[1.0, np.nan], [2.0, np.inf]], missing=np.nan)


def test_sparse_matrix_stored_entries_are_ratings():
    matrix = sp.csr_array(([4.0, 0.0, 2.0], ([1, 0, 1], [2, 1, 0])), shape=(2, 3))
    table = ratings_from_matrix(matrix)
    assert table.to_dict("list") == {"user_id": [0, 1, 1], "item_id": [1, 0, 2], "rating": [0.0, 2.0, 4.0]}


def test_bad_shapes_and_ids_are_rejected():
    with pytest.raises(ValueError, match=r"matrix must be 2-d \(users by items\), got shape \(3,\)"):
        ratings_from_matrix([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="user_ids must list one id per matrix row: expected 2, got shape \\(3,\\)"):
        ratings_from_matrix(np.ones((2, 2)), user_ids=[1, 2, 3])
    with pytest.raises(ValueError, match="item_ids must be unique, but 'x' occurs more than once"):
        ratings_from_matrix(np.ones((2, 2)), item_ids=["x", "x"])


def test_table_fits_an_estimator_and_rows_stay_users():
    rng = np.random.default_rng(0)
    matrix = rng.integers(1, 6, size=(12, 5)).astype(float)
    matrix[rng.random(matrix.shape) < 0.3] = np.nan
    table = ratings_from_matrix(matrix, missing=np.nan)
    model = LowRankMF(n_factors=2, n_epochs=10, random_state=0, device="cpu").fit(table)
    assert model.n_users_ == 12
    assert model.n_items_ == 5
    with pytest.raises(ValueError, match="transpose"):
        model.predict(matrix.T)
