"""Biased low-rank matrix factorization trained full-batch."""

import numpy as np
import torch

from flowrec.models._base import (
    BaseRatingModel,
    boolean,
    non_negative_real,
    positive_int,
    rating_spread,
)
from flowrec.models._mf_kernels import make_mf_data, mf_loss_and_grad, mf_predict
from flowrec.models._training import train_full_batch

__all__ = ["LowRankMF", "fit_low_rank_mf", "init_mf_parameters", "rescale_mf_parameters"]


class LowRankMF(BaseRatingModel):
    r"""Biased matrix factorization for explicit ratings.

    Predicts :math:`\hat r_{ui} = \mu + b_u + b_i + p_u \cdot q_i` with
    :math:`\mu` the mean training rating, and minimizes the mean squared
    error plus frequency-weighted penalties (each rating adds
    ``reg * (|p_u|² + |q_i|²) + reg_bias * (b_u² + b_i²)``) with one full-batch
    optimizer step per epoch. Gradients come from a hand-derived kernel, not
    autograd. See ``docs/lowrankmf.md`` for the loss, the defaults and
    measured RMSE.

    Parameters
    ----------
    n_factors : int, default=64
        Length of each user and item factor vector.
    reg : float, default=0.12
        Weight of the factor penalty per rating.
    reg_bias : float, default=0.05
        Weight of the bias penalty per rating.
    optimizer : str, Optimizer subclass or callable, default="flowadam"
        Any name or object ``flowrec.optim.make_optimizer`` accepts
        (``"flowadam"``, ``"adam"``, ``"sgd"`` ...).
    optimizer_options : dict, default=None
        Extra optimizer keyword arguments; the dict is not modified.
    lr : float, default=0.05
        Learning rate.
    n_epochs : int, default=100
        Maximum number of epochs (one optimizer step each).
    tol : float, default=None
        Stop when the relative loss change falls below ``tol``; None runs all
        epochs.
    validation_fraction : float, default=None
        Fraction of the ratings held out (drawn with ``random_state``) to
        record ``val_rmse`` and stop early after ``patience`` epochs without
        improvement, restoring the best epoch. The model is not refitted on
        the held-out ratings.
    patience : int, default=10
        Epochs without validation improvement before stopping.
    init_std : float, default=0.1
        Standard deviation of the normal initial factors. Biases start at 0.
    biases : bool, default=True
        Learn user and item biases. When False, ``user_bias_`` and
        ``item_bias_`` are zeros.
    rating_scale : tuple of (float, float), default=None
        Lowest and highest possible rating. None infers it from the training
        ratings. A declared scale rejects training ratings outside it.
    normalize_ratings : bool, default=True
        Train on the ratings divided by their standard deviation
        (``rating_spread_``) and convert the parameters back afterwards, so
        that ``lr``, ``reg``, ``reg_bias`` and ``init_std`` act the same on
        a 1-5 and a -10..10 scale. The fitted attributes are in rating units
        either way. The ``loss`` in ``history_`` is the normalized objective.
    clip_predictions : bool, default=True
        Clip predictions to the rating scale. Only predictions are clipped;
        training ratings are never changed.
    unknown : {"fallback", "raise", "nan"}, default="fallback"
        Prediction for a pair with a user or item not seen in ``fit``:
        ``"fallback"`` returns the global mean plus the bias of the known
        side (``global_mean_ + user_bias_[u]`` for a known user and unknown
        item), ``"raise"`` raises ``UnknownIdError``, ``"nan"`` returns NaN.
    duplicates : {"raise", "mean", "last"}, default="raise"
        Handling of a (user, item) pair that occurs more than once:
        ``"raise"`` raises ``DuplicateRatingsError`` naming the pair and its
        count, ``"mean"`` averages the ratings, and ``"last"`` keeps the
        latest one: by the ``timestamp`` column when ``X`` is a DataFrame
        that has one, else the last in input order.
    device : {"auto", "cpu", "cuda"}, default="auto"
        ``"auto"`` trains on CUDA when torch reports a device, else on the CPU.
        The device used is stored in ``device_``.
    dtype : {"float32", "float64"}, default="float32"
        Training precision.
    random_state : int, Generator, RandomState or None, default=None
        Seed of the initialization and of the validation split. The global
        NumPy and torch generators are not used.
    verbose : bool or int, default=False
        Show a tqdm progress bar over epochs.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users_, n_factors)
        Row ``k`` is the factor vector of user ``user_ids_.ids_[k]``.
    item_factors_ : ndarray of shape (n_items_, n_factors)
        Row ``k`` is the factor vector of item ``item_ids_.ids_[k]``.
    user_bias_ : ndarray of shape (n_users_,)
    item_bias_ : ndarray of shape (n_items_,)
    global_mean_ : float
        Mean training rating :math:`\mu`.
    user_ids_, item_ids_ : IdMap
        Mapping between caller ids and row indices.
    rating_scale_ : tuple of (float, float)
        Declared or inferred scale, used for clipping.
    rating_spread_ : float
        Standard deviation of the training ratings that training divided
        them by; 1.0 when ``normalize_ratings=False``.
    history_ : DataFrame
        One row per epoch: ``epoch``, ``loss``, ``val_rmse`` (NaN without
        validation), ``mode`` (optimizer mode, or its name), ``grad_evals``
        (cumulative gradient evaluations), ``seconds`` (cumulative wall time),
        ``epoch_seconds``.
    n_epochs_, n_grad_evals_, best_epoch_ : int
    fit_time_ : float
        Seconds spent in the training loop.
    converged_ : bool
        Whether ``tol`` or early stopping ended training.
    interrupted_ : bool
        Whether a KeyboardInterrupt ended training.
    device_ : str
        Device the model was trained on.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 10], [1, 11], [2, 10], [3, 11]])
    >>> model = LowRankMF(n_factors=2, n_epochs=20, random_state=0, device="cpu").fit(X, [5, 3, 4, 2])
    >>> model.predict([[2, 11]]).shape
    (1,)
    >>> model.recommend(2, k=5)
    [11]
    """

    _parameter_attributes = {
        "user_factors": "user_factors_",
        "item_factors": "item_factors_",
        "user_bias": "user_bias_",
        "item_bias": "item_bias_",
    }

    def __init__(
        self,
        n_factors=64,
        *,
        reg=0.12,
        reg_bias=0.05,
        optimizer="flowadam",
        optimizer_options=None,
        lr=0.05,
        n_epochs=100,
        tol=None,
        validation_fraction=None,
        patience=10,
        init_std=0.1,
        biases=True,
        rating_scale=None,
        normalize_ratings=True,
        clip_predictions=True,
        unknown="fallback",
        duplicates="raise",
        device="auto",
        dtype="float32",
        random_state=None,
        verbose=False,
    ):
        self.n_factors = n_factors
        self.reg = reg
        self.reg_bias = reg_bias
        self.optimizer = optimizer
        self.optimizer_options = optimizer_options
        self.lr = lr
        self.n_epochs = n_epochs
        self.tol = tol
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.init_std = init_std
        self.biases = biases
        self.rating_scale = rating_scale
        self.normalize_ratings = normalize_ratings
        self.clip_predictions = clip_predictions
        self.unknown = unknown
        self.duplicates = duplicates
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def _model_parameter_rules(self):
        return {
            "n_factors": positive_int(),
            "reg": non_negative_real(),
            "reg_bias": non_negative_real(),
            "init_std": non_negative_real(),
            "biases": boolean(),
        }

    def _init_parameters(self, train, generator, device, dtype):
        return init_mf_parameters(
            train.n_users, train.n_items, self.n_factors, init_std=self.init_std,
            biases=self.biases, generator=generator, device=device, dtype=dtype,
        )

    def _build_loss_and_grad(self, train):
        data = make_mf_data(
            train.users, train.items, train.ratings, train.n_users, train.n_items,
            global_mean=train.global_mean, reg=self.reg, reg_bias=self.reg_bias,
        )

        def loss_and_grad(parameters):
            return mf_loss_and_grad(parameters, data)

        return loss_and_grad

    def _rescale_parameters(self, parameters, scale):
        return rescale_mf_parameters(parameters, scale)

    def _extra_fitted_attributes(self, fitted):
        if self.biases:
            return {}
        dtype = fitted["user_factors_"].dtype
        return {"user_bias_": np.zeros(fitted["n_users_"], dtype=dtype),
                "item_bias_": np.zeros(fitted["n_items_"], dtype=dtype)}

    def _predict_indices(self, parameters, users, items, global_mean):
        return mf_predict(parameters, users, items, global_mean)

    def _predict_dense(self, parameters, global_mean):
        dense = parameters["user_factors"].double() @ parameters["item_factors"].double().T
        dense += global_mean
        dense += parameters["user_bias"].double().unsqueeze(1)
        dense += parameters["item_bias"].double().unsqueeze(0)
        return dense

    def _predict_fallback(self, parameters, users, items, global_mean):
        prediction = torch.full(users.shape, global_mean, dtype=torch.float64, device=users.device)
        if "user_bias" in parameters:
            known_user = users >= 0
            prediction[known_user] += parameters["user_bias"][users[known_user]].double()
            known_item = items >= 0
            prediction[known_item] += parameters["item_bias"][items[known_item]].double()
        return prediction


def init_mf_parameters(n_users, n_items, n_factors, *, init_std=0.1, biases=True,
                       generator=None, device="cpu", dtype=torch.float32):
    """Draw initial LowRankMF parameters: normal factors with ``init_std``, zero biases.

    Values are drawn on the CPU from ``generator`` and then moved to
    ``device``, so the same seed gives the same start on every device.

    Returns
    -------
    dict of str to Tensor
        ``user_factors`` (n_users, n_factors), ``item_factors`` (n_items,
        n_factors) and, when ``biases``, ``user_bias`` and ``item_bias``.
    """
    parameters = {
        "user_factors": torch.randn(n_users, n_factors, generator=generator, dtype=dtype),
        "item_factors": torch.randn(n_items, n_factors, generator=generator, dtype=dtype),
    }
    for tensor in parameters.values():
        tensor.mul_(init_std)
    if biases:
        parameters["user_bias"] = torch.zeros(n_users, dtype=dtype)
        parameters["item_bias"] = torch.zeros(n_items, dtype=dtype)
    return {name: tensor.to(device) for name, tensor in parameters.items()}


def rescale_mf_parameters(parameters, scale):
    """Convert parameters trained on ``ratings / scale`` to rating units.

    Biases grow by ``scale`` and both factor matrices by ``sqrt(scale)``, so
    every prediction except the global mean grows by ``scale``. The input
    tensors are not modified.
    """
    root = float(np.sqrt(scale))
    factors = {"user_factors": root, "item_factors": root, "user_bias": scale, "item_bias": scale}
    return {name: tensor * factors[name] for name, tensor in parameters.items()}


def fit_low_rank_mf(users, items, ratings, *, n_users=None, n_items=None, n_factors=64,
                    reg=0.12, reg_bias=0.05, init_std=0.1, biases=True, normalize_ratings=True,
                    optimizer="flowadam",
                    optimizer_options=None, lr=0.05, n_epochs=100, tol=None,
                    validation_rmse=None, patience=10, random_state=0, device="cpu",
                    dtype=torch.float32, verbose=False):
    """Train LowRankMF parameters on contiguous indices, without the estimator.

    This is the solver :class:`LowRankMF` wraps: the class adds input
    parsing, id mapping, duplicate handling, validation splits, unknown-id
    policies and save/load. With the same seed and no validation, both give
    the same parameters.

    Parameters
    ----------
    users, items : array-like of shape (n_ratings,)
        Contiguous int indices, with no repeated (user, item) pair.
    ratings : array-like of shape (n_ratings,)
    n_users, n_items : int, default=None
        Matrix size; None uses the largest index plus one.
    random_state : int, default=0
        Seed of the initialization.
    device : str or torch.device, default="cpu"
    dtype : torch.dtype, default=torch.float32
    validation_rmse : callable, default=None
        ``validation_rmse(parameters) -> float``, as in
        :func:`~flowrec.models._training.train_full_batch`. With
        ``normalize_ratings`` it receives parameters in normalized units.

    The remaining parameters mean the same as in :class:`LowRankMF`.

    Returns
    -------
    TrainingResult
        ``parameters`` contains the trained tensors in rating units,
        ``history`` one row per epoch.
    """
    ratings = np.asarray(ratings, dtype=np.float64)
    scale = rating_spread(ratings) if normalize_ratings else 1.0
    users = torch.tensor(np.asarray(users), dtype=torch.int64, device=device)
    items = torch.tensor(np.asarray(items), dtype=torch.int64, device=device)
    ratings = torch.tensor(ratings / scale, dtype=dtype, device=device)
    n_users = int(users.max()) + 1 if n_users is None else n_users
    n_items = int(items.max()) + 1 if n_items is None else n_items

    generator = torch.Generator().manual_seed(random_state)
    parameters = init_mf_parameters(n_users, n_items, n_factors, init_std=init_std, biases=biases,
                                    generator=generator, device=device, dtype=dtype)
    data = make_mf_data(users, items, ratings, n_users, n_items,
                        global_mean=float(ratings.double().mean()), reg=reg, reg_bias=reg_bias)
    result = train_full_batch(
        parameters, lambda tensors: mf_loss_and_grad(tensors, data),
        optimizer=optimizer, optimizer_options=optimizer_options, lr=lr, n_epochs=n_epochs,
        tol=tol, validation_rmse=validation_rmse, patience=patience, verbose=verbose,
        description="LowRankMF",
    )
    if scale != 1.0:
        result.parameters = rescale_mf_parameters(result.parameters, scale)
    return result
