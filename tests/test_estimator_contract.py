"""scikit-learn estimator contract of the flowrec rating models.

Every estimator in ``ESTIMATORS`` runs through the same checks, so a new model
(tensor completion, graph model) is covered by adding one line.
"""

import ast
import inspect
import pickle
import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils.estimator_checks import parametrize_with_checks

from flowrec.models import LowRankMF

# Small, fast settings for each estimator under test.
ESTIMATORS = [
    LowRankMF(n_factors=3, n_epochs=15, lr=0.05, random_state=0, device="cpu"),
]


def _ids(estimator):
    return type(estimator).__name__


def synthetic_ratings(n_users=30, n_items=20, density=0.5, seed=0):
    """Return a DataFrame of ratings drawn from a rank-2 model plus noise, about 1 to 5."""
    rng = np.random.default_rng(seed)
    user_factors = rng.normal(size=(n_users, 2))
    item_factors = rng.normal(size=(n_items, 2))
    mask = rng.random((n_users, n_items)) < density
    users, items = np.nonzero(mask)
    ratings = 3 + (user_factors[users] * item_factors[items]).sum(1) + 0.1 * rng.normal(size=users.size)
    return pd.DataFrame({"user_id": users, "item_id": items, "rating": np.clip(ratings, 1, 5)})


# ---------------------------------------------------------------------------
# scikit-learn's generic checks

# The generic checks feed float feature matrices with 1 to 10 columns and
# expect feature-matrix semantics. flowrec estimators take (user id, item id)
# pairs: X must have exactly two columns, each distinct value is an id (not a
# magnitude), and a pair repeated in X is a duplicate rating. These checks
# therefore cannot apply.
_NOT_PAIRS = "feeds X with a number of columns other than 2, but X must be (user id, item id) pairs"
EXPECTED_FAILED_CHECKS = {
    "check_fit_score_takes_y": _NOT_PAIRS,
    "check_dont_overwrite_parameters": _NOT_PAIRS,
    "check_n_features_in_after_fitting": _NOT_PAIRS,
    "check_positive_only_tag_during_fit": _NOT_PAIRS,
    "check_estimators_dtypes": _NOT_PAIRS,
    "check_complex_data": _NOT_PAIRS + " (the shape is rejected before the complex dtype)",
    "check_dtype_object": _NOT_PAIRS,
    "check_estimators_empty_data_messages": _NOT_PAIRS + " (expects a '0 feature(s)' message)",
    "check_pipeline_consistency": _NOT_PAIRS,
    "check_estimators_nan_inf": _NOT_PAIRS + " (NaN ids and ratings are rejected, see test_input.py)",
    "check_estimators_pickle": _NOT_PAIRS + " (pickling is tested on pairs below)",
    "check_f_contiguous_array_estimator": _NOT_PAIRS,
    "check_regressors_train": _NOT_PAIRS,
    "check_regressor_data_not_an_array": _NOT_PAIRS,
    "check_regressors_no_decision_function": _NOT_PAIRS,
    "check_supervised_y_2d": _NOT_PAIRS,
    "check_regressors_int": _NOT_PAIRS,
    "check_methods_sample_order_invariance": _NOT_PAIRS,
    "check_methods_subset_invariance": _NOT_PAIRS,
    "check_fit2d_1sample": _NOT_PAIRS + " (expects a '1 sample' message)",
    "check_fit2d_1feature": _NOT_PAIRS + " (expects a '1 feature(s)' message)",
    "check_dict_unchanged": _NOT_PAIRS,
    "check_fit2d_predict1d": _NOT_PAIRS,
}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------------
# Contract checks on (user, item) pairs


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_fit_returns_self(estimator):
    data = synthetic_ratings()
    model = clone(estimator)
    assert model.fit(data) is model


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_not_fitted_errors(estimator):
    model = clone(estimator)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        model.predict([[0, 0]])
    with pytest.raises(NotFittedError, match="not fitted yet"):
        model.recommend(0)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        model.predict_matrix()


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_init_stores_params_verbatim(estimator):
    options = {"betas": (0.8, 0.99)}
    model = clone(estimator).set_params(optimizer_options=options)
    assert model.get_params()["optimizer_options"] is options
    assert clone(model).get_params()["optimizer_options"] == options


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_fit_does_not_mutate_inputs(estimator):
    data = synthetic_ratings()
    copy = data.copy()
    options = {"betas": (0.8, 0.99)}
    clone(estimator).set_params(optimizer_options=options).fit(data)
    pd.testing.assert_frame_equal(data, copy)
    assert options == {"betas": (0.8, 0.99)}


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_same_seed_same_result(estimator):
    data = synthetic_ratings()
    first = clone(estimator).fit(data).predict(data)
    second = clone(estimator).fit(data).predict(data)
    np.testing.assert_array_equal(first, second)
    other = clone(estimator).set_params(random_state=1).fit(data).predict(data)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_global_rngs_untouched(estimator):
    data = synthetic_ratings()
    numpy_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state().clone()
    clone(estimator).set_params(validation_fraction=0.2).fit(data)
    clone(estimator).set_params(random_state=None).fit(data)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_grid_search_reproducible(estimator):
    data = synthetic_ratings()
    X, y = data[["user_id", "item_id"]], data["rating"]
    grid = {"lr": [0.02, 0.1]}
    runs = []
    for _ in range(2):
        search = GridSearchCV(clone(estimator), grid, cv=KFold(3, shuffle=True, random_state=0))
        search.fit(X, y)
        runs.append(search)
    assert runs[0].best_params_ == runs[1].best_params_
    np.testing.assert_array_equal(runs[0].cv_results_["mean_test_score"],
                                  runs[1].cv_results_["mean_test_score"])
    assert np.all(np.isfinite(runs[0].cv_results_["mean_test_score"]))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_pickle_round_trip(estimator):
    data = synthetic_ratings()
    model = clone(estimator).fit(data)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(data), model.predict(data))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_save_load_round_trip(estimator, tmp_path):
    data = synthetic_ratings()
    model = clone(estimator).fit(data)
    model.save(tmp_path / "model.pkl")
    restored = type(model).load(tmp_path / "model.pkl")
    np.testing.assert_array_equal(restored.predict(data), model.predict(data))
    assert restored.recommend(0, k=3) == model.recommend(0, k=3)
    assert list(tmp_path.iterdir()) == [tmp_path / "model.pkl"]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_load_rejects_other_files(estimator, tmp_path):
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2]}))
    with pytest.raises(ValueError, match="was not written by .*save"):
        type(estimator).load(path)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_device_recorded(estimator):
    data = synthetic_ratings()
    model = clone(estimator).set_params(device="auto").fit(data)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert model.device_.startswith(expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_request_without_cuda():
    data = synthetic_ratings()
    with pytest.raises(ValueError, match=r"device='cuda' was requested but torch reports no CUDA device"):
        clone(ESTIMATORS[0]).set_params(device="cuda").fit(data)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_fitted_state_holds_no_tensors(estimator, tmp_path):
    # Without torch tensors in the fitted state, a pickle written after a CUDA
    # fit contains nothing that needs CUDA to load. The CUDA test below checks
    # the same on a device.
    model = clone(estimator).fit(synthetic_ratings())
    tensors = [name for name, value in vars(model).items() if isinstance(value, torch.Tensor)]
    assert tensors == []
    model.save(tmp_path / "model.pkl")
    assert b"torch" not in (tmp_path / "model.pkl").read_bytes()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_cuda_fit_loads_on_cpu(estimator, tmp_path):
    data = synthetic_ratings()
    model = clone(estimator).set_params(device="cuda").fit(data)
    assert model.device_.startswith("cuda")
    model.save(tmp_path / "model.pkl")
    restored = type(model).load(tmp_path / "model.pkl")
    for attribute in type(model)._parameter_attributes.values():
        assert isinstance(getattr(restored, attribute), np.ndarray)
    np.testing.assert_array_equal(restored.predict(data), model.predict(data))
    cpu = clone(estimator).set_params(device="cpu").fit(data)
    np.testing.assert_allclose(cpu.predict(data), model.predict(data), atol=1e-3)


# ---------------------------------------------------------------------------
# Parameter table

INVALID_PARAMETERS = [
    ("lr", 0, "lr must be a finite real number > 0, got 0"),
    ("lr", float("nan"), "lr must be a finite real number > 0, got nan"),
    ("n_epochs", 0, "n_epochs must be a positive int, got 0"),
    ("n_epochs", 2.5, "n_epochs must be a positive int, got 2.5"),
    ("tol", -1.0, r"tol must be None or a finite real number > 0, got -1.0"),
    ("validation_fraction", 1.0, r"validation_fraction must be None or a real number in the open interval \(0, 1\), got 1.0"),
    ("patience", 0, "patience must be a positive int, got 0"),
    ("rating_scale", (5, 1), r"rating_scale must be None or a pair \(r_min, r_max\) .* got \(5, 1\)"),
    ("clip_predictions", "yes", "clip_predictions must be True or False, got 'yes'"),
    ("unknown", "ignore", r"unknown must be one of \['fallback', 'raise', 'nan'\], got 'ignore'"),
    ("duplicates", "first", r"duplicates must be one of \['raise', 'mean', 'last'\], got 'first'"),
    ("device", "tpu", "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
    ("dtype", "float16", "dtype must be 'float32' or 'float64', got 'float16'"),
    ("random_state", -1, "random_state must be None, an int >= 0 or a NumPy Generator or RandomState, got -1"),
    ("optimizer_options", [1], r"optimizer_options must be None or a dict, got \[1\]"),
    ("optimizer", 3, "optimizer must be an optimizer name, a torch Optimizer subclass or a callable, got 3"),
]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
@pytest.mark.parametrize(("name", "value", "message"), INVALID_PARAMETERS,
                         ids=[f"{name}={value!r}" for name, value, _ in INVALID_PARAMETERS])
def test_invalid_parameter_rejected(estimator, name, value, message):
    data = synthetic_ratings()
    model = clone(estimator).set_params(**{name: value})
    with pytest.raises(ValueError, match=message):
        model.fit(data)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids)
def test_documented_defaults_match_signature(estimator):
    """The numpydoc ``default=`` of every parameter equals the default in ``__init__``."""
    cls = type(estimator)
    signature = inspect.signature(cls.__init__)
    documented = dict(re.findall(r"^    (\w+) : [^\n]*default=([^\n]+)$", cls.__doc__, flags=re.M))
    for name, parameter in signature.parameters.items():
        if name == "self":
            continue
        assert name in documented, f"{cls.__name__} docstring has no 'default=' for {name}"
        assert ast.literal_eval(documented[name]) == parameter.default, (
            f"{cls.__name__}.{name}: documented default={documented[name]}, "
            f"code default={parameter.default!r}"
        )
