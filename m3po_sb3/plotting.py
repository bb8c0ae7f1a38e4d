"""Learning curves from :class:`m3po_sb3.MetaEvalCallback` CSV files and diagnostics from
:class:`m3po_sb3.diagnostics.DiagnosticsCallback` ones, single runs or mean ± std over seeds (matplotlib is an
optional extra)."""

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def read_eval_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """
    :param path: a CSV written by ``MetaEvalCallback``
    :return: its columns (``timesteps``, ``mean_return``, ``std_return``, ``n_episodes``) as float arrays
    """
    return read_csv_columns(path)


def read_csv_columns(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """
    :param path: a CSV file of numbers with a header (e.g. ``eval.csv``, ``diagnostics.csv``)
    :return: every column as a float array; empty cells (a diagnostic an agent lacks) are NaN
    """
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    return {column: np.array([float(row[column]) if row[column] else np.nan for row in rows]) for column in reader.fieldnames or ()}


def mean_over_seeds(paths: Sequence[str | os.PathLike], column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Aggregate one column of several runs (seeds) at the timesteps all of them logged.

    :param paths: CSV files with a ``timesteps`` column, one per seed
    :param column: the column to aggregate
    :return: ``timesteps``, mean and standard deviation over the seeds
    """
    runs = [read_csv_columns(path) for path in paths]
    common = sorted(set.intersection(*(set(run["timesteps"]) for run in runs)))
    values = np.array([[run[column][list(run["timesteps"]).index(t)] for t in common] for run in runs])
    return np.array(common), values.mean(axis=0), values.std(axis=0)


def plot_seed_curves(
    runs: dict[str, Sequence[str | os.PathLike]],
    out_png: str | os.PathLike,
    columns: Sequence[str] = ("mean_return",),
    title: str | None = None,
) -> Path:
    """
    Plot columns of multi-seed runs against env steps: per label the mean over seeds and a ±1 std band, one
    panel per column. A column that is all NaN for a label (e.g. ``eps_m`` of model-free SAC) is skipped.

    :param runs: label -> CSV files of its seeds (``eval.csv`` for returns, ``diagnostics.csv`` for
        ``eps_m``, ``eps_pi``, ``td_error``)
    :param out_png: image to write
    :param columns: the columns to plot, one panel each
    :param title: figure title
    :return: the path of the image
    """
    figure = _figure(figsize=(4.5 * len(columns), 3.6))
    for index, column in enumerate(columns):
        axes = figure.add_subplot(1, len(columns), index + 1)
        for label, paths in runs.items():
            timesteps, mean, std = mean_over_seeds(paths, column)
            if np.all(np.isnan(mean)):
                continue
            axes.plot(timesteps, mean, marker="o", markersize=3, label=f"{label} (n={len(paths)})")
            axes.fill_between(timesteps, mean - std, mean + std, alpha=0.2)
        axes.set_xlabel("env steps")
        axes.set_ylabel(column)
        if axes.lines:  # no legend for a panel no label has data for
            axes.legend(fontsize="small")
    if title is not None:
        figure.suptitle(title)
    figure.savefig(out_png, dpi=120)
    return Path(out_png)


def _figure(figsize: tuple[float, float]):  # noqa: ANN202 (matplotlib is imported lazily)
    try:
        from matplotlib.figure import Figure  # pyplot-free: no GUI backend needed
    except ImportError as error:
        raise ImportError("plotting needs matplotlib: pip install 'meta-mujoco-m3po[plots]' (or matplotlib)") from error
    return Figure(figsize=figsize, layout="tight")


def plot_learning_curve(
    csv_paths: Sequence[str | os.PathLike],
    out_png: str | os.PathLike,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """
    Plot mean evaluation return against env steps, one line per CSV, with a ±1 std band over the episodes.

    :param csv_paths: CSV files written by ``MetaEvalCallback``
    :param out_png: image to write
    :param labels: legend entries (default: the CSV files' folder names)
    :param title: figure title
    :return: the path of the image
    """
    if labels is None:
        labels = [Path(path).parent.name for path in csv_paths]
    if len(labels) != len(csv_paths):
        raise ValueError(f"got {len(labels)} labels for {len(csv_paths)} CSV files")
    figure = _figure(figsize=(6, 4))
    axes = figure.add_subplot()
    for path, label in zip(csv_paths, labels):
        curve = read_eval_csv(path)
        axes.plot(curve["timesteps"], curve["mean_return"], marker="o", markersize=3, label=label)
        axes.fill_between(
            curve["timesteps"], curve["mean_return"] - curve["std_return"], curve["mean_return"] + curve["std_return"], alpha=0.2
        )
    axes.set_xlabel("env steps")
    axes.set_ylabel("mean evaluation return")
    if title is not None:
        axes.set_title(title)
    axes.legend()
    figure.savefig(out_png, dpi=120)
    return Path(out_png)
