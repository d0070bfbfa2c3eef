"""Estimator base shared by every flowrec rating model.

:class:`BaseRatingModel` does everything that does not depend on the model.
That covers parameter validation, input parsing and id mapping, duplicate
merging, the validation split, device and dtype selection and seeding. It also
runs the training loop (history, progress bar, divergence checks, early
stopping, interrupts) and handles unknown ids, clipping, recommendation and
save/load.

The boundary to a model
-----------------------
A subclass supplies only these parts:

``_model_parameter_rules()``
    The allowed values of its own constructor parameters, as a dict of
    :class:`Rule`.
``_init_parameters(train, generator, device, dtype)``
    Build the trainable tensors (a dict of name to leaf tensor) for the
    :class:`Interactions` in ``train``, drawing random values from the CPU
    ``torch.Generator`` so that results do not depend on the device.
``_build_loss_and_grad(train)``
    Return ``loss_and_grad(parameters) -> Tensor``: the full-batch training
    loss, with every parameter's ``.grad`` written by the model's own kernel.
``_predict_indices(parameters, users, items, global_mean)``
    Predict ratings for known index pairs (int64 tensors).
``_predict_fallback(parameters, users, items, global_mean)`` (optional)
    Predict for pairs where a user or item index is -1 (unknown). The default
    returns the global training mean.
``_predict_dense(parameters, global_mean)`` (optional)
    Predict the full users-by-items matrix for ``predict_matrix``. The default
    loops over users with ``_predict_indices``.
``_rescale_parameters(parameters, scale)``
    Return parameters trained on ratings divided by ``scale`` converted to
    rating units, so that predictions grow by the factor ``scale``. Needed
    only when the model has a ``normalize_ratings`` parameter.
``_parameter_attributes`` (class attribute)
    Map each parameter name to the public fitted attribute that stores it as
    a NumPy array on the CPU, for example ``{"user_factors": "user_factors_"}``.

Everything else, including what ``fit`` records, is shared, so a new model
(tensor completion, a graph model) only writes those hooks.

NOTE: the base handles two id columns, (user, item). A model over more modes
needs :mod:`flowrec._input` to parse more id columns first.
"""

import logging
import numbers
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from flowrec._input import DUPLICATE_POLICIES, IdMap, _show, merge_duplicates, parse_interactions
from flowrec.exceptions import MemoryEstimateError, UnknownIdError
from flowrec.models._training import train_full_batch

__all__ = ["BaseRatingModel", "Interactions", "Rule"]

logger = logging.getLogger(__name__)

UNKNOWN_POLICIES = ("fallback", "raise", "nan")
_SAVE_FORMAT = 1


# ---------------------------------------------------------------------------
# Parameter validation


@dataclass(frozen=True)
class Rule:
    """One row of a parameter table: a predicate and the allowed values in words."""

    check: object
    allowed: str

    def validate(self, name, value):
        if not self.check(value):
            raise ValueError(f"{name} must be {self.allowed}, got {value!r}")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


def positive_int():
    return Rule(lambda v: _is_int(v) and v >= 1, "a positive int")


def non_negative_real():
    return Rule(lambda v: _is_real(v) and v >= 0, "a finite real number >= 0")


def positive_real():
    return Rule(lambda v: _is_real(v) and v > 0, "a finite real number > 0")


def boolean():
    return Rule(lambda v: isinstance(v, bool | np.bool_), "True or False")


def one_of(*options):
    return Rule(lambda v: isinstance(v, str) and v in options, f"one of {list(options)}")


def _is_rating_scale(value):
    if value is None:
        return True
    if not isinstance(value, tuple | list) or len(value) != 2:
        return False
    low, high = value
    return _is_real(low) and _is_real(high) and low < high


def _is_device(value):
    if isinstance(value, torch.device):
        return value.type in ("cpu", "cuda")
    return isinstance(value, str) and (value in ("auto", "cpu") or value.split(":")[0] == "cuda")


def _is_random_state(value):
    return value is None or (_is_int(value) and value >= 0) or isinstance(
        value, np.random.Generator | np.random.RandomState
    )


def _is_optimizer(value):
    return isinstance(value, str) or callable(value)


_DTYPES = {"float32": torch.float32, "float64": torch.float64,
           torch.float32: torch.float32, torch.float64: torch.float64}

BASE_PARAMETER_RULES = {
    "optimizer": Rule(_is_optimizer, "an optimizer name, a torch Optimizer subclass or a callable"),
    "optimizer_options": Rule(lambda v: v is None or isinstance(v, dict), "None or a dict"),
    "lr": positive_real(),
    "n_epochs": positive_int(),
    "tol": Rule(lambda v: v is None or (_is_real(v) and v > 0), "None or a finite real number > 0"),
    "validation_fraction": Rule(lambda v: v is None or (_is_real(v) and 0 < v < 1),
                                "None or a real number in the open interval (0, 1)"),
    "patience": positive_int(),
    "rating_scale": Rule(_is_rating_scale, "None or a pair (r_min, r_max) of finite numbers with r_min < r_max"),
    "clip_predictions": boolean(),
    "normalize_ratings": boolean(),
    "unknown": one_of(*UNKNOWN_POLICIES),
    "duplicates": one_of(*DUPLICATE_POLICIES),
    "device": Rule(_is_device, "'auto', 'cpu', 'cuda' or 'cuda:N'"),
    "dtype": Rule(lambda v: v in _DTYPES if isinstance(v, str | torch.dtype) else False,
                  "'float32' or 'float64'"),
    "random_state": Rule(_is_random_state, "None, an int >= 0 or a NumPy Generator or RandomState"),
    "verbose": Rule(lambda v: isinstance(v, bool | np.bool_) or (_is_int(v) and v >= 0),
                    "a bool or an int >= 0"),
}


# ---------------------------------------------------------------------------
# Helpers for fit


@dataclass
class Interactions:
    """Training ratings as tensors on the training device, handed to the model hooks.

    Attributes
    ----------
    users, items : Tensor of shape (n_ratings,), int64
        Contiguous indices.
    ratings : Tensor of shape (n_ratings,)
        Ratings in the training dtype.
    n_users, n_items : int
    global_mean : float
        Mean training rating.
    """

    users: torch.Tensor
    items: torch.Tensor
    ratings: torch.Tensor
    n_users: int
    n_items: int
    global_mean: float


def resolve_device(device):
    """Return the torch device for a ``device`` parameter; ``"auto"`` picks CUDA when available."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but torch reports no CUDA device "
            f"(torch {torch.__version__}); use device='cpu' or device='auto'"
        )
    return torch.device(device)


def rating_spread(ratings):
    """Return the standard deviation of ``ratings``, or 1.0 when it is zero or undefined.

    ``normalize_ratings`` divides the training ratings by this value.
    """
    spread = float(np.std(ratings)) if len(ratings) else 0.0
    return spread if np.isfinite(spread) and spread > 0 else 1.0


def seed_from(random_state):
    """Return an int seed from ``random_state`` without touching NumPy's or torch's global RNG."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    return int(random_state)


# ---------------------------------------------------------------------------
# The base estimator


class BaseRatingModel(RegressorMixin, BaseEstimator):
    """Base of flowrec's explicit-rating estimators; see the module docstring for the hooks.

    ``score`` is scikit-learn's regressor score, the R² of the predictions,
    so that higher is better and ``GridSearchCV`` works without a scorer.
    For RMSE pass ``scoring="neg_root_mean_squared_error"``.
    """

    _parameter_attributes = {}

    # -- hooks ---------------------------------------------------------------

    def _model_parameter_rules(self):
        return {}

    def _init_parameters(self, train, generator, device, dtype):
        raise NotImplementedError

    def _build_loss_and_grad(self, train):
        raise NotImplementedError

    def _predict_indices(self, parameters, users, items, global_mean):
        raise NotImplementedError

    def _predict_fallback(self, parameters, users, items, global_mean):
        return torch.full(users.shape, global_mean, dtype=torch.float64)

    def _rescale_parameters(self, parameters, scale):
        raise NotImplementedError

    def _predict_dense(self, parameters, global_mean):
        """Return the (n_users, n_items) prediction tensor; models with a faster form override this."""
        items = torch.arange(self.n_items_)
        rows = []
        for user in range(self.n_users_):
            users = torch.full((self.n_items_,), user, dtype=torch.int64)
            rows.append(self._predict_indices(parameters, users, items, global_mean).double())
        return torch.stack(rows)

    # -- validation ----------------------------------------------------------

    def _validate_params(self):
        """Check every constructor parameter against the base and model tables before fitting."""
        rules = {**BASE_PARAMETER_RULES, **self._model_parameter_rules()}
        for name, value in self.get_params(deep=False).items():
            if name in rules:
                rules[name].validate(name, value)

    def _check_rating_scale(self, ratings):
        if self.rating_scale is None:
            return float(ratings.min()), float(ratings.max())
        low, high = (float(v) for v in self.rating_scale)
        outside = (ratings < low) | (ratings > high)
        if outside.any():
            rows = np.flatnonzero(outside)
            raise ValueError(
                f"{rows.size} ratings lie outside rating_scale={tuple(self.rating_scale)}, first "
                f"{ratings[rows[0]]:g} at row {rows[0]}; fix the data or pass a wider rating_scale "
                "(rating_scale=None infers it from the data)"
            )
        return low, high

    # -- fit -----------------------------------------------------------------

    def _clear_fitted(self):
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)

    def fit(self, X, y=None, *, eval_set=None):
        """Fit the model to ratings.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_ratings, 2)
            (user id, item id) pairs, or a DataFrame with ``user_id`` and
            ``item_id`` columns (and optionally ``rating``).
        y : array-like of shape (n_ratings,), default=None
            Ratings; may be omitted when ``X`` has a ``rating`` column.
        eval_set : DataFrame or tuple of (X_eval, y_eval), default=None
            Ratings scored after every epoch into the ``eval_rmse`` column of
            ``history_``, in the same forms as ``X`` and ``y``. They only
            draw learning curves: training, early stopping and the returned
            epoch never depend on them, so a test set may be passed. Unknown
            ids follow the fallback prediction.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For invalid parameters or input (see ``docs/errors.md``).
        DuplicateRatingsError
            If a (user, item) pair repeats and ``duplicates="raise"``.
        DivergenceError
            If training produces non-finite values. The estimator is then unfitted.
        KeyboardInterrupt
            Re-raised after storing the model of the last completed epoch with
            ``interrupted_ = True``, so an interrupted fit leaves a usable
            model. An interrupt during the first epoch leaves it unfitted.
        """
        # a failed refit must not leave the previous model behind
        self._clear_fitted()

        # check parameters and input
        self._validate_params()
        users, items, ratings = parse_interactions(X, y, require_ratings=True)
        rating_scale = self._check_rating_scale(ratings)
        if self.duplicates == "last" and isinstance(X, pd.DataFrame) and "timestamp" in X:
            # "last" means latest in time when the caller gives times; the order
            # is applied after validation so error messages keep the caller's rows
            order = _time_order(X["timestamp"])
            users, items, ratings = users[order], items[order], ratings[order]
        if eval_set is not None:
            eval_X, eval_y = eval_set if isinstance(eval_set, tuple) else (eval_set, None)
            eval_users, eval_items, eval_ratings = parse_interactions(
                eval_X, eval_y, require_ratings=True)
        device = resolve_device(self.device)
        dtype = _DTYPES[self.dtype]
        seed = seed_from(self.random_state)
        rng = np.random.default_rng(seed)
        generator = torch.Generator().manual_seed(seed)

        # merge duplicate pairs, then hold out the validation ratings
        all_users = IdMap("user").fit(users)
        all_items = IdMap("item").fit(items)
        u, i, r = merge_duplicates(
            all_users.transform(users), all_items.transform(items), ratings,
            policy=self.duplicates, user_ids=all_users, item_ids=all_items,
        )
        train_rows, val_rows = self._split_validation(r.shape[0], rng)

        # ids are mapped on the training part only, so validation treats unseen ids as predict does
        user_map = IdMap("user").fit(all_users.ids_[u[train_rows]])
        item_map = IdMap("item").fit(all_items.ids_[i[train_rows]])
        users_index = user_map.transform(all_users.ids_[u])
        items_index = item_map.transform(all_items.ids_[i])

        # Training runs on ratings divided by their spread, so that lr, reg and
        # init_std act alike on a 1-5 and a -10..10 scale. The parameters are
        # converted back to rating units after training.
        scale = 1.0
        if getattr(self, "normalize_ratings", False):
            scale = rating_spread(r[train_rows])
        train = self._interactions(users_index[train_rows], items_index[train_rows],
                                   r[train_rows] / scale, len(user_map), len(item_map), device, dtype)
        parameters = self._init_parameters(train, generator, device, dtype)
        loss_and_grad = self._build_loss_and_grad(train)
        validation_rmse = None
        if val_rows is not None:
            validation_rmse = self._validation_scorer(
                users_index[val_rows], items_index[val_rows], r[val_rows],
                train.global_mean, rating_scale, device, dtype, scale,
            )

        eval_rmse = None
        if eval_set is not None:
            eval_rmse = self._validation_scorer(
                user_map.transform(eval_users), item_map.transform(eval_items), eval_ratings,
                train.global_mean, rating_scale, device, dtype, scale,
            )

        # train
        logger.info("%s: fitting %d ratings, %d users, %d items on %s",
                    type(self).__name__, train.users.shape[0], train.n_users, train.n_items, device)
        result = train_full_batch(
            parameters, loss_and_grad,
            optimizer=self.optimizer, optimizer_options=self.optimizer_options, lr=self.lr,
            n_epochs=self.n_epochs, tol=self.tol, validation_rmse=validation_rmse,
            eval_rmse=eval_rmse, patience=self.patience, verbose=bool(self.verbose), description=type(self).__name__,
        )

        logger.info("%s: %d epochs, %d gradient evaluations, %.2f s, model of epoch %d",
                    type(self).__name__, result.n_epochs, result.n_grad_evals, result.fit_time,
                    result.best_epoch)

        # store the fitted state in one go
        known = (users_index >= 0) & (items_index >= 0)
        fitted = {
            "user_ids_": user_map,
            "item_ids_": item_map,
            "n_features_in_": 2,
            "n_users_": len(user_map),
            "n_items_": len(item_map),
            "global_mean_": train.global_mean * scale,
            "rating_scale_": rating_scale,
            "rating_spread_": scale,
            "device_": str(device),
            "dtype_": str(dtype).replace("torch.", ""),
            "history_": result.history,
            "n_epochs_": result.n_epochs,
            "n_grad_evals_": result.n_grad_evals,
            "best_epoch_": result.best_epoch,
            "fit_time_": result.fit_time,
            "converged_": result.converged,
            "interrupted_": result.interrupted,
            "seen_": _seen_matrix(users_index[known], items_index[known], len(user_map), len(item_map)),
        }
        trained = result.parameters
        if scale != 1.0:
            trained = self._rescale_parameters(trained, scale)
        for name, tensor in trained.items():
            fitted[self._parameter_attributes[name]] = tensor.detach().cpu().numpy().copy()
        fitted.update(self._extra_fitted_attributes(fitted))
        for name, value in fitted.items():
            setattr(self, name, value)

        if result.interrupt is not None:
            raise result.interrupt
        return self

    def _extra_fitted_attributes(self, fitted):
        """Return further fitted attributes derived from ``fitted``; the default adds none."""
        return {}

    def _split_validation(self, n_ratings, rng):
        if self.validation_fraction is None:
            return np.arange(n_ratings), None
        n_val = int(round(self.validation_fraction * n_ratings))
        if n_val < 1 or n_val >= n_ratings:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves {n_val} of {n_ratings} "
                "ratings for validation; both parts need at least one rating, so pass more "
                "ratings or validation_fraction=None"
            )
        order = rng.permutation(n_ratings)
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    @staticmethod
    def _interactions(users, items, ratings, n_users, n_items, device, dtype):
        return Interactions(
            users=torch.as_tensor(users, dtype=torch.int64, device=device),
            items=torch.as_tensor(items, dtype=torch.int64, device=device),
            ratings=torch.as_tensor(ratings, dtype=dtype, device=device),
            n_users=n_users,
            n_items=n_items,
            global_mean=float(np.mean(ratings)),
        )

    def _validation_scorer(self, users, items, ratings, global_mean, rating_scale, device, dtype,
                           scale=1.0):
        # torch.tensor copies, so read-only arrays (pandas copy-on-write) are fine
        users_t = torch.tensor(users, dtype=torch.int64, device=device)
        items_t = torch.tensor(items, dtype=torch.int64, device=device)
        ratings_t = torch.tensor(ratings, dtype=dtype, device=device)

        def validation_rmse(parameters):
            prediction = self._predict_pairs(parameters, users_t, items_t, global_mean).to(dtype)
            prediction = prediction * scale
            if self.clip_predictions:
                prediction = prediction.clamp(*rating_scale)
            return float(torch.sqrt(torch.mean((prediction - ratings_t) ** 2)))

        return validation_rmse

    def _predict_pairs(self, parameters, users, items, global_mean):
        """Predict for index pairs where -1 marks an unknown id, using the fallback for those."""
        known = (users >= 0) & (items >= 0)
        if bool(known.all()):
            return self._predict_indices(parameters, users, items, global_mean)
        prediction = torch.empty(users.shape, dtype=torch.float64, device=users.device)
        if bool(known.any()):
            prediction[known] = self._predict_indices(
                parameters, users[known], items[known], global_mean
            ).double()
        unknown = ~known
        prediction[unknown] = self._predict_fallback(
            parameters, users[unknown], items[unknown], global_mean
        ).double().to(users.device)
        return prediction

    # -- prediction ----------------------------------------------------------

    def _fitted_parameters(self):
        """Return the fitted parameters as CPU tensors that share memory with the NumPy attributes."""
        check_is_fitted(self, "global_mean_")
        return {name: torch.from_numpy(getattr(self, attribute))
                for name, attribute in self._parameter_attributes.items()}

    def _check_not_matrix(self, X):
        # a DataFrame names its columns, so it is never taken for a rating matrix
        shape = None if isinstance(X, pd.DataFrame) else getattr(X, "shape", None)
        if shape is None or len(shape) != 2 or shape[1] == 2:
            return
        expected = (self.n_users_, self.n_items_)
        if tuple(shape) == expected[::-1]:
            raise ValueError(
                f"X has shape {tuple(shape)}, the transpose of the fitted users-by-items shape "
                f"{expected}; predict takes (user id, item id) pairs, and predict_matrix() "
                "returns the dense users-by-items predictions"
            )
        if tuple(shape) == expected:
            raise ValueError(
                f"X has the fitted users-by-items shape {expected}, but predict takes "
                "(user id, item id) pairs of shape (n_pairs, 2); use predict_matrix() for dense "
                "predictions"
            )

    def _map_pairs(self, X):
        self._check_not_matrix(X)
        users, items, _ = parse_interactions(X)
        return self.user_ids_.transform(users), self.item_ids_.transform(items), users, items

    def predict(self, X, *, return_fallback=False):
        """Predict ratings for (user, item) pairs.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_pairs, 2)
            Pairs in the same id types as in ``fit``.
        return_fallback : bool, default=False
            Also return a boolean mask marking the pairs whose user or item
            was not seen in ``fit`` and so used the ``unknown`` policy.

        Returns
        -------
        predictions : ndarray of shape (n_pairs,), float64
            Clipped to ``rating_scale_`` when ``clip_predictions`` is true.
            NaN for unknown pairs when ``unknown="nan"``.
        fallback : ndarray of shape (n_pairs,), bool
            Only when ``return_fallback`` is true; ``fallback.sum()`` is the
            number of pairs that used a fallback.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        UnknownIdError
            If a user or item is unknown and ``unknown="raise"``.
        IdTypeError
            If the ids are of another type than in ``fit`` (``"17"`` for ``17``).
        """
        parameters = self._fitted_parameters()
        users_index, items_index, users, items = self._map_pairs(X)
        unknown = (users_index < 0) | (items_index < 0)
        if unknown.any() and self.unknown == "raise":
            row = int(np.flatnonzero(unknown)[0])
            if users_index[row] < 0:
                first_unknown = f"user {_show(users[row])}"
            else:
                first_unknown = f"item {_show(items[row])}"
            raise UnknownIdError(
                f"{int(unknown.sum())} of {unknown.size} pairs contain ids not seen in fit, first "
                f"{first_unknown} at row {row}; pass unknown='fallback' or unknown='nan' to predict them"
            )

        with torch.no_grad():
            prediction = self._predict_pairs(
                parameters, torch.from_numpy(users_index), torch.from_numpy(items_index),
                self.global_mean_,
            ).double().numpy().copy()
        if self.clip_predictions:
            np.clip(prediction, *self.rating_scale_, out=prediction)
        if self.unknown == "nan":
            prediction[unknown] = np.nan
        if return_fallback:
            return prediction, unknown
        return prediction

    def predict_matrix(self, *, max_bytes=2**30):
        """Return dense predictions for every fitted user and item.

        Parameters
        ----------
        max_bytes : int, default=2**30
            Upper bound on the memory this call may allocate.

        Returns
        -------
        ndarray of shape (n_users_, n_items_), float64
            Row ``k`` is user ``user_ids_.ids_[k]`` and column ``j`` is item
            ``item_ids_.ids_[j]``.

        Raises
        ------
        MemoryEstimateError
            If the estimate (16 bytes per entry: the float64 result plus one
            float64 intermediate of the same size) exceeds ``max_bytes``.
        """
        parameters = self._fitted_parameters()
        estimate = 16 * self.n_users_ * self.n_items_
        if estimate > max_bytes:
            raise MemoryEstimateError(
                f"predict_matrix would allocate about {estimate} bytes for {self.n_users_} users x "
                f"{self.n_items_} items, over max_bytes={max_bytes}; pass a larger max_bytes or "
                "call predict on the pairs you need"
            )
        with torch.no_grad():
            result = self._predict_dense(parameters, self.global_mean_).double().numpy()
        if self.clip_predictions:
            np.clip(result, *self.rating_scale_, out=result)
        return result

    def recommend(self, user, k=10, *, exclude_seen=True):
        """Return the ``k`` items with the highest predicted rating for one user.

        Parameters
        ----------
        user : hashable
            A user id as passed to ``fit``. An unknown user gets the items
            ranked by the fallback prediction (the item biases for models
            with biases) unless ``unknown="raise"``.
        k : int, default=10
            Number of items.
        exclude_seen : bool, default=True
            Leave out items the user rated in the data passed to ``fit``.

        Returns
        -------
        list
            Item ids in the caller's id type, best first; shorter than ``k``
            (possibly empty) when fewer items are left.
        """
        parameters = self._fitted_parameters()
        if not _is_int(k) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        # np.array([user]) would split a tuple id into its parts
        wrapped = np.empty(1, dtype=object)
        wrapped[0] = user
        index = int(self.user_ids_.transform(wrapped)[0])
        if index < 0 and self.unknown == "raise":
            raise UnknownIdError(
                f"user {_show(user)} was not seen in fit; pass unknown='fallback' to rank items by "
                "the fallback prediction"
            )
        items = torch.arange(self.n_items_)
        users = torch.full((self.n_items_,), index, dtype=torch.int64)
        with torch.no_grad():
            scores = self._predict_pairs(parameters, users, items, self.global_mean_).double().numpy()
        candidates = np.ones(self.n_items_, dtype=bool)
        if exclude_seen and index >= 0:
            seen = self.seen_
            candidates[seen.indices[seen.indptr[index]:seen.indptr[index + 1]]] = False
        candidate_items = np.flatnonzero(candidates)
        if candidate_items.size == 0:
            return []
        order = np.argsort(-scores[candidate_items], kind="stable")[:k]
        return self.item_ids_.inverse_transform(candidate_items[order]).tolist()

    # -- persistence ---------------------------------------------------------

    def save(self, path):
        """Write the estimator to ``path`` with pickle, through a temporary file and a rename.

        Fitted parameters are NumPy arrays on the CPU, so a model fitted on
        CUDA loads on a machine without CUDA.

        Raises
        ------
        NotFittedError
            If the estimator has not been fitted: a saved model must predict.
        """
        check_is_fitted(self, "global_mean_")
        path = Path(path)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                pickle.dump({"format": _SAVE_FORMAT, "estimator": self}, file,
                            protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path):
        """Read an estimator written by :meth:`save`.

        Only load files you trust, because unpickling can run arbitrary code.

        Raises
        ------
        TypeError
            If the file contains another estimator class than ``cls``.
        ValueError
            If the file was not written by ``save`` (not a pickle, truncated,
            or another format).
        """
        with open(path, "rb") as file:
            try:
                content = pickle.load(file)
            except (pickle.UnpicklingError, EOFError, AttributeError, ImportError,
                    IndexError) as error:
                raise ValueError(
                    f"{path} is not a model file written by {cls.__name__}.save "
                    f"({type(error).__name__}: {error}); check the path, or save the model again"
                ) from error
        if not isinstance(content, dict) or content.get("format") != _SAVE_FORMAT:
            raise ValueError(f"{path} was not written by {cls.__name__}.save (unknown format)")
        estimator = content["estimator"]
        if not isinstance(estimator, cls):
            raise TypeError(f"{path} contains a {type(estimator).__name__}, not a {cls.__name__}")
        return estimator


def _time_order(timestamps):
    """Return the stable order of rows by ``timestamps``, rejecting missing times."""
    missing = np.flatnonzero(pd.isna(timestamps).to_numpy())
    if missing.size:
        raise ValueError(
            f"duplicates='last' orders ratings by the timestamp column, but {missing.size} "
            f"timestamps are missing, first at rows {missing[:5].tolist()}; fill them or drop "
            "the timestamp column to keep the last rating in input order"
        )
    return np.argsort(timestamps.to_numpy(), kind="stable")


def _seen_matrix(users, items, n_users, n_items):
    """Return the rated (user, item) pairs as a CSR pattern, for excluding seen items."""
    import scipy.sparse

    matrix = scipy.sparse.csr_matrix(
        (np.ones(users.shape[0], dtype=np.int8), (users, items)), shape=(n_users, n_items)
    )
    matrix.sum_duplicates()
    return matrix
