"""Reference recommenders from scikit-surprise and implicit behind flowrec's estimator contract.

Every class here takes the same input as :class:`flowrec.models.LowRankMF`:
``fit(X, y=None)`` with ``X`` a DataFrame with ``user_id`` and ``item_id``
columns (and optionally ``rating``) or an ``(n_ratings, 2)`` array of
(user id, item id) pairs. So the comparison harness, ``clone`` and
``GridSearchCV`` treat them like any flowrec model.

Both libraries are optional and imported only when a model is fitted:
install them with ``pip install "flowrec[baselines]"``.

Unknown ids
-----------
The Surprise wrappers pass a pair with an id not seen during ``fit`` on to
Surprise, which falls back to its own estimate: the training mean plus any
known bias term, clipped to the rating scale. As with the flowrec models,
``predict(X, return_fallback=True)`` also returns the mask of those pairs. :class:`ImplicitALS` ranks items only for
known users and raises :class:`~flowrec.exceptions.UnknownIdError` otherwise.
"""

import logging

import numpy as np
import pandas as pd
import scipy.sparse
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from flowrec._input import IdMap, parse_interactions
from flowrec.exceptions import UnknownIdError

__all__ = ["SurpriseSVD", "SurpriseSVDpp", "SurpriseBaselineOnly", "ImplicitALS"]

logger = logging.getLogger(__name__)

_INSTALL_HINT = 'install the optional baselines with: pip install "flowrec[baselines]"'


def _import_surprise():
    try:
        import surprise
    except ImportError as exc:
        raise ImportError(f"the Surprise baselines need scikit-surprise; {_INSTALL_HINT}") from exc
    return surprise


def _import_implicit_als():
    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError as exc:
        raise ImportError(f"ImplicitALS needs the implicit package; {_INSTALL_HINT}") from exc
    return AlternatingLeastSquares


def _check_rating_scale(rating_scale, ratings):
    """Return ``rating_scale`` as a float pair, inferring it from ``ratings`` when None."""
    if rating_scale is None:
        return float(ratings.min()), float(ratings.max())
    try:
        low, high = (float(v) for v in rating_scale)
    except (TypeError, ValueError):
        raise ValueError(
            f"rating_scale must be a pair (r_min, r_max) or None, got {rating_scale!r}"
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ValueError(
            f"rating_scale must satisfy r_min <= r_max with finite values, got {rating_scale!r}"
        )
    return low, high


class _SurpriseRegressor(RegressorMixin, BaseEstimator):
    """Shared fit/predict for the Surprise rating predictors.

    Subclasses define ``_surprise_params()`` (the keyword arguments of the
    Surprise class) and ``_surprise_class_name``.
    """

    _surprise_class_name = None

    def _surprise_params(self):
        raise NotImplementedError

    def fit(self, X, y=None):
        """Fit the Surprise algorithm on (user, item, rating) triples.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_ratings, 2)
            (user id, item id) pairs, or a DataFrame with ``user_id`` and
            ``item_id`` columns and optionally ``rating``.
        y : array-like of shape (n_ratings,), default=None
            Ratings; taken from ``X["rating"]`` when None.

        Returns
        -------
        self
        """
        surprise = _import_surprise()
        users, items, ratings = parse_interactions(X, y, require_ratings=True)

        # Surprise gets contiguous indices as its raw ids. They keep the
        # first-seen order of the caller's ids, so Surprise assigns the same
        # inner ids, and gives the same results, as when called directly.
        self.user_ids_ = IdMap("user").fit(users)
        self.item_ids_ = IdMap("item").fit(items)
        self.rating_scale_ = _check_rating_scale(self.rating_scale, ratings)
        frame = pd.DataFrame(
            {
                "user": self.user_ids_.transform(users),
                "item": self.item_ids_.transform(items),
                "rating": ratings,
            }
        )
        reader = surprise.Reader(rating_scale=self.rating_scale_)
        trainset = surprise.Dataset.load_from_df(frame, reader).build_full_trainset()

        algorithm_class = getattr(surprise, self._surprise_class_name)
        self.algorithm_ = algorithm_class(**self._surprise_params())
        self.algorithm_.fit(trainset)
        return self

    def predict(self, X, *, return_fallback=False):
        """Predict ratings for (user, item) pairs.

        Pairs with a user or item not seen in ``fit`` get Surprise's fallback
        estimate.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_pairs, 2)
            (user id, item id) pairs.
        return_fallback : bool, default=False
            Also return a boolean mask of the pairs with an unknown user or item.

        Returns
        -------
        predictions : ndarray of shape (n_pairs,)
            Predicted ratings, clipped to ``rating_scale_``.
        fallback : ndarray of shape (n_pairs,), bool
            Only when ``return_fallback`` is true.
        """
        check_is_fitted(self, "algorithm_")
        users, items, _ = parse_interactions(X)
        user_index = self.user_ids_.transform(users)
        item_index = self.item_ids_.transform(items)
        unknown = (user_index < 0) | (item_index < 0)
        n_unknown = int(unknown.sum())
        if n_unknown:
            logger.info(
                "%d of %d pairs have a user or item not seen in fit; they get Surprise's "
                "fallback estimate",
                n_unknown,
                unknown.size,
            )

        # Index -1 is not a raw id in the trainset, so Surprise treats it as unknown.
        predict = self.algorithm_.predict
        predictions = np.fromiter(
            (predict(u, i).est for u, i in zip(user_index.tolist(), item_index.tolist())),
            dtype=np.float64,
            count=user_index.size,
        )
        if return_fallback:
            return predictions, unknown
        return predictions

    def _solver_label(self):
        return "sgd (surprise)"


class SurpriseSVD(_SurpriseRegressor):
    """Surprise's SVD (biased matrix factorization trained by SGD) as a flowrec estimator.

    Every parameter except ``rating_scale`` is passed unchanged to
    ``surprise.SVD`` (scikit-surprise 1.1.5), whose defaults are copied here.
    Surprise's ``verbose`` is always off because it prints to stdout.

    Parameters
    ----------
    n_factors : int, default=100
    n_epochs : int, default=20
    biased : bool, default=True
    init_mean : float, default=0
    init_std_dev : float, default=0.1
    lr_all : float, default=0.005
    reg_all : float, default=0.02
    lr_bu, lr_bi, lr_pu, lr_qi : float, default=None
        Per-term learning rates; None uses ``lr_all``.
    reg_bu, reg_bi, reg_pu, reg_qi : float, default=None
        Per-term regularization; None uses ``reg_all``.
    random_state : int, RandomState instance or None, default=None
        Seed of the factor initialization.
    rating_scale : tuple of (float, float), default=None
        Lowest and highest rating, used to clip predictions. None takes the
        minimum and maximum of the training ratings.

    Attributes
    ----------
    algorithm_ : surprise.SVD
        The fitted Surprise object.
    user_ids_, item_ids_ : IdMap
        Fitted ids.
    rating_scale_ : tuple of (float, float)

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [1, 2, 1, 3],
    ...                   "rating": [5.0, 3.0, 4.0, 1.0]})
    >>> model = SurpriseSVD(n_factors=2, random_state=0).fit(X)
    >>> model.predict(X).shape
    (4,)
    """

    _surprise_class_name = "SVD"

    def __init__(
        self,
        n_factors=100,
        n_epochs=20,
        biased=True,
        init_mean=0,
        init_std_dev=0.1,
        lr_all=0.005,
        reg_all=0.02,
        lr_bu=None,
        lr_bi=None,
        lr_pu=None,
        lr_qi=None,
        reg_bu=None,
        reg_bi=None,
        reg_pu=None,
        reg_qi=None,
        random_state=None,
        rating_scale=None,
    ):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.biased = biased
        self.init_mean = init_mean
        self.init_std_dev = init_std_dev
        self.lr_all = lr_all
        self.reg_all = reg_all
        self.lr_bu = lr_bu
        self.lr_bi = lr_bi
        self.lr_pu = lr_pu
        self.lr_qi = lr_qi
        self.reg_bu = reg_bu
        self.reg_bi = reg_bi
        self.reg_pu = reg_pu
        self.reg_qi = reg_qi
        self.random_state = random_state
        self.rating_scale = rating_scale

    def _surprise_params(self):
        params = self.get_params()
        params.pop("rating_scale")
        return {**params, "verbose": False}


class SurpriseSVDpp(_SurpriseRegressor):
    """Surprise's SVD++ (SVD plus implicit feedback from rated items) as a flowrec estimator.

    Every parameter except ``rating_scale`` is passed unchanged to
    ``surprise.SVDpp`` (scikit-surprise 1.1.5), whose defaults are copied here.
    SVD++ is slow: about 30 seconds per MovieLens 100K fold on a 2-core CPU
    (measured with scikit-surprise 1.1.5).

    Parameters
    ----------
    n_factors : int, default=20
    n_epochs : int, default=20
    init_mean : float, default=0
    init_std_dev : float, default=0.1
    lr_all : float, default=0.007
    reg_all : float, default=0.02
    lr_bu, lr_bi, lr_pu, lr_qi, lr_yj : float, default=None
        Per-term learning rates; None uses ``lr_all``.
    reg_bu, reg_bi, reg_pu, reg_qi, reg_yj : float, default=None
        Per-term regularization; None uses ``reg_all``.
    cache_ratings : bool, default=False
        Let Surprise cache each user's ratings, which is faster and uses more memory.
    random_state : int, RandomState instance or None, default=None
    rating_scale : tuple of (float, float), default=None
        Lowest and highest rating; None takes them from the training ratings.

    Attributes
    ----------
    algorithm_ : surprise.SVDpp
    user_ids_, item_ids_ : IdMap
    rating_scale_ : tuple of (float, float)
    """

    _surprise_class_name = "SVDpp"

    def __init__(
        self,
        n_factors=20,
        n_epochs=20,
        init_mean=0,
        init_std_dev=0.1,
        lr_all=0.007,
        reg_all=0.02,
        lr_bu=None,
        lr_bi=None,
        lr_pu=None,
        lr_qi=None,
        lr_yj=None,
        reg_bu=None,
        reg_bi=None,
        reg_pu=None,
        reg_qi=None,
        reg_yj=None,
        cache_ratings=False,
        random_state=None,
        rating_scale=None,
    ):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.init_mean = init_mean
        self.init_std_dev = init_std_dev
        self.lr_all = lr_all
        self.reg_all = reg_all
        self.lr_bu = lr_bu
        self.lr_bi = lr_bi
        self.lr_pu = lr_pu
        self.lr_qi = lr_qi
        self.lr_yj = lr_yj
        self.reg_bu = reg_bu
        self.reg_bi = reg_bi
        self.reg_pu = reg_pu
        self.reg_qi = reg_qi
        self.reg_yj = reg_yj
        self.cache_ratings = cache_ratings
        self.random_state = random_state
        self.rating_scale = rating_scale

    def _surprise_params(self):
        params = self.get_params()
        params.pop("rating_scale")
        return {**params, "verbose": False}


class SurpriseBaselineOnly(_SurpriseRegressor):
    """Surprise's BaselineOnly (global mean plus user and item biases) as a flowrec estimator.

    Parameters
    ----------
    bsl_options : dict, default=None
        Passed to ``surprise.BaselineOnly`` as is, for example
        ``{"method": "als", "n_epochs": 10, "reg_u": 15, "reg_i": 10}``.
        None means Surprise's defaults (ALS, 10 epochs). The dict is copied,
        never modified.
    random_state : None, default=None
        Accepted so that the harness can seed every model the same way. The
        ALS and SGD bias solvers of Surprise start from zero, so the result
        does not depend on it.
    rating_scale : tuple of (float, float), default=None
        Lowest and highest rating; None takes them from the training ratings.

    Attributes
    ----------
    algorithm_ : surprise.BaselineOnly
    user_ids_, item_ids_ : IdMap
    rating_scale_ : tuple of (float, float)
    """

    _surprise_class_name = "BaselineOnly"

    def __init__(self, bsl_options=None, random_state=None, rating_scale=None):
        self.bsl_options = bsl_options
        self.random_state = random_state
        self.rating_scale = rating_scale

    def _surprise_params(self):
        options = {} if self.bsl_options is None else dict(self.bsl_options)
        return {"bsl_options": options, "verbose": False}

    def _solver_label(self):
        method = (self.bsl_options or {}).get("method", "als")
        return f"{method} (surprise)"


class ImplicitALS(BaseEstimator):
    """implicit's alternating least squares for implicit feedback, on the CPU.

    Each observed (user, item) pair becomes one interaction in a users-by-items
    CSR matrix. The model ranks items per user and does not predict ratings:
    :meth:`predict` raises, and the harness scores it with ranking metrics.

    Parameters
    ----------
    n_factors : int, default=64
        Number of latent factors (implicit's ``factors``).
    reg : float, default=0.05
        L2 regularization (implicit's ``regularization``).
    alpha : float, default=1.0
        Confidence weight of observed interactions (implicit's ``alpha``).
    n_epochs : int, default=15
        Number of ALS sweeps (implicit's ``iterations``).
    weights : {"binary", "rating"}, default="binary"
        Value stored for each interaction: 1, or the rating itself (which
        must then be positive).
    num_threads : int, default=1
        Threads of implicit's solver; 0 uses every core. BLAS is held to one
        thread during ``fit`` because implicit runs slower with a
        multi-threaded OpenBLAS. implicit may still emit a ``RuntimeWarning``
        about OpenBLAS threads when it is used elsewhere in the process
        without that limit.
    random_state : int, RandomState instance or None, default=None

    Attributes
    ----------
    model_ : implicit.cpu.als.AlternatingLeastSquares
    user_ids_, item_ids_ : IdMap
    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items)
        The training interactions.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"user_id": [1, 1, 2, 3], "item_id": [1, 2, 1, 3]})
    >>> model = ImplicitALS(n_factors=2, random_state=0).fit(X)
    >>> len(model.recommend(2, k=2))
    2
    """

    predicts_ratings = False

    def __init__(
        self,
        n_factors=64,
        reg=0.05,
        alpha=1.0,
        n_epochs=15,
        weights="binary",
        num_threads=1,
        random_state=None,
    ):
        self.n_factors = n_factors
        self.reg = reg
        self.alpha = alpha
        self.n_epochs = n_epochs
        self.weights = weights
        self.num_threads = num_threads
        self.random_state = random_state

    def _validate_params(self):
        for name in ("n_factors", "n_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(self.num_threads, bool) or not isinstance(
            self.num_threads, (int, np.integer)
        ) or self.num_threads < 0:
            raise ValueError(
                f"num_threads must be a non-negative int (0 uses every core), got {self.num_threads!r}"
            )
        for name in ("reg", "alpha"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.number)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.weights not in ("binary", "rating"):
            raise ValueError(f"weights must be 'binary' or 'rating', got {self.weights!r}")

    def fit(self, X, y=None):
        """Fit ALS on the observed (user, item) pairs.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_interactions, 2)
            (user id, item id) pairs. Repeated pairs add up.
        y : array-like of shape (n_interactions,), default=None
            Ratings; used only with ``weights="rating"``.

        Returns
        -------
        self
        """
        self._validate_params()
        als_class = _import_implicit_als()
        from threadpoolctl import threadpool_limits

        users, items, ratings = parse_interactions(X, y, require_ratings=self.weights == "rating")
        if self.weights == "rating":
            if (ratings <= 0).any():
                raise ValueError(
                    "weights='rating' needs positive ratings, got a minimum of "
                    f"{ratings.min()}; shift the ratings or use weights='binary'"
                )
            values = ratings.astype(np.float32)
        else:
            values = np.ones(users.shape[0], dtype=np.float32)

        self.user_ids_ = IdMap("user").fit(users)
        self.item_ids_ = IdMap("item").fit(items)
        self.user_items_ = scipy.sparse.csr_matrix(
            (values, (self.user_ids_.transform(users), self.item_ids_.transform(items))),
            shape=(self.user_ids_.n_ids, self.item_ids_.n_ids),
        )
        # implicit checks the BLAS thread count when the model is created, so
        # the limit must already hold then.
        with threadpool_limits(limits=1, user_api="blas"):
            self.model_ = als_class(
                factors=int(self.n_factors),
                regularization=float(self.reg),
                alpha=float(self.alpha),
                iterations=int(self.n_epochs),
                num_threads=int(self.num_threads),
                random_state=self.random_state,
            )
            self.model_.fit(self.user_items_, show_progress=False)
        return self

    def predict(self, X):
        """Raise ``NotImplementedError``: ALS on implicit feedback does not predict ratings."""
        raise NotImplementedError(
            "ImplicitALS ranks items from implicit feedback and does not predict ratings; "
            "use recommend(user, k) or recommend_batch(users, k)"
        )

    def recommend(self, user, k=10, *, exclude_seen=True):
        """Return the ``k`` highest-scoring item ids for one user, best first.

        Parameters
        ----------
        user : hashable
            A user id seen in ``fit``.
        k : int, default=10
        exclude_seen : bool, default=True
            Leave out items the user interacted with in ``fit``.

        Returns
        -------
        ndarray of shape (at most k,)
            Item ids. Fewer than ``k`` when fewer candidate items exist.

        Raises
        ------
        UnknownIdError
            If the user was not seen in ``fit``.
        """
        return self.recommend_batch([user], k=k, exclude_seen=exclude_seen)[user]

    def recommend_batch(self, users, k=10, *, exclude_seen=True):
        """Return the top ``k`` item ids for each of several users.

        Parameters
        ----------
        users : array-like of shape (n_users,)
            User ids seen in ``fit``.
        k : int, default=10
        exclude_seen : bool, default=True

        Returns
        -------
        dict
            Maps each user id to an ndarray of item ids, best first.

        Raises
        ------
        UnknownIdError
            If a user was not seen in ``fit``.
        """
        check_is_fitted(self, "model_")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        users = list(users)
        if not users:
            return {}
        index = self.user_ids_.transform(np.asarray(users))
        unknown = np.flatnonzero(index < 0)
        if unknown.size:
            raise UnknownIdError(
                f"{unknown.size} user ids were not seen in fit, for example "
                f"{users[unknown[0]]!r}; recommend only for users in the training data"
            )

        n_items = self.item_ids_.n_ids
        list_length = min(int(k), n_items)
        item_index, scores = self.model_.recommend(
            index,
            self.user_items_[index],
            N=list_length,
            filter_already_liked_items=exclude_seen,
        )
        item_index = np.atleast_2d(item_index)
        scores = np.atleast_2d(scores)

        result = {}
        for row, user in enumerate(users):
            # When filtering leaves fewer than k items, implicit 0.7.3 fills the
            # list with already seen items scored -FLT_MAX, so drop them here.
            ranked = item_index[row]
            valid = (ranked >= 0) & (scores[row] > np.finfo(np.float32).min)
            if exclude_seen:
                seen = self.user_items_.indices[
                    self.user_items_.indptr[index[row]] : self.user_items_.indptr[index[row] + 1]
                ]
                valid &= ~np.isin(ranked, seen)
            result[user] = self.item_ids_.inverse_transform(ranked[valid])
        return result

    def _solver_label(self):
        return "als (implicit)"
