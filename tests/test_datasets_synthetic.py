"""Synthetic low-rank matrices and tensors."""

import numpy as np
import pandas as pd
import pytest

from flowrec.datasets import make_low_rank_matrix, make_low_rank_tensor


def test_matrix_defaults():
    data = make_low_rank_matrix(random_state=0)
    assert data.matrix.shape == (200, 200)
    assert len(data.train) + len(data.test) == 8000
    assert len(data.test) == 1600
    assert list(data.train.columns) == ["user_id", "item_id", "rating"]
    assert data.train["user_id"].dtype == np.int64
    assert data.params["rank"] == 5
    assert repr(data) == "SyntheticMatrix(shape=(200, 200), rank=5, n_train=6400, n_test=1600)"


def test_matrix_truth_is_low_rank_with_condition_number():
    data = make_low_rank_matrix(60, 40, rank=4, condition_number=10.0, random_state=1)
    singular = np.linalg.svd(data.matrix, compute_uv=False)
    assert np.sum(singular > 1e-8 * singular[0]) == 4
    assert singular[0] / singular[3] == pytest.approx(10.0)
    np.testing.assert_allclose(singular[:4], data.singular_values)
    np.testing.assert_allclose(data.user_factors @ data.item_factors.T, data.matrix)
    assert np.sqrt(np.mean(data.matrix**2)) == pytest.approx(1.0)


def test_matrix_ratings_are_truth_plus_noise():
    data = make_low_rank_matrix(80, 70, rank=3, noise=0.0, random_state=2)
    truth = data.matrix[data.train["user_id"], data.train["item_id"]]
    np.testing.assert_array_equal(data.train["rating"], truth)

    noisy = make_low_rank_matrix(80, 70, rank=3, noise=0.5, random_state=2)
    residual = noisy.train["rating"] - noisy.matrix[noisy.train["user_id"], noisy.train["item_id"]]
    assert residual.std() == pytest.approx(0.5, rel=0.1)


def test_matrix_train_test_disjoint():
    data = make_low_rank_matrix(30, 30, rank=2, density=0.9, test_size=0.5, random_state=3)
    shared = data.train.merge(data.test, on=["user_id", "item_id"])
    assert shared.empty
    cells = pd.concat([data.train, data.test])
    assert not cells.duplicated(["user_id", "item_id"]).any()
    assert len(cells) == round(0.9 * 900)


def test_matrix_deterministic():
    first = make_low_rank_matrix(20, 25, rank=2, random_state=5)
    second = make_low_rank_matrix(20, 25, rank=2, random_state=5)
    pd.testing.assert_frame_equal(first.train, second.train)
    np.testing.assert_array_equal(first.matrix, second.matrix)
    other = make_low_rank_matrix(20, 25, rank=2, random_state=6)
    assert not np.array_equal(first.matrix, other.matrix)


def test_matrix_int_test_size_and_zero():
    assert len(make_low_rank_matrix(10, 10, rank=1, test_size=7, random_state=0).test) == 7
    empty = make_low_rank_matrix(10, 10, rank=1, test_size=0.0, random_state=0)
    assert empty.test.empty
    assert list(empty.test.columns) == ["user_id", "item_id", "rating"]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"n_users": 0}, ValueError, "n_users must be an int >= 1, got 0"),
        ({"n_items": 2.5}, TypeError, "n_items must be an int, got float 2.5"),
        ({"rank": 300}, ValueError, r"rank must be at most min\(n_users, n_items\) = 200, got 300"),
        ({"density": 0.0}, ValueError, r"density must be in \(0, 1\], got 0.0"),
        ({"density": 1.5}, ValueError, r"density must be in \(0, 1\], got 1.5"),
        ({"noise": -1}, ValueError, "noise must be >= 0, got -1.0"),
        ({"noise": float("nan")}, ValueError, "noise must be a finite number, got nan"),
        ({"condition_number": 0.5}, ValueError, "condition_number must be >= 1, got 0.5"),
        ({"rank": 1, "condition_number": 2}, ValueError, "must be 1 when rank=1"),
        ({"test_size": 1.0}, ValueError, r"test_size must be a float in \[0, 1\) or an int, got 1.0"),
        ({"test_size": 8000}, ValueError, "between 0 and 7999"),
        ({"random_state": -1}, ValueError, "random_state must be a non-negative int"),
        ({"n_users": 1, "n_items": 1, "rank": 1, "density": 0.1}, ValueError, "observes no cell"),
    ],
)
def test_matrix_invalid_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        make_low_rank_matrix(**kwargs)


def test_tensor_defaults():
    data = make_low_rank_tensor(random_state=0)
    assert data.tensor.shape == (30, 30, 30)
    assert list(data.train.columns) == ["i0", "i1", "i2", "value"]
    assert len(data.train) + len(data.test) == round(0.2 * 27000)
    assert len(data.factors) == 3
    assert data.factors[0].shape == (30, 3)
    np.testing.assert_allclose(np.linalg.norm(data.factors[1], axis=0), 1.0)


def test_tensor_truth_matches_cp_model():
    data = make_low_rank_tensor((6, 5, 4, 3), rank=2, condition_number=4.0, random_state=1)
    rebuilt = np.einsum("r,ir,jr,kr,lr->ijkl", data.weights, *data.factors)
    np.testing.assert_allclose(rebuilt, data.tensor)
    assert data.weights[0] / data.weights[1] == pytest.approx(4.0)
    assert np.sqrt(np.mean(data.tensor**2)) == pytest.approx(1.0)
    assert list(data.train.columns) == ["i0", "i1", "i2", "i3", "value"]


def test_tensor_values_and_disjoint():
    data = make_low_rank_tensor((8, 7, 6), rank=2, noise=0.0, density=0.8, random_state=4)
    index = tuple(data.train[f"i{mode}"] for mode in range(3))
    np.testing.assert_array_equal(data.train["value"], data.tensor[index])
    shared = data.train.merge(data.test, on=["i0", "i1", "i2"])
    assert shared.empty


def test_tensor_deterministic():
    first = make_low_rank_tensor((5, 5, 5), rank=2, random_state=9)
    second = make_low_rank_tensor((5, 5, 5), rank=2, random_state=9)
    pd.testing.assert_frame_equal(first.test, second.test)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"shape": (30,)}, ValueError, "shape must be a tuple of at least 2 positive ints"),
        ({"shape": (3, 0, 3)}, ValueError, r"shape\[1\] must be an int >= 1, got 0"),
        ({"shape": 30}, ValueError, "shape must be a tuple"),
        ({"rank": 0}, ValueError, "rank must be an int >= 1, got 0"),
        ({"density": 2}, ValueError, r"density must be in \(0, 1\]"),
    ],
)
def test_tensor_invalid_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        make_low_rank_tensor(**kwargs)
