"""Surprise and implicit wrappers: same results as the libraries called directly."""

import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from sklearn.base import clone

from flowrec.baselines import ImplicitALS, SurpriseBaselineOnly, SurpriseSVD, SurpriseSVDpp
from flowrec.exceptions import UnknownIdError

surprise = pytest.importorskip("surprise")
implicit_als = pytest.importorskip("implicit.cpu.als")


@pytest.fixture(scope="module")
def ratings():
    """600 distinct (user, item) pairs of 40 users and 30 items, integer ratings 1-5."""
    rng = np.random.default_rng(0)
    pairs = rng.choice(40 * 30, size=600, replace=False)
    return pd.DataFrame(
        {
            "user_id": pairs // 30 + 100,
            "item_id": pairs % 30 + 500,
            "rating": rng.integers(1, 6, size=600).astype(float),
        }
    )


def _direct_surprise(algorithm, ratings, pairs):
    reader = surprise.Reader(rating_scale=(1, 5))
    trainset = surprise.Dataset.load_from_df(
        ratings[["user_id", "item_id", "rating"]], reader
    ).build_full_trainset()
    algorithm.fit(trainset)
    return np.array([algorithm.predict(u, i).est for u, i in pairs])


TEST_PAIRS = [(100, 500), (101, 510), (139, 529), (120, 515), (999, 500), (100, 999), (999, 999)]


@pytest.mark.parametrize(
    "wrapper, direct",
    [
        (SurpriseSVD(n_factors=5, random_state=3), lambda: surprise.SVD(n_factors=5, random_state=3)),
        (
            SurpriseSVDpp(n_factors=3, n_epochs=5, random_state=3),
            lambda: surprise.SVDpp(n_factors=3, n_epochs=5, random_state=3),
        ),
        (
            SurpriseBaselineOnly(bsl_options={"method": "sgd", "n_epochs": 5}),
            lambda: surprise.BaselineOnly(bsl_options={"method": "sgd", "n_epochs": 5}, verbose=False),
        ),
    ],
    ids=["svd", "svdpp", "baseline"],
)
def test_surprise_wrapper_matches_direct(ratings, wrapper, direct):
    expected = _direct_surprise(direct(), ratings, TEST_PAIRS)
    X = pd.DataFrame(TEST_PAIRS, columns=["user_id", "item_id"])
    predictions = clone(wrapper).fit(ratings[["user_id", "item_id"]], ratings["rating"]).predict(X)
    np.testing.assert_allclose(predictions, expected, rtol=0, atol=1e-12)


def test_surprise_fallback_mask_marks_unknown_ids(ratings):
    model = SurpriseSVD(n_factors=5, random_state=0).fit(ratings)
    X = pd.DataFrame(TEST_PAIRS, columns=["user_id", "item_id"])
    predictions, fallback = model.predict(X, return_fallback=True)
    assert fallback.tolist() == [False, False, False, False, True, True, True]
    # an unknown user and item leaves only the training mean
    assert predictions[-1] == pytest.approx(ratings["rating"].mean())


def test_surprise_frame_and_array_agree(ratings):
    from_frame = SurpriseSVD(n_factors=4, random_state=1).fit(ratings)
    from_array = SurpriseSVD(n_factors=4, random_state=1).fit(
        ratings[["user_id", "item_id"]].to_numpy(), ratings["rating"].to_numpy()
    )
    pairs = np.array(TEST_PAIRS[:4])
    np.testing.assert_array_equal(from_frame.predict(pairs), from_array.predict(pairs))


def test_surprise_rating_scale_clips(ratings):
    model = SurpriseSVD(n_factors=4, random_state=1, rating_scale=(2.5, 3.0)).fit(ratings)
    predictions = model.predict(ratings[["user_id", "item_id"]])
    assert predictions.min() >= 2.5
    assert predictions.max() <= 3.0
    assert model.rating_scale_ == (2.5, 3.0)


def test_surprise_inferred_rating_scale(ratings):
    model = SurpriseBaselineOnly().fit(ratings)
    assert model.rating_scale_ == (1.0, 5.0)


def test_surprise_invalid_rating_scale(ratings):
    with pytest.raises(ValueError, match=r"rating_scale must be a pair \(r_min, r_max\) or None, got 5"):
        SurpriseSVD(rating_scale=5).fit(ratings)


def test_surprise_needs_ratings(ratings):
    with pytest.raises(ValueError, match="'rating' column"):
        SurpriseSVD().fit(ratings[["user_id", "item_id"]])


def test_surprise_params_round_trip():
    model = SurpriseSVD(n_factors=7, lr_all=0.01, random_state=4)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert SurpriseBaselineOnly(bsl_options={"method": "sgd"}).get_params()["bsl_options"] == {
        "method": "sgd"
    }


def test_baseline_options_not_modified(ratings):
    options = {"method": "als"}
    SurpriseBaselineOnly(bsl_options=options).fit(ratings)
    assert options == {"method": "als"}


def test_surprise_writes_nothing_to_stdout(ratings, capsys):
    SurpriseBaselineOnly().fit(ratings)
    SurpriseSVD(n_factors=2, n_epochs=2).fit(ratings)
    assert capsys.readouterr().out == ""


def test_missing_surprise_names_extra(ratings, monkeypatch):
    monkeypatch.setitem(sys.modules, "surprise", None)
    with pytest.raises(ImportError, match=r'pip install "flowrec\[baselines\]"'):
        SurpriseSVD().fit(ratings)


def test_missing_implicit_names_extra(ratings, monkeypatch):
    monkeypatch.setitem(sys.modules, "implicit.cpu.als", None)
    with pytest.raises(ImportError, match=r'pip install "flowrec\[baselines\]"'):
        ImplicitALS().fit(ratings)


def test_implicit_matches_direct(ratings):
    model = ImplicitALS(n_factors=4, n_epochs=3, random_state=0).fit(ratings)
    user_index = model.user_ids_.transform(ratings["user_id"].to_numpy())
    item_index = model.item_ids_.transform(ratings["item_id"].to_numpy())
    matrix = scipy.sparse.csr_matrix(
        (np.ones(len(ratings), dtype=np.float32), (user_index, item_index)),
        shape=(model.user_ids_.n_ids, model.item_ids_.n_ids),
    )
    direct = implicit_als.AlternatingLeastSquares(
        factors=4, regularization=0.05, alpha=1.0, iterations=3, num_threads=1, random_state=0
    )
    direct.fit(matrix, show_progress=False)
    np.testing.assert_allclose(model.model_.user_factors, direct.user_factors, rtol=1e-5, atol=1e-6)

    expected_index, _ = direct.recommend(0, matrix[0], N=5)
    assert model.recommend(100, k=5).tolist() == model.item_ids_.inverse_transform(expected_index).tolist()


def test_implicit_excludes_seen_items(ratings):
    model = ImplicitALS(n_factors=4, random_state=0).fit(ratings)
    seen = set(ratings.loc[ratings["user_id"] == 100, "item_id"])
    ranked = model.recommend(100, k=30)
    assert not seen & set(ranked.tolist())
    assert len(ranked) == 30 - len(seen)
    assert len(model.recommend(100, k=30, exclude_seen=False)) == 30


def test_implicit_batch_matches_single(ratings):
    model = ImplicitALS(n_factors=4, random_state=0).fit(ratings)
    batch = model.recommend_batch([100, 101], k=5)
    assert batch[100].tolist() == model.recommend(100, k=5).tolist()
    assert batch[101].tolist() == model.recommend(101, k=5).tolist()


def test_implicit_predict_raises(ratings):
    model = ImplicitALS(n_factors=2).fit(ratings)
    with pytest.raises(NotImplementedError, match="does not predict ratings"):
        model.predict(ratings[["user_id", "item_id"]])


def test_implicit_unknown_user_raises(ratings):
    model = ImplicitALS(n_factors=2).fit(ratings)
    with pytest.raises(UnknownIdError, match="not seen in fit, for example 7"):
        model.recommend(7)


def test_implicit_rating_weights_positive(ratings):
    shifted = ratings.assign(rating=ratings["rating"] - 3)
    with pytest.raises(ValueError, match="weights='rating' needs positive ratings"):
        ImplicitALS(weights="rating").fit(shifted)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_factors": 0}, "n_factors must be a positive int, got 0"),
        ({"n_epochs": 1.5}, "n_epochs must be a positive int, got 1.5"),
        ({"reg": -1.0}, r"reg must be a finite number >= 0, got -1.0"),
        ({"num_threads": -2}, "num_threads must be a non-negative int"),
        ({"weights": "log"}, "weights must be 'binary' or 'rating', got 'log'"),
    ],
)
def test_implicit_invalid_params(ratings, params, message):
    with pytest.raises(ValueError, match=message):
        ImplicitALS(**params).fit(ratings)


def test_implicit_no_blas_warning(ratings, recwarn):
    ImplicitALS(n_factors=2).fit(ratings)
    assert not [w for w in recwarn if "OpenBLAS" in str(w.message)]
