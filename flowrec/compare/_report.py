"""Summary table, Markdown rendering and figure of a comparison."""

import numpy as np
import pandas as pd

__all__ = ["summarize", "format_markdown", "plot_comparison"]

# (column in the per-run table, header in the summary); the mean and the
# standard deviation over runs of each column are reported.
_RATING_METRICS = [("rmse", "RMSE"), ("mae", "MAE")]
_RANKING_METRICS = ["ndcg", "precision", "recall"]


def summarize(results, *, model_order, report_nmae, k):
    """Aggregate the per-run table into one row per model.

    Metrics get a ``_mean`` and a ``_std`` column (sample standard deviation,
    NaN for a single run). Costs are means over runs, and
    ``n_unknown_predictions`` is the total over runs. Metrics and costs are
    taken over the runs that finished; ``n_failed`` counts the others (a
    diverged run, for example), and the Markdown table shows it.
    """
    metrics = [name for name, _ in _RATING_METRICS]
    if report_nmae:
        metrics.append("nmae")
    metrics += [f"{name}@{k}" for name in _RANKING_METRICS if f"{name}@{k}" in results]

    rows = []
    for model in model_order:
        runs = results[results["model"] == model]
        failed = runs["error"].fillna("").astype(str) != ""
        row = {"model": model, "optimizer": runs["optimizer"].iloc[0], "n_runs": len(runs),
               "n_failed": int(failed.sum())}
        finished = runs[~failed]
        for metric in metrics:
            values = finished[metric].astype(np.float64)
            row[f"{metric}_mean"] = values.mean()
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else np.nan
        for cost in ("fit_seconds", "n_epochs", "n_grad_evals", "ode_epochs"):
            row[f"{cost}_mean"] = finished[cost].astype(np.float64).mean()
        row["n_unknown_predictions"] = runs["n_unknown_predictions"].sum(min_count=1)
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_std(row, metric, digits):
    mean = row[f"{metric}_mean"]
    std = row[f"{metric}_std"]
    if not np.isfinite(mean):
        return "n/a"
    if np.isfinite(std):
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


def _count(value):
    return "n/a" if not np.isfinite(value) else f"{value:,.0f}"


def _runs_cell(row):
    failed = int(row.get("n_failed", 0) or 0)
    return f"{row['n_runs']} ({failed} failed)" if failed else str(row["n_runs"])


def format_markdown(summary, *, k):
    """Render the summary as a Markdown table (also readable as plain text)."""
    metric_columns = [("rmse", "RMSE"), ("mae", "MAE")]
    if "nmae_mean" in summary:
        metric_columns.append(("nmae", "NMAE"))
    for name in _RANKING_METRICS:
        if f"{name}@{k}_mean" in summary:
            metric_columns.append((f"{name}@{k}", f"{name.upper() if name == 'ndcg' else name}@{k}"))

    header = ["model", "optimizer"] + [title for _, title in metric_columns]
    header += ["fit s", "epochs", "grad evals", "ODE epochs", "unknown", "runs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in summary.iterrows():
        cells = [row["model"], row["optimizer"]]
        cells += [_mean_std(row, metric, 4) for metric, _ in metric_columns]
        fit = row["fit_seconds_mean"]
        cells += [
            f"{fit:.2f}",
            _count(row["n_epochs_mean"]),
            _count(row["n_grad_evals_mean"]),
            _count(row["ode_epochs_mean"]),
            _count(row["n_unknown_predictions"]),
            _runs_cell(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _shade_ode_epochs(axis, history):
    """Shade the epochs in which FlowAdam integrated the gradient flow (mode ``"ode"``)."""
    ode = (history["mode"].astype(str) == "ode").to_numpy()
    epochs = history["epoch"].to_numpy()
    start = None
    for position, flag in enumerate(ode):
        if flag and start is None:
            start = epochs[position]
        if start is not None and (not flag or position == len(ode) - 1):
            end = epochs[position] if flag else epochs[position - 1]
            axis.axvspan(start - 0.5, end + 0.5, color="tab:orange", alpha=0.15, linewidth=0)
            start = None


def plot_comparison(summary, curves, path, *, title):
    """Save learning curves and a held-out RMSE bar chart as a PNG.

    Curves are drawn for the first run (first fold, first seed) of every model
    that records a training history. The middle panel shows the test RMSE of
    every epoch (``eval_rmse``, which never steers training) when recorded,
    else the validation RMSE. Epochs where FlowAdam ran in ODE mode are shaded.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    loss_axis, rmse_axis, bar_axis = figure.subplots(1, 3)

    # learning curves: held-out RMSE per epoch where the models recorded it
    # (eval_rmse, scored on the test fold), else the validation RMSE
    rmse_column = "val_rmse"
    if "eval_rmse" in curves and curves["eval_rmse"].notna().any():
        rmse_column = "eval_rmse"
    # models that follow the same path (FlowAdam that never leaves Adam mode
    # equals Adam) would hide each other, so each model gets its own dash style
    line_styles = ["-", "--", ":", "-."]
    shaded = False
    for position, (model, runs) in enumerate(curves.groupby("model", sort=False)):
        first = runs[(runs["fold"] == runs["fold"].iloc[0]) & (runs["seed"] == runs["seed"].iloc[0])]
        style = {"label": model, "linestyle": line_styles[position % len(line_styles)]}
        loss_axis.plot(first["epoch"], first["loss"], **style)
        has_rmse = first[rmse_column].notna().any()
        if has_rmse:
            rmse_axis.plot(first["epoch"], first[rmse_column], **style)
        if not shaded and (first["mode"].astype(str) == "ode").any():
            _shade_ode_epochs(loss_axis, first)
            if has_rmse:
                _shade_ode_epochs(rmse_axis, first)
            shaded = True
    loss_axis.set(title="training loss", xlabel="epoch", ylabel="loss", yscale="log")
    rmse_title = "test RMSE per epoch" if rmse_column == "eval_rmse" else "validation RMSE"
    rmse_axis.set(title=rmse_title, xlabel="epoch", ylabel="RMSE")
    hints = {
        loss_axis: "no model recorded a training history",
        rmse_axis: "no model recorded RMSE per epoch",
    }
    for axis, hint in hints.items():
        if axis.lines:
            axis.legend(fontsize="small")
        else:
            axis.text(0.5, 0.5, hint, ha="center", va="center", transform=axis.transAxes)
    if shaded:
        loss_axis.annotate("shaded: FlowAdam ODE mode", xy=(0.02, 0.02),
                           xycoords="axes fraction", fontsize="small")

    # held-out RMSE
    rated = summary[np.isfinite(summary["rmse_mean"].astype(np.float64))]
    positions = np.arange(len(rated))
    errors = rated["rmse_std"].astype(np.float64).fillna(0.0).to_numpy()
    bar_axis.bar(positions, rated["rmse_mean"].astype(np.float64), yerr=errors, capsize=4,
                 color="tab:blue")
    bar_axis.set_xticks(positions, rated["model"], rotation=30, ha="right")
    if len(rated):
        low = float((rated["rmse_mean"] - errors).min())
        high = float((rated["rmse_mean"] + errors).max())
        margin = max(0.05 * (high - low), 0.01 * high)
        bar_axis.set_ylim(max(0.0, low - 4 * margin), high + margin)
    bar_axis.set(title="held-out RMSE (mean ± std over runs)", ylabel="RMSE")

    figure.suptitle(title)
    figure.savefig(path, dpi=100)
