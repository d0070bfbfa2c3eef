"""The comparison harness on the synthetic problem, with presets and custom models."""

import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import BaseEstimator, RegressorMixin

from flowrec.compare import DATASETS, PRESETS, compare, default_models, make_folds, make_model
from flowrec.compare._report import format_markdown, summarize
from flowrec.models import LowRankMF

pytest.importorskip("surprise")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class MeanRegressor(RegressorMixin, BaseEstimator):
    """Predicts the training mean; records the seed it was fitted with."""

    seeds_seen = []

    def __init__(self, shift=0.0, random_state=None):
        self.shift = shift
        self.random_state = random_state

    def fit(self, X, y):
        MeanRegressor.seeds_seen.append(self.random_state)
        self.mean_ = float(np.mean(y)) + self.shift
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


@pytest.fixture(scope="module")
def default_result(tmp_path_factory):
    output = tmp_path_factory.mktemp("compare")
    # default models and dataset; fewer epochs keep the test short
    return compare(output=output, n_epochs=30, progress=False), output


def test_default_writes_files(default_result):
    result, output = default_result
    for name in ("results.csv", "summary.csv", "summary.md", "comparison.png", "curves.csv"):
        assert (output / name).is_file(), name
    assert (output / "comparison.png").read_bytes()[:8] == PNG_SIGNATURE
    assert set(result.files) == {"results", "summary", "markdown", "figure", "curves"}


def test_default_rows(default_result):
    result, _ = default_result
    assert result.summary["model"].tolist() == [
        "flowadam", "adam", "flowadam-noreg", "adam-noreg", "surprise-svd", "surprise-baseline",
    ]
    flowadam = result.summary.set_index("model").loc["flowadam"]
    assert flowadam["optimizer"] == "flowadam"
    assert np.isfinite(flowadam["rmse_mean"])
    assert flowadam["n_grad_evals_mean"] >= flowadam["n_epochs_mean"]


def test_default_values_finite(default_result):
    result, _ = default_result
    for column in ("rmse", "mae", "fit_seconds", "predict_seconds", "n_unknown_predictions"):
        assert np.isfinite(result.results[column]).all(), column
    ode_epochs = result.results.set_index("model")["ode_epochs"]
    assert ode_epochs["adam"] == 0
    assert np.isnan(ode_epochs["surprise-svd"])
    assert result.results["nmae"].isna().all()  # synthetic data has no rating scale


def test_default_summary_columns(default_result):
    result, output = default_result
    expected = {
        "model", "optimizer", "n_runs", "rmse_mean", "rmse_std", "mae_mean", "mae_std",
        "fit_seconds_mean", "n_epochs_mean", "n_grad_evals_mean", "ode_epochs_mean",
        "n_unknown_predictions", "n_failed",
    }
    assert set(result.summary.columns) == expected
    assert set(pd.read_csv(output / "summary.csv").columns) == expected


def test_default_markdown_table(default_result):
    result, output = default_result
    text = (output / "summary.md").read_text(encoding="utf-8")
    assert "| model | optimizer | RMSE | MAE | fit s | epochs | grad evals | ODE epochs | unknown | runs |" in text
    assert "| flowadam | flowadam |" in text
    assert result.to_markdown() in text


def test_default_curves_from_history(default_result):
    result, _ = default_result
    assert set(result.curves["model"]) == {"flowadam", "adam", "flowadam-noreg", "adam-noreg"}
    assert {"epoch", "loss", "val_rmse", "eval_rmse", "mode", "grad_evals"} <= set(result.curves.columns)
    assert result.curves["eval_rmse"].notna().all()


def test_real_datasets_default_to_four_rows():
    assert default_models("movielens-100k") == ["flowadam", "adam", "surprise-svd", "surprise-baseline"]
    assert default_models("jester-1") == default_models("movielens-100k")


def test_flowadam_beats_adam_on_unregularized_recovery():
    # the synthetic default's recovery pair at full length (1000 epochs each)
    result = compare(["flowadam-noreg", "adam-noreg"], seeds=(0, 1), progress=False)
    rmse = result.summary.set_index("model")["rmse_mean"]
    assert rmse["flowadam-noreg"] < 0.9 * rmse["adam-noreg"]
    ode_epochs = result.summary.set_index("model")["ode_epochs_mean"]
    assert ode_epochs["flowadam-noreg"] > 0


def test_validation_fraction_records_curve():
    result = compare(["adam", "surprise-baseline"], n_epochs=5, validation_fraction=0.1,
                     progress=False)
    assert result.curves["val_rmse"].notna().all()
    assert result.curves["model"].unique().tolist() == ["adam"]


@pytest.mark.parametrize("fraction", [0, 1, 1.5, "0.1"])
def test_invalid_validation_fraction_rejected(fraction):
    with pytest.raises(ValueError, match="validation_fraction must be a number in"):
        compare(["adam"], validation_fraction=fraction, progress=False)


def test_figure_shades_ode_epochs(tmp_path):
    from flowrec.compare._report import plot_comparison

    curves = pd.DataFrame(
        {
            "model": "flowadam",
            "fold": "holdout",
            "seed": 0,
            "epoch": np.arange(1, 11),
            "loss": np.linspace(1.0, 0.1, 10),
            "val_rmse": np.linspace(1.0, 0.5, 10),
            "mode": ["adam"] * 3 + ["ode"] * 2 + ["adam"] * 4 + ["ode"],
        }
    )
    summary = pd.DataFrame({"model": ["flowadam"], "rmse_mean": [0.5], "rmse_std": [np.nan]})
    path = tmp_path / "figure.png"
    plot_comparison(summary, curves, path, title="shading")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


class DivergingRegressor(MeanRegressor):
    """Raises DivergenceError in fit, as a model whose loss turned NaN would."""

    def fit(self, X, y):
        from flowrec.exceptions import DivergenceError

        raise DivergenceError("loss is NaN after epoch 4", epoch=4)


def test_diverging_run_recorded_not_raised(caplog):
    result = compare({"bad": DivergingRegressor(), "mean": MeanRegressor()}, progress=False)
    runs = result.results.set_index("model")
    assert runs.loc["bad", "error"] == "diverged at epoch 4"
    assert np.isnan(runs.loc["bad", "rmse"])
    assert runs.loc["mean", "error"] == ""
    assert np.isfinite(runs.loc["mean", "rmse"])
    assert "bad diverged on fold holdout, seed 0" in caplog.text
    assert "| bad | n/a | n/a | n/a |" in result.to_markdown()


def test_seeds_give_mean_and_std():
    result = compare(["surprise-svd", "surprise-baseline"], seeds=(0, 1, 2), progress=False)
    assert len(result.results) == 6
    svd = result.summary.set_index("model").loc["surprise-svd"]
    assert svd["n_runs"] == 3
    assert svd["rmse_std"] > 0
    assert "±" in result.to_markdown()


def test_custom_estimator_cloned_with_seed():
    MeanRegressor.seeds_seen = []
    template = MeanRegressor(shift=0.5)
    result = compare({"mean": template}, seeds=(3, 4), progress=False)
    assert MeanRegressor.seeds_seen == [3, 4]
    assert template.random_state is None  # the caller's object is not modified
    assert not hasattr(template, "mean_")
    assert result.summary.loc[0, "optimizer"] == "n/a"
    assert np.isnan(result.summary.loc[0, "n_epochs_mean"])
    assert np.isnan(result.summary.loc[0, "n_unknown_predictions"])


def test_optimizer_class_as_model():
    from flowrec.models import LowRankMF

    result = compare(
        {
            "rmsprop": torch.optim.RMSprop,
            "sgd-mf": LowRankMF(optimizer=torch.optim.SGD, lr=0.5, n_factors=4),
        },
        n_epochs=5,
        progress=False,
    )
    summary = result.summary.set_index("model")
    assert summary.loc["rmsprop", "optimizer"] == "RMSprop"
    assert summary.loc["sgd-mf", "optimizer"] == "SGD"
    assert (result.results["n_epochs"] <= 5).all()


def test_epoch_override_skips_baselines():
    result = compare(["adam", "surprise-svd"], n_epochs=3, progress=False)
    epochs = result.results.set_index("model")["n_epochs"]
    assert epochs["adam"] <= 3
    assert epochs["surprise-svd"] == 20


def test_ranking_metrics_every_model():
    result = compare(["adam", "surprise-baseline", "implicit-als"], n_epochs=5, ranking=True, k=5,
                     progress=False)
    runs = result.results.set_index("model")
    for column in ("ndcg@5", "precision@5", "recall@5"):
        assert runs[column].between(0, 1).all(), column
    assert np.isnan(runs.loc["implicit-als", "rmse"])
    assert "NDCG@5" in result.to_markdown()


def test_implicit_als_always_ranked():
    result = compare(["implicit-als"], progress=False)
    row = result.results.iloc[0]
    assert np.isnan(row["rmse"])
    assert 0 <= row["ndcg@10"] <= 1


def test_figure_without_flowrec_models(tmp_path):
    compare(["surprise-baseline"], output=tmp_path, progress=False)
    assert (tmp_path / "comparison.png").read_bytes()[:8] == PNG_SIGNATURE


def test_unknown_preset_rejected():
    with pytest.raises(ValueError, match="unknown model preset 'svd'; choose from flowadam"):
        compare(["svd"], progress=False)


def test_unknown_dataset_rejected():
    with pytest.raises(ValueError, match="unknown dataset 'netflix'; choose from synthetic"):
        compare(["adam"], dataset="netflix", progress=False)


def test_unknown_split_rejected():
    with pytest.raises(ValueError, match="split 'u9' is not available for movielens-100k"):
        compare(["adam"], dataset="movielens-100k", split="u9", progress=False)


@pytest.mark.parametrize("seeds", [(), (-1,), (1.5,)])
def test_invalid_seeds_rejected(seeds):
    with pytest.raises(ValueError, match="seed"):
        compare(["adam"], seeds=seeds, progress=False)


def test_non_estimator_rejected():
    with pytest.raises(TypeError, match="model 'x' must be a preset name"):
        compare({"x": 3}, progress=False)


def test_missing_data_names_folder(tmp_path):
    from flowrec.exceptions import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match=str(tmp_path)):
        compare(["surprise-baseline"], dataset="movielens-100k", data_home=tmp_path, progress=False)


def test_every_preset_builds():
    for name in PRESETS:
        estimator = make_model(name)
        assert hasattr(estimator, "fit"), name


def test_official_folds_repeat_per_seed(data_home):
    folds = make_folds("movielens-100k", "u1-u5", [0, 1], data_home=data_home)
    assert [(fold.name, fold.seed) for fold in folds][:3] == [("u1", 0), ("u1", 1), ("u2", 0)]
    assert len(folds) == 10
    assert len(folds[0].train) == 80_000
    assert folds[0].rating_scale == (1.0, 5.0)


def test_movielens_u1_svd_reference(data_home):
    result = compare(["surprise-svd"], dataset="movielens-100k", split="u1", data_home=data_home,
                     progress=False)
    # Surprise SVD, defaults, random_state=0 on u1 measures 0.9513
    assert result.results.loc[0, "rmse"] == pytest.approx(0.9513, abs=5e-4)


@pytest.mark.slow
def test_jester_reports_nmae(data_home):
    assert DATASETS["jester-1"].report_nmae
    result = compare(["surprise-baseline"], dataset="jester-1", data_home=data_home, progress=False)
    row = result.results.iloc[0]
    assert row["nmae"] == pytest.approx(row["mae"] / 20)
    assert "NMAE" in result.to_markdown()


@pytest.mark.slow
def test_flowadam_beats_svd_movielens(data_home, tmp_path):
    result = compare(["flowadam", "surprise-svd"], dataset="movielens-100k", data_home=data_home,
                     output=tmp_path, progress=False)
    rmse = result.summary.set_index("model")["rmse_mean"]
    assert result.summary.loc[0, "n_runs"] == 5
    assert rmse["flowadam"] < rmse["surprise-svd"]


def _load_example(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_example_compare_optimizers_runs(tmp_path, capsys):
    _load_example("compare_optimizers").main(str(tmp_path))
    out = capsys.readouterr().out
    for row in ("| flowadam |", "| lion |", "| adabelief |", "| rmsprop | RMSprop |"):
        assert row in out
    assert (tmp_path / "comparison.png").is_file()


@pytest.mark.slow
def test_example_quickstart_runs(data_home, capsys):
    _load_example("quickstart").main(str(data_home))
    out = capsys.readouterr().out
    assert re.search(r"test RMSE \d\.\d{4}, MAE \d\.\d{4}", out)
    assert "top 5 unseen movies for user" in out


def test_nan_predictions_are_left_out_and_counted(data_home):
    model = LowRankMF(n_factors=4, n_epochs=3, unknown="nan", device="cpu")
    result = compare({"mf": model}, dataset="movielens-100k", split="u1", data_home=data_home,
                     progress=False)
    run = result.results.iloc[0]
    # u1.test has 32 pairs whose movie never occurs in u1.base
    assert run["n_unscored"] == 32
    assert run["n_unknown_predictions"] == 32
    assert np.isfinite(run["rmse"])


def test_summary_counts_failed_runs():
    results = pd.DataFrame({
        "model": ["m", "m", "m"], "optimizer": ["flowadam"] * 3,
        "rmse": [0.9, np.nan, np.nan], "mae": [0.7, np.nan, np.nan],
        "fit_seconds": [1.0, 0.5, 0.5], "n_epochs": [10.0, 3.0, 2.0],
        "n_grad_evals": [10.0, np.nan, np.nan], "ode_epochs": [0.0, np.nan, np.nan],
        "n_unknown_predictions": [0.0, np.nan, np.nan],
        "error": ["", "diverged at epoch 3", "diverged at epoch 2"],
    })
    summary = summarize(results, model_order=["m"], report_nmae=False, k=10)
    row = summary.iloc[0]
    assert row["n_failed"] == 2
    assert row["n_runs"] == 3
    # epochs of the diverged runs do not dilute the mean of the finished run
    assert row["n_epochs_mean"] == 10.0
    assert "| 3 (2 failed) |" in format_markdown(summary, k=10)
