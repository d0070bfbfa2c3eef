"""Tests of LowRankMF: kernel, quality on MovieLens 100K, policies and edge cases."""

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted

import flowrec.models._base as base_module
from flowrec.exceptions import (
    DivergenceError,
    DuplicateRatingsError,
    IdTypeError,
    MemoryEstimateError,
    UnknownIdError,
)
from flowrec.metrics import rmse
from flowrec.models import LowRankMF, fit_low_rank_mf
from flowrec.models._mf_kernels import make_mf_data, mf_loss, mf_loss_and_grad
from flowrec.models._training import train_full_batch

COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


def fast_model(**params):
    defaults = {"n_factors": 4, "n_epochs": 20, "random_state": 0, "device": "cpu"}
    return LowRankMF(**{**defaults, **params})


def small_ratings(seed=0, n_users=25, n_items=15, density=0.5):
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    ratings = rng.integers(1, 6, size=users.size).astype(float)
    return pd.DataFrame({"user_id": users, "item_id": items, "rating": ratings})


def read_fold(data_home, name):
    return pd.read_csv(data_home / "ml-100k" / name, sep="\t", names=COLUMNS)


def surprise_svd_rmse(train, test):
    surprise = pytest.importorskip("surprise")
    reader = surprise.Reader(rating_scale=(1, 5))
    trainset = surprise.Dataset.load_from_df(train[COLUMNS[:3]], reader).build_full_trainset()
    algorithm = surprise.SVD(random_state=0).fit(trainset)
    predictions = [algorithm.predict(u, i).est for u, i in zip(test.user_id, test.item_id)]
    return rmse(test.rating, predictions)


# ---------------------------------------------------------------------------
# Kernel


@pytest.mark.parametrize("biases", [True, False])
def test_gradient_matches_autograd(biases):
    generator = torch.Generator().manual_seed(0)
    n_users, n_items, n_factors = 12, 9, 5
    # distinct pairs in shuffled order, so the kernel has to sort them itself
    pairs = torch.randperm(n_users * n_items, generator=generator)[:60]
    users, items = pairs // n_items, pairs % n_items
    ratings = torch.rand(pairs.shape[0], generator=generator, dtype=torch.float64) * 4 + 1
    data = make_mf_data(users, items, ratings, n_users, n_items,
                        global_mean=float(ratings.mean()), reg=0.07, reg_bias=0.03)
    parameters = {
        "user_factors": torch.randn(n_users, n_factors, generator=generator, dtype=torch.float64),
        "item_factors": torch.randn(n_items, n_factors, generator=generator, dtype=torch.float64),
    }
    if biases:
        parameters["user_bias"] = torch.randn(n_users, generator=generator, dtype=torch.float64)
        parameters["item_bias"] = torch.randn(n_items, generator=generator, dtype=torch.float64)
    reference = {name: tensor.clone().requires_grad_(True) for name, tensor in parameters.items()}

    expected_loss = mf_loss(reference, data)
    expected_loss.backward()
    loss = mf_loss_and_grad(parameters, data)

    assert float(loss) == pytest.approx(float(expected_loss.detach()), rel=1e-12)
    for name in parameters:
        torch.testing.assert_close(parameters[name].grad, reference[name].grad, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# Quality on MovieLens 100K


def test_u1_beats_surprise_svd_small(data_home):
    train = read_fold(data_home, "u1.base")
    test = read_fold(data_home, "u1.test")
    model = LowRankMF(n_factors=32, n_epochs=60, random_state=0, device="cpu").fit(train[COLUMNS[:3]])
    ours = rmse(test.rating, model.predict(test[COLUMNS[:2]]))
    theirs = surprise_svd_rmse(train, test)
    assert ours < theirs
    assert ours < 0.935


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["flowadam", "adam"])
def test_defaults_beat_surprise_svd_all_folds(data_home, optimizer):
    ours, theirs = [], []
    for fold in range(1, 6):
        train = read_fold(data_home, f"u{fold}.base")
        test = read_fold(data_home, f"u{fold}.test")
        model = LowRankMF(optimizer=optimizer, random_state=0).fit(train[COLUMNS[:3]])
        ours.append(rmse(test.rating, model.predict(test[COLUMNS[:2]])))
        theirs.append(surprise_svd_rmse(train, test))
    assert np.mean(ours) < np.mean(theirs)
    assert all(a < b for a, b in zip(ours, theirs)), (ours, theirs)


# ---------------------------------------------------------------------------
# Fitted state, history and the training loop


def test_fitted_attributes_shapes():
    data = small_ratings()
    model = fast_model(n_factors=3).fit(data)
    n_users, n_items = data.user_id.nunique(), data.item_id.nunique()
    assert model.user_factors_.shape == (n_users, 3)
    assert model.item_factors_.shape == (n_items, 3)
    assert model.user_bias_.shape == (n_users,)
    assert model.item_bias_.shape == (n_items,)
    assert model.global_mean_ == pytest.approx(data.rating.mean())
    assert model.user_ids_.ids_.tolist() == sorted(data.user_id.unique())
    assert model.device_ == "cpu"
    assert model.n_epochs_ == 20


def test_history_columns_and_counts():
    model = fast_model(optimizer="flowadam").fit(small_ratings())
    history = model.history_
    for column in ["epoch", "loss", "val_rmse", "mode", "grad_evals", "seconds", "epoch_seconds"]:
        assert column in history.columns
    assert history.epoch.tolist() == list(range(1, 21))
    assert history.val_rmse.isna().all()
    assert set(history["mode"]) <= {"adam", "ode"}
    assert history.grad_evals.is_monotonic_increasing
    assert model.n_grad_evals_ == history.grad_evals.iloc[-1]
    assert history.seconds.is_monotonic_increasing
    assert model.fit_time_ >= history.seconds.iloc[-1]


def test_history_records_ode_epochs():
    # A stall threshold above any real value forces FlowAdam into ODE phases.
    options = {"triggers": ("stall",), "thresholds": {"stall": (10.0, 20.0)}, "warmup": 3,
               "cooldown": 3, "ode_steps": 4, "integrator": "heun"}
    model = fast_model(optimizer="flowadam", optimizer_options=options).fit(small_ratings())
    history = model.history_
    evals_per_epoch = history.grad_evals.diff().fillna(history.grad_evals.iloc[0])
    assert (history["mode"] == "ode").sum() >= 4
    # Heun takes two closure calls per sub-step. With step control, the first
    # epoch of a phase also evaluates the phase's start point, so it takes three.
    assert evals_per_epoch[history["mode"] == "ode"].isin([2, 3]).all()
    assert (evals_per_epoch[history["mode"] == "adam"] == 1).all()
    assert model.n_grad_evals_ == history.grad_evals.iloc[-1]
    assert model.n_grad_evals_ > model.n_epochs_


def test_history_mode_is_optimizer_name():
    model = fast_model(optimizer="sgd", lr=0.5).fit(small_ratings())
    assert set(model.history_["mode"]) == {"sgd"}
    assert model.n_grad_evals_ == 20


def test_loss_decreases_with_adam():
    model = fast_model(optimizer="adam", n_epochs=50).fit(small_ratings())
    assert model.history_.loss.iloc[-1] < 0.5 * model.history_.loss.iloc[0]


def test_class_passes_arguments_to_loop(monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return train_full_batch(*args, **kwargs)

    monkeypatch.setattr(base_module, "train_full_batch", spy)
    options = {"betas": (0.8, 0.9)}
    fast_model(optimizer="adam", optimizer_options=options, lr=0.03, n_epochs=7, tol=1e-9,
               validation_fraction=0.2, patience=4, verbose=False).fit(small_ratings())
    (call,) = calls
    assert call["optimizer"] == "adam"
    assert call["optimizer_options"] is options
    assert call["lr"] == 0.03
    assert call["n_epochs"] == 7
    assert call["tol"] == 1e-9
    assert call["patience"] == 4
    assert call["validation_rmse"] is not None
    assert call["verbose"] is False


def test_solver_function_matches_class():
    data = small_ratings()
    params = {"n_factors": 3, "reg": 0.2, "reg_bias": 0.01, "init_std": 0.3, "lr": 0.02,
              "n_epochs": 12, "optimizer": "adam", "optimizer_options": {"betas": (0.8, 0.95)}}
    model = fast_model(**params).fit(data)
    result = fit_low_rank_mf(data.user_id, data.item_id, data.rating, random_state=0, **params)
    for name, attribute in LowRankMF._parameter_attributes.items():
        np.testing.assert_array_equal(result.parameters[name].numpy(), getattr(model, attribute))
    pd.testing.assert_series_equal(result.history.loss, model.history_.loss)


def test_validation_early_stopping_restores_best():
    data = small_ratings(n_users=60, n_items=40)
    model = fast_model(n_factors=20, reg=0.0, lr=0.1, n_epochs=300, validation_fraction=0.3,
                       patience=5).fit(data)
    history = model.history_
    assert history.val_rmse.notna().all()
    assert model.best_epoch_ == int(history.epoch[history.val_rmse.idxmin()])
    assert model.n_epochs_ == model.best_epoch_ + 5
    assert model.converged_


def test_validation_rmse_matches_restored_model():
    data = small_ratings(n_users=60, n_items=40)
    model = fast_model(n_epochs=30, validation_fraction=0.25).fit(data)
    order = np.random.default_rng(0).permutation(len(data))
    held_out = data.iloc[np.sort(order[: int(round(0.25 * len(data)))])]
    expected = rmse(held_out.rating, model.predict(held_out[["user_id", "item_id"]]))
    assert model.history_.val_rmse.min() == pytest.approx(expected, rel=1e-5)


def test_tol_stops_early():
    model = fast_model(optimizer="adam", n_epochs=2000, tol=1e-4).fit(small_ratings())
    assert model.converged_
    assert model.n_epochs_ < 2000


def test_tol_not_reached_logs_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="flowrec.models._training"):
        model = fast_model(n_epochs=3, tol=1e-12).fit(small_ratings())
    assert not model.converged_
    assert "reached n_epochs=3 without the relative loss change falling below tol=1e-12" in caplog.text


def test_no_warning_without_tol(caplog):
    with caplog.at_level(logging.WARNING, logger="flowrec.models._training"):
        fast_model(n_epochs=3).fit(small_ratings())
    assert caplog.text == ""


def test_verbose_shows_progress_bar(capsys):
    fast_model(n_epochs=3, verbose=True, validation_fraction=0.2).fit(small_ratings())
    captured = capsys.readouterr()
    assert "LowRankMF" in captured.err
    assert "val_rmse=" in captured.err
    assert "mode=" in captured.err
    assert captured.out == ""


def test_quiet_by_default(capsys):
    fast_model(n_epochs=3).fit(small_ratings())
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


@pytest.mark.parametrize("make_state", [lambda: np.random.default_rng(5), lambda: np.random.RandomState(5)])
def test_numpy_random_state_accepted(make_state):
    data = small_ratings()
    first = fast_model(random_state=make_state()).fit(data).predict(data)
    second = fast_model(random_state=make_state()).fit(data).predict(data)
    np.testing.assert_array_equal(first, second)


def test_float64_training():
    model = fast_model(dtype="float64").fit(small_ratings())
    assert model.user_factors_.dtype == np.float64
    assert model.dtype_ == "float64"


# ---------------------------------------------------------------------------
# Divergence and interrupts


def _hundreds():
    data = small_ratings()
    return data.assign(rating=data.rating * 100)


def test_divergence_raises_and_leaves_unfitted():
    # SGD, because Adam-type steps are bounded by lr and do not overflow here;
    # normalize_ratings=False, because normalized ratings do not diverge at lr=1.
    model = fast_model(optimizer="sgd", lr=1.0, n_epochs=100, normalize_ratings=False)
    with pytest.raises(DivergenceError, match=r"diverged at epoch \d+: .*lower the learning rate \(lr=1.0, try lr=0.1\)") as info:
        model.fit(_hundreds())
    assert 1 <= info.value.epoch <= 100
    assert not [name for name in vars(model) if name.endswith("_")]
    with pytest.raises(NotFittedError):
        model.predict([[0, 0]])


def test_normalized_ratings_in_hundreds_do_not_diverge():
    data = _hundreds()
    model = fast_model(optimizer="sgd", lr=1.0, n_epochs=100).fit(data)
    assert model.rating_spread_ == pytest.approx(np.std(data.rating))
    assert np.isfinite(model.predict(data[["user_id", "item_id"]])).all()


def test_normalization_keeps_predictions_in_rating_units():
    data = small_ratings()
    shifted = data.assign(rating=data.rating * 4 - 10)
    plain = fast_model(n_epochs=40).fit(data)
    scaled = fast_model(n_epochs=40).fit(shifted)
    pairs = data[["user_id", "item_id"]]
    # a rating scale change by a*r+b maps every prediction the same way
    np.testing.assert_allclose(scaled.predict(pairs), plain.predict(pairs) * 4 - 10, atol=1e-4)
    assert scaled.global_mean_ == pytest.approx(shifted.rating.mean())


def test_divergence_on_refit_clears_previous_model():
    model = fast_model(optimizer="sgd", lr=0.01, normalize_ratings=False).fit(small_ratings())
    model.set_params(lr=1.0, n_epochs=100)
    with pytest.raises(DivergenceError, match="diverged at epoch"):
        model.fit(_hundreds())
    with pytest.raises(NotFittedError):
        check_is_fitted(model, "global_mean_")


class _InterruptingAdam(torch.optim.Adam):
    """Adam that raises KeyboardInterrupt in the middle of step number ``at`` (after one closure call)."""

    def __init__(self, params, lr, at):
        super().__init__(params, lr=lr)
        self.at = at
        self.steps = 0

    def step(self, closure=None):
        self.steps += 1
        if self.steps == self.at:
            closure()
            for group in self.param_groups:
                for parameter in group["params"]:
                    parameter.add_(1.0)  # a half-done update that must not survive
            raise KeyboardInterrupt
        return super().step(closure)


def test_interrupt_keeps_last_completed_epoch():
    data = small_ratings()
    model = fast_model(optimizer=lambda params, lr: _InterruptingAdam(params, lr, at=4), n_epochs=50)
    with pytest.raises(KeyboardInterrupt):
        model.fit(data)
    assert model.interrupted_
    assert model.n_epochs_ == 3
    assert len(model.history_) == 3
    reference = fast_model(optimizer="adam", n_epochs=3).fit(data)
    np.testing.assert_array_equal(model.user_factors_, reference.user_factors_)
    np.testing.assert_array_equal(model.predict(data), reference.predict(data))


def test_interrupt_in_first_epoch_leaves_unfitted():
    model = fast_model(optimizer=lambda params, lr: _InterruptingAdam(params, lr, at=1))
    with pytest.raises(KeyboardInterrupt):
        model.fit(small_ratings())
    with pytest.raises(NotFittedError):
        check_is_fitted(model, "global_mean_")


def test_uninterrupted_fit_flag():
    assert fast_model().fit(small_ratings()).interrupted_ is False


# ---------------------------------------------------------------------------
# Unknown ids, id types and duplicates


def _known_unknown_pairs(data):
    known_user, known_item = data.user_id.iloc[0], data.item_id.iloc[0]
    return pd.DataFrame({"user_id": [known_user, known_user, 999, 999],
                         "item_id": [known_item, 999, known_item, 998]})


def test_unknown_fallback_values():
    data = small_ratings()
    model = fast_model(clip_predictions=False).fit(data)
    pairs = _known_unknown_pairs(data)
    predictions, fallback = model.predict(pairs, return_fallback=True)
    user = model.user_ids_.transform([pairs.user_id[0]])[0]
    item = model.item_ids_.transform([pairs.item_id[0]])[0]
    assert fallback.tolist() == [False, True, True, True]
    assert int(fallback.sum()) == 3
    assert predictions[1] == pytest.approx(model.global_mean_ + model.user_bias_[user])
    assert predictions[2] == pytest.approx(model.global_mean_ + model.item_bias_[item])
    assert predictions[3] == pytest.approx(model.global_mean_)


def test_unknown_raise():
    data = small_ratings()
    model = fast_model(unknown="raise").fit(data)
    with pytest.raises(UnknownIdError, match=r"3 of 4 pairs contain ids not seen in fit, first item 999 at row 1"):
        model.predict(_known_unknown_pairs(data))


def test_unknown_nan():
    data = small_ratings()
    predictions = fast_model(unknown="nan").fit(data).predict(_known_unknown_pairs(data))
    assert np.isfinite(predictions[0])
    assert np.isnan(predictions[1:]).all()


def test_unknown_only_pairs_default_policy():
    model = fast_model().fit(small_ratings())
    predictions = model.predict([[1000, 2000], [1001, 2001]])
    assert np.allclose(predictions, model.global_mean_)


def test_string_ids_for_int_model_raise():
    model = fast_model().fit(small_ratings())
    with pytest.raises(IdTypeError, match=r"user ids have type str \(for example '17'\)"):
        model.predict([["17", 3]])


def test_mixed_id_types_in_fit_raise():
    X = [(1, 10), ("2", 11), (3, 12)]
    with pytest.raises(IdTypeError, match=r"user ids mix several types: 1 \(number, row 0\), '2' \(str, row 1\)"):
        fast_model().fit(X, [1.0, 2.0, 3.0])


def test_integral_float_ids_match_int_ids():
    data = small_ratings()
    model = fast_model().fit(data)
    as_float = data[["user_id", "item_id"]].astype(float)
    np.testing.assert_array_equal(model.predict(as_float), model.predict(data[["user_id", "item_id"]]))


def test_string_ids_round_trip():
    data = small_ratings()
    # zero-padded names keep the sorted order of the ints, so both fits map ids to the same rows
    named = data.assign(user_id=[f"u{v:03d}" for v in data.user_id],
                        item_id=[f"i{v:03d}" for v in data.item_id])
    model = fast_model().fit(named)
    numeric = fast_model().fit(data)
    np.testing.assert_allclose(model.predict(named), numeric.predict(data), rtol=1e-6)
    assert all(item.startswith("i") for item in model.recommend("u003", k=3))


def test_duplicates_raise_by_default():
    data = small_ratings()
    doubled = pd.concat([data, data.iloc[[0]]], ignore_index=True)
    with pytest.raises(DuplicateRatingsError, match=r"1 \(user, item\) pairs occur more than once.*duplicates='mean'"):
        fast_model().fit(doubled)


def test_duplicates_mean_equals_averaged_input():
    data = small_ratings()
    extra = data.iloc[[0]].assign(rating=data.rating.iloc[0] + 2)
    doubled = pd.concat([data, extra], ignore_index=True)
    averaged = data.copy()
    averaged.loc[0, "rating"] += 1
    merged = fast_model(duplicates="mean").fit(doubled)
    reference = fast_model().fit(averaged)
    np.testing.assert_allclose(merged.predict(data), reference.predict(data), rtol=1e-6)


def test_duplicates_last_keeps_last_rating():
    data = small_ratings()
    extra = data.iloc[[0]].assign(rating=1.0)
    merged = fast_model(duplicates="last").fit(pd.concat([data, extra], ignore_index=True))
    reference = fast_model().fit(data.assign(rating=np.r_[1.0, data.rating.iloc[1:]]))
    np.testing.assert_allclose(merged.predict(data), reference.predict(data), rtol=1e-6)


# ---------------------------------------------------------------------------
# Input checks and tiny data


def test_nan_rating_named_by_row():
    data = small_ratings()
    data.loc[[2, 5], "rating"] = [np.nan, np.inf]
    with pytest.raises(ValueError, match=r"2 NaN or infinite values at rows \[2, 5\]"):
        fast_model().fit(data)


def test_rating_outside_declared_scale():
    data = small_ratings()
    data.loc[4, "rating"] = 7.0
    with pytest.raises(ValueError, match=r"1 ratings lie outside rating_scale=\(1, 5\), first 7 at row 4"):
        fast_model(rating_scale=(1, 5)).fit(data)


def test_clipping_bounds_predictions_only():
    data = small_ratings()
    original = data.rating.copy()
    model = fast_model(rating_scale=(1, 5), n_epochs=60, lr=0.1).fit(data)
    grid = np.array([(u, i) for u in range(25) for i in range(15)])
    predictions = model.predict(grid)
    assert predictions.min() >= 1
    assert predictions.max() <= 5
    pd.testing.assert_series_equal(data.rating, original)
    unclipped = model.set_params(clip_predictions=False).predict(grid)
    inside = (unclipped >= 1) & (unclipped <= 5)
    np.testing.assert_array_equal(predictions[inside], unclipped[inside])


def test_inferred_scale():
    data = small_ratings()
    model = fast_model().fit(data)
    assert model.rating_scale_ == (1.0, 5.0)


def test_empty_input_raises():
    with pytest.raises(ValueError, match="no interactions"):
        fast_model().fit(np.zeros((0, 2)), np.zeros(0))


def test_more_factors_than_users():
    data = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "rating": [4.0, 2.0]})
    model = fast_model(n_factors=50).fit(data)
    assert model.user_factors_.shape == (2, 50)
    assert np.isfinite(model.predict(data)).all()


def test_single_rating():
    model = fast_model().fit([[7, 8]], [3.5])
    assert model.predict([[7, 8]])[0] == pytest.approx(3.5)
    assert model.recommend(7) == []


def test_validation_fraction_too_large_for_data():
    with pytest.raises(ValueError, match=r"validation_fraction=0.5 leaves 0 of 1 ratings for validation"):
        fast_model(validation_fraction=0.5).fit([[7, 8]], [3.5])


def test_transposed_matrix_rejected():
    data = small_ratings(n_users=4, n_items=3, density=1.0)
    model = fast_model().fit(data)
    with pytest.raises(ValueError, match=r"X has shape \(3, 4\), the transpose of the fitted users-by-items shape \(4, 3\)"):
        model.predict(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"X has the fitted users-by-items shape \(4, 3\)"):
        model.predict(np.zeros((4, 3)))


def test_frame_with_matrix_like_shape_accepted():
    data = small_ratings(n_users=4, n_items=3, density=1.0)
    model = fast_model().fit(data)
    frame = data.iloc[:4]  # 4 rows x 3 columns, the fitted (users, items) shape
    assert model.predict(frame).shape == (4,)


# ---------------------------------------------------------------------------
# Prediction helpers


def test_predict_matrix_matches_predict():
    data = small_ratings()
    model = fast_model().fit(data)
    dense = model.predict_matrix()
    users, items = np.meshgrid(model.user_ids_.ids_, model.item_ids_.ids_, indexing="ij")
    pairs = np.column_stack([users.ravel(), items.ravel()])
    np.testing.assert_allclose(dense.ravel(), model.predict(pairs), rtol=1e-6)


def test_predict_matrix_memory_estimate():
    model = fast_model().fit(small_ratings())
    with pytest.raises(MemoryEstimateError, match=r"about 6000 bytes for 25 users x 15 items, over max_bytes=100"):
        model.predict_matrix(max_bytes=100)


def test_recommend_excludes_seen_and_ranks():
    data = small_ratings()
    model = fast_model().fit(data)
    seen = set(data.item_id[data.user_id == 3])
    recommended = model.recommend(3, k=100)
    assert set(recommended).isdisjoint(seen)
    assert len(recommended) == 15 - len(seen)
    scores = model.predict([[3, item] for item in recommended])
    assert np.all(np.diff(scores) <= 1e-9)
    assert len(model.recommend(3, k=100, exclude_seen=False)) == 15


def test_recommend_everything_seen_returns_empty():
    data = small_ratings(n_users=3, n_items=4, density=1.0)
    assert fast_model().fit(data).recommend(0) == []


def test_recommend_unknown_user():
    data = small_ratings()
    model = fast_model().fit(data)
    order = np.argsort(-model.item_bias_, kind="stable")[:5]
    assert model.recommend(9999, k=5) == model.item_ids_.ids_[order].tolist()
    with pytest.raises(UnknownIdError, match="user 9999 was not seen in fit"):
        model.set_params(unknown="raise").recommend(9999)


def test_recommend_invalid_k():
    model = fast_model().fit(small_ratings())
    with pytest.raises(ValueError, match="k must be a positive int, got 0"):
        model.recommend(0, k=0)


def test_score_is_r2():
    data = small_ratings()
    model = fast_model().fit(data)
    X = data[["user_id", "item_id"]]
    assert model.score(X, data.rating) == pytest.approx(r2_score(data.rating, model.predict(X)))


def test_no_biases():
    model = fast_model(biases=False).fit(small_ratings())
    assert not model.user_bias_.any()
    assert not model.item_bias_.any()


def test_save_load_identical(tmp_path):
    data = small_ratings()
    model = fast_model().fit(data)
    model.save(tmp_path / "mf.pkl")
    restored = LowRankMF.load(tmp_path / "mf.pkl")
    np.testing.assert_array_equal(restored.predict(data), model.predict(data))
    assert restored.recommend(2) == model.recommend(2)
    pd.testing.assert_frame_equal(restored.history_, model.history_)


# ---------------------------------------------------------------------------
# Memory


def test_memory_grows_with_ratings_not_users_times_items():
    """Fit 200,000 users x 50 items with one rating each in a fresh process and bound its peak RSS."""
    script = textwrap.dedent(
        """
        import resource
        import numpy as np
        import torch
        from flowrec.models import LowRankMF, fit_low_rank_mf

        torch.set_num_threads(1)
        rng = np.random.default_rng(0)
        n_users = 200_000
        X = np.column_stack([np.arange(n_users), rng.integers(0, 50, n_users)])
        y = rng.integers(1, 6, n_users).astype(float)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        model = LowRankMF(n_factors=16, n_epochs=3, random_state=0, device="cpu").fit(X, y)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert model.user_factors_.shape == (n_users, 16)
        print((after - before) // 1024)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    growth_mb = int(result.stdout.strip().splitlines()[-1])
    # The float32 factors are 13 MB, and FlowAdam keeps about five same-sized buffers per
    # parameter; the rest is id mapping and allocator slack (measured: about 430 MB with the
    # default optimizer). A users x users float32 matrix would need 160 GB.
    assert growth_mb < 500, f"peak RSS grew by {growth_mb} MB"


# ---------------------------------------------------------------------------
# Held-out learning curves (eval_set)


def test_eval_set_records_curve_without_changing_training():
    data = small_ratings(n_users=60, n_items=40)
    train, held_out = data.iloc[40:], data.iloc[:40]
    plain = fast_model(n_epochs=25).fit(train)
    monitored = fast_model(n_epochs=25).fit(train, eval_set=held_out)
    pd.testing.assert_series_equal(plain.history_.loss, monitored.history_.loss)
    np.testing.assert_array_equal(plain.user_factors_, monitored.user_factors_)
    assert plain.history_.eval_rmse.isna().all()
    assert monitored.history_.eval_rmse.notna().all()
    final = rmse(held_out.rating, monitored.predict(held_out[["user_id", "item_id"]]))
    assert monitored.history_.eval_rmse.iloc[-1] == pytest.approx(final, rel=1e-5)


def test_eval_set_accepts_pairs_and_ratings_tuple():
    data = small_ratings()
    model = fast_model(n_epochs=5).fit(data, eval_set=(data[["user_id", "item_id"]], data.rating))
    assert model.history_.eval_rmse.notna().all()


def test_eval_set_with_unknown_ids_uses_fallback():
    data = small_ratings()
    unseen = pd.DataFrame({"user_id": [999], "item_id": [0], "rating": [3.0]})
    model = fast_model(n_epochs=5).fit(data, eval_set=unseen)
    assert np.isfinite(model.history_.eval_rmse).all()


def test_exploding_finite_loss_raises_divergence():
    # Adam moves each parameter by about lr per step, so lr=1e3 drives the loss
    # up by many orders of magnitude without reaching inf.
    model = fast_model(optimizer="adam", lr=1e3, n_epochs=30)
    with pytest.raises(DivergenceError, match=r"diverged at epoch \d+: the loss grew from .* at epoch 1 to .*, over 1000 times its first value"):
        model.fit(small_ratings())
    assert not [name for name in vars(model) if name.endswith("_")]


def test_save_unfitted_raises(tmp_path):
    with pytest.raises(NotFittedError):
        fast_model().save(tmp_path / "model.pkl")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("content", [b"not a pickle at all", b"\x80\x05\x95"])
def test_load_foreign_file_names_path(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"notes.txt is not a model file written by LowRankMF.save"):
        LowRankMF.load(path)


def test_duplicates_last_follows_timestamp():
    data = pd.DataFrame({
        "user_id": [1, 1, 2, 1],
        "item_id": [7, 7, 7, 8],
        "rating": [5.0, 1.0, 3.0, 2.0],
        "timestamp": [300, 100, 200, 50],
    })
    by_time = fast_model(duplicates="last", biases=False, n_factors=1, init_std=0.0).fit(data)
    by_order = fast_model(duplicates="last", biases=False, n_factors=1, init_std=0.0).fit(
        data.drop(columns="timestamp"))
    # the rating at timestamp 300 (5.0) is the latest for (1, 7); in input order 1.0 is last
    assert by_time.global_mean_ == pytest.approx((5.0 + 3.0 + 2.0) / 3)
    assert by_order.global_mean_ == pytest.approx((1.0 + 3.0 + 2.0) / 3)


def test_duplicates_last_rejects_missing_timestamp():
    data = pd.DataFrame({"user_id": [1, 1], "item_id": [5, 5], "rating": [1.0, 5.0],
                         "timestamp": [np.nan, 10.0]})
    with pytest.raises(ValueError, match=r"1 timestamps are missing, first at rows \[0\]"):
        fast_model(duplicates="last").fit(data)


def test_duplicates_last_keeps_caller_row_numbers():
    data = pd.DataFrame({"user_id": [1, 2, 3, 4], "item_id": [1, 1, 1, 1],
                         "rating": [1.0, 2.0, 3.0, 9.0], "timestamp": [40, 30, 20, 10]})
    with pytest.raises(ValueError, match="first 9 at row 3"):
        fast_model(duplicates="last", rating_scale=(1, 5)).fit(data)


def test_recommend_with_tuple_ids():
    data = pd.DataFrame({"user_id": [("a", 1), ("a", 1), ("b", 2), ("c", 3)],
                         "item_id": [10, 11, 10, 12], "rating": [5.0, 3.0, 4.0, 2.0]})
    model = fast_model(n_factors=2).fit(data)
    assert model.recommend(("a", 1), k=5) == [12]


def test_lr_in_optimizer_options_rejected():
    with pytest.raises(ValueError, match=r"optimizer_options must not contain 'lr' \(got lr=0.5\); set the learning rate with the estimator's lr parameter"):
        fast_model(optimizer_options={"lr": 0.5}).fit(small_ratings())
