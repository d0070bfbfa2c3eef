"""The comparison loop: fit every model on every fold and seed, then score it."""

import inspect
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from tqdm.auto import tqdm

from flowrec import metrics, ranking
from flowrec.compare._datasets import DATASETS, check_dataset, make_folds
from flowrec.compare._presets import default_models, make_model
from flowrec.compare._report import format_markdown, plot_comparison, summarize
from flowrec.exceptions import DivergenceError

__all__ = ["compare", "ComparisonResult"]

logger = logging.getLogger(__name__)

# Fitted attributes read from each model when present; any other model gets NaN.
_EPOCHS_ATTRIBUTE = "n_epochs_"
_GRAD_EVALS_ATTRIBUTE = "n_grad_evals_"


@dataclass
class ComparisonResult:
    """Output of :func:`compare`.

    Attributes
    ----------
    results : pandas.DataFrame
        One row per (model, fold, seed) run: ``dataset``, ``fold``, ``seed``,
        ``model``, ``optimizer``, ``rmse``, ``mae``, ``nmae``, ``fit_seconds``,
        ``predict_seconds``, ``n_epochs``, ``n_grad_evals``,
        ``n_unknown_predictions``, ``n_unscored``, ``ode_epochs``, ``error``
        and, with ranking, ``ndcg@k``, ``precision@k``, ``recall@k``.
        ``n_unscored`` counts test pairs left out of the metrics because the
        model predicted NaN, as ``unknown="nan"`` does for unseen ids.
        ``ode_epochs`` counts the epochs that FlowAdam spent integrating the
        gradient flow (NaN without a history). ``error`` is empty, or says why
        the run failed, e.g. ``"diverged at epoch 12"``. Metrics a model
        cannot produce are NaN.
    summary : pandas.DataFrame
        One row per model with ``<metric>_mean`` and ``<metric>_std`` over runs,
        mean costs and the total of unknown-id predictions.
    curves : pandas.DataFrame
        The ``history_`` of every run that records one, with ``model``,
        ``fold`` and ``seed`` columns added.
    dataset, split : str
    files : dict of str to pathlib.Path
        Files written, by kind (``"results"``, ``"summary"``, ``"markdown"``,
        ``"figure"``, ``"curves"``); empty when no output folder was given.
    """

    results: pd.DataFrame
    summary: pd.DataFrame
    curves: pd.DataFrame
    dataset: str
    split: str
    k: int = 10
    files: dict = field(default_factory=dict)

    def to_markdown(self):
        """Return the summary as a Markdown table."""
        return format_markdown(self.summary, k=self.k)

    def save(self, output):
        """Write ``results.csv``, ``summary.csv``, ``summary.md``, ``comparison.png`` and ``curves.csv`` into ``output``.

        The folder is created when missing. Returns the dict of written files,
        also stored in :attr:`files`.
        """
        folder = Path(output)
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "results": folder / "results.csv",
            "summary": folder / "summary.csv",
            "markdown": folder / "summary.md",
            "figure": folder / "comparison.png",
            "curves": folder / "curves.csv",
        }
        self.results.to_csv(files["results"], index=False)
        self.summary.to_csv(files["summary"], index=False)
        self.curves.to_csv(files["curves"], index=False)
        heading = f"# flowrec compare: {self.dataset}, split {self.split}\n\n"
        files["markdown"].write_text(heading + self.to_markdown(), encoding="utf-8")
        plot_comparison(
            self.summary, self.curves, files["figure"], title=f"{self.dataset} ({self.split})"
        )
        self.files = files
        return files


def _resolve_models(models, dataset):
    """Return an ordered dict of name to unfitted estimator from the ``models`` argument."""
    if models is None:
        models = default_models(dataset)
    if isinstance(models, str):
        models = [name.strip() for name in models.split(",") if name.strip()]
    if isinstance(models, dict):
        items = list(models.items())
    else:
        items = [(name, name) for name in models]
    if not items:
        raise ValueError("models is empty; give at least one preset name or estimator")

    resolved = {}
    for name, spec in items:
        if not isinstance(name, str):
            raise TypeError(f"model names must be strings, got {name!r}")
        if isinstance(spec, str):
            estimator = make_model(spec)
        elif isinstance(spec, type) and issubclass(spec, torch.optim.Optimizer):
            from flowrec.models import LowRankMF

            estimator = LowRankMF(optimizer=spec)
        elif hasattr(spec, "fit") and hasattr(spec, "get_params"):
            estimator = spec
        else:
            raise TypeError(
                f"model {name!r} must be a preset name, an unfitted estimator with fit, predict "
                f"and get_params, or a torch.optim.Optimizer subclass, got {type(spec).__name__}"
            )
        resolved[name] = estimator
    return resolved


def _check_seeds(seeds):
    if isinstance(seeds, (int, np.integer)):
        seeds = [seeds]
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed, for example seeds=(0,)")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seeds must be non-negative ints, got {seed!r}")
    return [int(seed) for seed in seeds]


def _optimizer_label(estimator):
    """Describe how a model is trained, for the ``optimizer`` column."""
    params = estimator.get_params(deep=False)
    optimizer = params.get("optimizer")
    if optimizer is not None:
        return optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", str(optimizer))
    label = getattr(estimator, "_solver_label", None)
    if callable(label):
        return label()
    return "n/a"


def _configure(template, seed, flowrec_overrides, device):
    """Clone ``template`` and set the run's seed and the requested overrides."""
    estimator = clone(template)
    params = estimator.get_params(deep=False)
    overrides = {}
    if "random_state" in params:
        overrides["random_state"] = seed
    if device is not None and "device" in params:
        overrides["device"] = device
    # Epochs and validation apply to flowrec's own models only, so that the
    # baselines keep the settings their published figures were measured with.
    if type(estimator).__module__.startswith("flowrec.models"):
        for name, value in flowrec_overrides.items():
            if value is not None and name in params:
                overrides[name] = value
    if overrides:
        estimator.set_params(**overrides)
    return estimator


def _fitted_number(estimator, attribute, fallback=None):
    value = getattr(estimator, attribute, None)
    if value is None and fallback is not None:
        value = estimator.get_params(deep=False).get(fallback)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _predict_with_fallback(estimator, X):
    """Return predictions and the unknown-id mask, or None as the mask when the model has no such option."""
    try:
        accepts_fallback = "return_fallback" in inspect.signature(estimator.predict).parameters
    except (TypeError, ValueError):
        accepts_fallback = False
    if accepts_fallback:
        predictions, fallback = estimator.predict(X, return_fallback=True)
    else:
        predictions, fallback = estimator.predict(X), None
    return np.asarray(predictions, dtype=np.float64), fallback


def _rank_by_predictions(estimator, train, users, k):
    """Rank, for each user, the training items the user has not rated by predicted rating."""
    all_items = pd.unique(train["item_id"])
    seen = train.groupby("user_id")["item_id"].agg(set)
    pairs_user, pairs_item = [], []
    for user in users:
        candidates = [item for item in all_items if item not in seen[user]]
        pairs_user.extend([user] * len(candidates))
        pairs_item.extend(candidates)
    pairs = pd.DataFrame({"user_id": pairs_user, "item_id": pairs_item})
    scores = estimator.predict(pairs)
    pairs["score"] = scores
    recommended = {}
    for user, group in pairs.groupby("user_id", sort=False):
        top = group.nlargest(k, "score")
        recommended[user] = top["item_id"].tolist()
    return recommended


def _ranking_scores(estimator, fold, k, threshold):
    """Compute NDCG, precision and recall at k for the test users seen in training."""
    known_users = set(fold.train["user_id"].tolist())
    test = fold.test[fold.test["user_id"].isin(known_users)]
    relevant = ranking.relevant_items(test, threshold=threshold)
    users = list(relevant)
    if not users:
        return {}
    if hasattr(estimator, "recommend_batch"):
        recommended = estimator.recommend_batch(users, k=k)
    elif hasattr(estimator, "recommend"):
        recommended = {user: estimator.recommend(user, k=k) for user in users}
    else:
        recommended = _rank_by_predictions(estimator, fold.train, users, k)
    return {
        f"ndcg@{k}": ranking.ndcg_at_k(recommended, relevant, k),
        f"precision@{k}": ranking.precision_at_k(recommended, relevant, k),
        f"recall@{k}": ranking.recall_at_k(recommended, relevant, k),
    }


def _warm_up(device):
    """Run one tiny untimed LowRankMF fit on ``device``.

    The first sparse-kernel fit in a process pays about a second of one-time
    torch initialization (measured on a 2-core CPU), which would otherwise be
    charged to whichever model the table lists first.
    """
    from flowrec.models import LowRankMF

    tiny = pd.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 1], "rating": [1.0, 2.0, 3.0]})
    options = {} if device is None else {"device": device}
    LowRankMF(n_factors=2, n_epochs=2, random_state=0, **options).fit(tiny)


def _accepts_eval_set(estimator):
    try:
        return "eval_set" in inspect.signature(estimator.fit).parameters
    except (TypeError, ValueError):
        return False


def _run_one(name, template, fold, *, flowrec_overrides, device, ranking_metrics, k, threshold):
    """Fit one model on one fold and return its result row and learning curve."""
    estimator = _configure(template, fold.seed, flowrec_overrides, device)
    train_X = fold.train[["user_id", "item_id"]]
    test_X = fold.test[["user_id", "item_id"]]
    row = {
        "fold": fold.name,
        "seed": fold.seed,
        "model": name,
        "optimizer": _optimizer_label(estimator),
        "rmse": math.nan,
        "mae": math.nan,
        "nmae": math.nan,
    }

    # the test ratings are passed only to draw held-out learning curves:
    # eval_set never influences training or the epoch a model returns
    fit_options = {}
    if _accepts_eval_set(estimator):
        fit_options["eval_set"] = (test_X, fold.test["rating"].to_numpy())
    start = time.perf_counter()
    try:
        estimator.fit(train_X, fold.train["rating"].to_numpy(), **fit_options)
    except DivergenceError as error:
        # One diverging run should not discard the others: record it and go on.
        logger.warning("%s diverged on fold %s, seed %d: %s", name, fold.name, fold.seed, error)
        row.update(
            fit_seconds=time.perf_counter() - start, predict_seconds=math.nan,
            n_unknown_predictions=math.nan, n_unscored=math.nan, n_epochs=float(error.epoch),
            n_grad_evals=math.nan,
            ode_epochs=math.nan, error=f"diverged at epoch {error.epoch}",
        )
        return row, None
    row["fit_seconds"] = time.perf_counter() - start
    row["error"] = ""

    predicts_ratings = getattr(estimator, "predicts_ratings", True)
    row["predict_seconds"] = math.nan
    row["n_unknown_predictions"] = math.nan
    row["n_unscored"] = math.nan
    if predicts_ratings:
        start = time.perf_counter()
        predictions, fallback = _predict_with_fallback(estimator, test_X)
        row["predict_seconds"] = time.perf_counter() - start
        if fallback is not None:
            row["n_unknown_predictions"] = int(np.count_nonzero(fallback))
        truth = fold.test["rating"].to_numpy()
        # a model with unknown="nan" returns NaN for unseen ids: score the other
        # pairs and count the NaN ones in n_unscored
        scored = np.isfinite(np.asarray(predictions, dtype=np.float64))
        row["n_unscored"] = int(np.count_nonzero(~scored))
        if scored.any():
            row["rmse"] = metrics.rmse(truth[scored], predictions[scored])
            row["mae"] = metrics.mae(truth[scored], predictions[scored])
            if fold.rating_scale is not None:
                row["nmae"] = metrics.nmae(truth[scored], predictions[scored], fold.rating_scale)
    row["n_epochs"] = _fitted_number(estimator, _EPOCHS_ATTRIBUTE, fallback="n_epochs")
    row["n_grad_evals"] = _fitted_number(estimator, _GRAD_EVALS_ATTRIBUTE)

    if ranking_metrics or not predicts_ratings:
        row.update(_ranking_scores(estimator, fold, k, threshold))

    history = getattr(estimator, "history_", None)
    curve = None
    row["ode_epochs"] = math.nan
    if isinstance(history, pd.DataFrame) and len(history):
        if "mode" in history:
            row["ode_epochs"] = int((history["mode"].astype(str) == "ode").sum())
        curve = history.copy()
        curve.insert(0, "seed", fold.seed)
        curve.insert(0, "fold", fold.name)
        curve.insert(0, "model", name)
    return row, curve


def compare(
    models=None,
    *,
    dataset="synthetic",
    split=None,
    data_home=None,
    seeds=(0,),
    n_epochs=None,
    validation_fraction=None,
    device=None,
    ranking=False,
    k=10,
    relevance_threshold=None,
    output=None,
    progress=True,
):
    """Fit several recommenders on the same splits and compare held-out scores and costs.

    Each model is cloned for every (fold, seed) run, with ``random_state`` set
    to the seed when the model has that parameter, fitted on the training
    ratings and scored on the test ratings.

    Parameters
    ----------
    models : list of str, str or dict, default=None
        Preset names (see :data:`flowrec.compare.PRESETS`), as a list or a
        comma-separated string, or a dict from row name to a preset name, an
        unfitted estimator, or a ``torch.optim.Optimizer`` subclass (which
        trains a :class:`~flowrec.models.LowRankMF` with its defaults). An
        estimator needs ``fit(X, y)`` and ``predict(X)`` on
        (``user_id``, ``item_id``) DataFrames and ``get_params``. One that
        sets ``predicts_ratings = False`` and has ``recommend_batch(users, k)``
        or ``recommend(user, k)`` is scored with ranking metrics only. None
        runs ``flowadam``, ``adam``, ``surprise-svd`` and ``surprise-baseline``,
        plus ``flowadam-noreg`` and ``adam-noreg`` on the synthetic dataset.
    dataset : str, default="synthetic"
        A key of :data:`flowrec.compare.DATASETS`.
    split : str, default=None
        Which split of the dataset; None takes the dataset's default
        (``"u1-u5"``, the five official folds, for MovieLens 100K).
    data_home : str or path, default=None
        Folder with the dataset files; None uses ``FLOWREC_DATA`` or
        ``~/flowrec_data``.
    seeds : int or sequence of int, default=(0,)
        Seeds of the models and of random splits and synthetic data.
    n_epochs : int, default=None
        Epoch count for the flowrec models (those from ``flowrec.models``);
        None keeps their defaults. Baselines always keep their own settings.
    validation_fraction : float in (0, 1), default=None
        Share of each training set that the flowrec models hold out to record
        the validation RMSE of every epoch (drawn in the learning curves) and
        to stop early. None keeps their defaults. The test set is never used
        for this, so that early stopping cannot see it.
    device : {"auto", "cpu", "cuda"}, default=None
        Device for the models that have a ``device`` parameter; None keeps theirs.
    ranking : bool, default=False
        Also compute NDCG, precision and recall at ``k`` for rating predictors
        by ranking every unrated training item by predicted rating. This
        predicts about n_users x n_items pairs per run, which is slow for
        the Surprise models.
    k : int, default=10
        Length of the ranked lists.
    relevance_threshold : float, default=None
        Minimum held-out rating for an item to count as relevant; None makes
        every held-out item relevant.
    output : str or path, default=None
        Folder for ``results.csv``, ``summary.csv``, ``summary.md``,
        ``comparison.png`` and ``curves.csv`` (the learning curves); None
        writes nothing.
    progress : bool, default=True
        Show a tqdm bar over the runs.

    Returns
    -------
    ComparisonResult

    Raises
    ------
    ValueError
        For an unknown preset, dataset or split, or invalid seeds.
    DatasetNotFoundError
        If the dataset's files are not found.
    ImportError
        If a Surprise or implicit model is requested without those packages.

    Examples
    --------
    >>> result = compare(["surprise-baseline"], progress=False)  # doctest: +SKIP
    >>> result.summary[["model", "rmse_mean"]]  # doctest: +SKIP
    """
    # check arguments before loading any data
    templates = _resolve_models(models, dataset)
    seeds = _check_seeds(seeds)
    split = check_dataset(dataset, split)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if n_epochs is not None and (
        isinstance(n_epochs, bool) or not isinstance(n_epochs, (int, np.integer)) or n_epochs < 1
    ):
        raise ValueError(f"n_epochs must be a positive int or None, got {n_epochs!r}")

    if validation_fraction is not None and not (
        isinstance(validation_fraction, (int, float, np.floating)) and 0 < validation_fraction < 1
    ):
        raise ValueError(
            f"validation_fraction must be a number in (0, 1) or None, got {validation_fraction!r}"
        )
    flowrec_overrides = {"n_epochs": n_epochs, "validation_fraction": validation_fraction}

    folds = make_folds(dataset, split, seeds, data_home=data_home)
    _warm_up(device)

    # run every (model, fold, seed)
    runs = [(name, fold) for fold in folds for name in templates]
    rows, curves = [], []
    bar = tqdm(runs, desc=f"compare on {dataset}", unit="run", disable=not progress)
    for name, fold in bar:
        bar.set_postfix_str(f"{name} {fold.name} seed {fold.seed}")
        logger.debug("fitting %s on %s fold %s, seed %d", name, dataset, fold.name, fold.seed)
        row, curve = _run_one(
            name,
            templates[name],
            fold,
            flowrec_overrides=flowrec_overrides,
            device=device,
            ranking_metrics=ranking,
            k=k,
            threshold=relevance_threshold,
        )
        rows.append({"dataset": dataset, **row})
        if curve is not None:
            curves.append(curve)
    bar.close()

    results = pd.DataFrame(rows)
    summary = summarize(
        results,
        model_order=list(templates),
        report_nmae=DATASETS[dataset].report_nmae,
        k=k,
    )
    curve_table = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
        columns=["model", "fold", "seed", "epoch", "loss", "val_rmse", "eval_rmse", "mode"]
    )
    result = ComparisonResult(results, summary, curve_table, dataset, split, k=k)
    if output is not None:
        result.save(output)
    return result
