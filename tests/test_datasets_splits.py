"""Train/test splits: properties checked on generated rating tables."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowrec.datasets import kfold_split, per_user_split, random_split, temporal_split
from flowrec.exceptions import DuplicateRatingsError

KEYS = ["user_id", "item_id"]


@st.composite
def rating_tables(draw, min_rows=2, max_rows=60):
    """Tables with unique (user, item) pairs, a rating and a timestamp."""
    n_users = draw(st.integers(1, 8))
    n_items = draw(st.integers(1, 12))
    cells = draw(
        st.lists(
            st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)),
            min_size=min_rows,
            max_size=max_rows,
            unique=True,
        ).filter(lambda cells: len(cells) >= min_rows)
    )
    n = len(cells)
    timestamps = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    users, items = zip(*cells)
    return pd.DataFrame(
        {
            "user_id": np.array(users, dtype=np.int64),
            "item_id": np.array(items, dtype=np.int64),
            "rating": np.arange(n, dtype=np.float64),
            "timestamp": np.array(timestamps, dtype=np.int64),
        }
    )


def assert_partition(ratings, train, test):
    """train and test share no pair, together equal the input, keep its columns."""
    assert list(train.columns) == list(ratings.columns)
    assert list(test.columns) == list(ratings.columns)
    assert train.index.tolist() == list(range(len(train)))
    assert test.index.tolist() == list(range(len(test)))
    shared = train.merge(test, on=KEYS)
    assert shared.empty
    union = pd.concat([train, test]).sort_values("rating").reset_index(drop=True)
    pd.testing.assert_frame_equal(union, ratings.sort_values("rating").reset_index(drop=True))


@settings(max_examples=40, deadline=None)
@given(ratings=rating_tables(), fraction=st.floats(0.05, 0.95), seed=st.integers(0, 2**32 - 1))
def test_random_split_properties(ratings, fraction, seed):
    train, test = random_split(ratings, test_size=fraction, random_state=seed)
    assert_partition(ratings, train, test)
    expected = min(max(round(fraction * len(ratings)), 1), len(ratings) - 1)
    assert len(test) == expected


@settings(max_examples=40, deadline=None)
@given(ratings=rating_tables(), fraction=st.floats(0.05, 0.95), seed=st.integers(0, 1000))
def test_per_user_fraction_properties(ratings, fraction, seed):
    train, test = per_user_split(ratings, test_size=fraction, random_state=seed)
    assert_partition(ratings, train, test)
    counts = ratings.groupby("user_id").size()
    test_counts = test.groupby("user_id").size().reindex(counts.index, fill_value=0)
    expected = np.minimum(np.round(fraction * counts), counts - 1)
    assert (test_counts == expected).all()
    assert set(train["user_id"]) == set(ratings["user_id"])


@settings(max_examples=40, deadline=None)
@given(ratings=rating_tables(), k=st.integers(1, 4), seed=st.integers(0, 1000))
def test_leave_k_out_properties(ratings, k, seed):
    train, test = per_user_split(ratings, test_size=k, random_state=seed)
    assert_partition(ratings, train, test)
    counts = ratings.groupby("user_id").size()
    test_counts = test.groupby("user_id").size().reindex(counts.index, fill_value=0)
    assert (test_counts == np.where(counts > k, k, 0)).all()


@settings(max_examples=40, deadline=None)
@given(ratings=rating_tables(), fraction=st.floats(0.05, 0.95))
def test_temporal_global_cutoff_properties(ratings, fraction):
    if ratings["timestamp"].nunique() == 1:
        with pytest.raises(ValueError, match="train would be empty"):
            temporal_split(ratings, test_size=fraction)
        return
    try:
        train, test = temporal_split(ratings, test_size=fraction)
    except ValueError as error:
        # all rows from the cutoff on share one timestamp with the first row
        assert "train would be empty" in str(error)
        return
    assert_partition(ratings, train, test)
    assert train["timestamp"].max() < test["timestamp"].min()
    requested = min(max(round(fraction * len(ratings)), 1), len(ratings) - 1)
    assert len(test) >= requested


@settings(max_examples=30, deadline=None)
@given(ratings=rating_tables(), n_splits=st.integers(2, 5), seed=st.integers(0, 1000))
def test_kfold_properties(ratings, n_splits, seed):
    n_splits = min(n_splits, len(ratings))
    folds = list(kfold_split(ratings, n_splits=n_splits, random_state=seed))
    assert len(folds) == n_splits
    for train, test in folds:
        assert_partition(ratings, train, test)
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1
    all_tests = pd.concat([test for _, test in folds]).sort_values("rating")
    assert all_tests["rating"].tolist() == ratings["rating"].tolist()


@pytest.fixture
def ratings():
    rng = np.random.default_rng(0)
    cells = rng.choice(20 * 30, size=200, replace=False)
    return pd.DataFrame(
        {
            "user_id": cells // 30,
            "item_id": cells % 30,
            "rating": rng.integers(1, 6, size=200).astype(float),
            "timestamp": rng.integers(0, 50, size=200),
        }
    )


@pytest.mark.parametrize(
    "split",
    [
        lambda r, seed: random_split(r, 0.3, random_state=seed),
        lambda r, seed: per_user_split(r, 0.3, random_state=seed),
        lambda r, seed: next(iter(kfold_split(r, 4, random_state=seed))),
    ],
    ids=["random", "per_user", "kfold"],
)
def test_same_seed_same_split(ratings, split):
    first_train, first_test = split(ratings, 7)
    second_train, second_test = split(ratings, 7)
    pd.testing.assert_frame_equal(first_train, second_train)
    pd.testing.assert_frame_equal(first_test, second_test)
    _, other_test = split(ratings, 8)
    assert not other_test.equals(first_test)


def test_splits_leave_global_rng_alone(ratings):
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    random_split(ratings, random_state=1)
    per_user_split(ratings, random_state=1)
    list(kfold_split(ratings, random_state=1))
    assert np.random.random() == expected


def test_input_not_modified(ratings):
    before = ratings.copy()
    random_split(ratings, random_state=0)
    per_user_split(ratings, test_size=2, random_state=0)
    temporal_split(ratings)
    list(kfold_split(ratings, random_state=0))
    pd.testing.assert_frame_equal(ratings, before)


def test_generator_as_random_state(ratings):
    train, test = random_split(ratings, random_state=np.random.default_rng(3))
    assert len(test) == 40


def test_temporal_ties_go_to_test():
    ratings = pd.DataFrame(
        {"user_id": [1, 1, 2, 2, 3], "item_id": [1, 2, 1, 2, 1],
         "rating": [1.0, 2, 3, 4, 5], "timestamp": [1, 2, 3, 3, 3]}
    )
    train, test = temporal_split(ratings, test_size=1)
    assert train["timestamp"].tolist() == [1, 2]
    assert test["timestamp"].tolist() == [3, 3, 3]


def test_temporal_datetimes():
    ratings = pd.DataFrame(
        {"user_id": [1, 1, 2], "item_id": [1, 2, 1], "rating": [1.0, 2, 3],
         "timestamp": pd.to_datetime(["2020-01-01", "2021-01-01", "2020-06-01"])}
    )
    train, test = temporal_split(ratings, test_size=1)
    assert test["timestamp"].tolist() == [pd.Timestamp("2021-01-01")]


def test_temporal_per_user_warns_and_holds_out_latest():
    ratings = pd.DataFrame(
        {"user_id": [1, 1, 1, 2, 2], "item_id": [1, 2, 3, 1, 2],
         "rating": [1.0, 2, 3, 4, 5], "timestamp": [10, 30, 20, 5, 1]}
    )
    with pytest.warns(UserWarning, match="leak"):
        train, test = temporal_split(ratings, test_size=1, per_user=True)
    assert sorted(zip(test["user_id"], test["timestamp"])) == [(1, 30), (2, 5)]
    assert len(train) == 3


def test_temporal_requires_timestamp(ratings):
    with pytest.raises(ValueError, match="lacks the column.*timestamp"):
        temporal_split(ratings.drop(columns="timestamp"))


def test_duplicate_pairs_rejected():
    ratings = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [3, 3, 3], "rating": [1.0, 2, 3]})
    with pytest.raises(DuplicateRatingsError, match="user 1 and item 3 occur 2 times"):
        random_split(ratings)


@pytest.mark.parametrize(
    "test_size, message",
    [
        (0.0, r"test_size must be a float in \(0, 1\) or an int row count, got 0.0"),
        (1.5, r"got 1.5"),
        (0, r"test_size as an int must be between 1 and 199"),
        (200, r"got 200"),
        ("0.2", r"got '0.2'"),
    ],
)
def test_random_split_bad_test_size(ratings, test_size, message):
    with pytest.raises(ValueError, match=message):
        random_split(ratings, test_size=test_size)


def test_per_user_bad_test_size(ratings):
    with pytest.raises(ValueError, match=r"leave-k-out\) must be >= 1, got 0"):
        per_user_split(ratings, test_size=0)
    with pytest.raises(TypeError, match="got a bool"):
        per_user_split(ratings, test_size=True)


def test_kfold_bad_n_splits(ratings):
    with pytest.raises(ValueError, match=r"n_splits must be between 2 and the number of rows \(200\), got 1"):
        kfold_split(ratings, n_splits=1)
    with pytest.raises(TypeError, match="n_splits must be an int"):
        kfold_split(ratings, n_splits=2.0)


def test_not_a_dataframe():
    with pytest.raises(TypeError, match="ratings must be a pandas DataFrame, got ndarray"):
        random_split(np.zeros((5, 3)))


def test_bad_random_state(ratings):
    with pytest.raises(TypeError, match="random_state must be .* got str"):
        random_split(ratings, random_state="7")


def test_per_user_temporal_keeps_large_integer_times_apart():
    base = 2**62
    ratings = pd.DataFrame({
        "user_id": [1, 1, 1, 2, 2],
        "item_id": [1, 2, 3, 1, 2],
        "rating": [1.0, 2.0, 3.0, 4.0, 5.0],
        "timestamp": np.array([base + 1, base + 3, base + 2, 1, 3], dtype=np.int64),
    })
    with pytest.warns(UserWarning):
        _, test = temporal_split(ratings, test_size=1, per_user=True)
    assert sorted(test["timestamp"].tolist()) == [3, base + 3]
