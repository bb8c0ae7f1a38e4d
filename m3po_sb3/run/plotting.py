"""Learning curves from :class:`m3po_sb3.MetaEvalCallback` CSV files and diagnostics from
:class:`m3po_sb3.callbacks.diagnostics.DiagnosticsCallback` ones, single runs or mean ± std over seeds (matplotlib is an
optional extra).

``python -m m3po_sb3.plotting FOLDER`` plots every run found under ``FOLDER`` (a sweep's, or RL Zoo-style
``--log-folder``): one ``ENV_returns.png`` per env, mean ± std over seeds per algorithm, with the random
policy's return as the floor.
"""

import argparse
import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

RANDOM_POLICY_CSV = "random_policy.csv"  # written by m3po_sb3.train beside eval.csv


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
    random_return: float | None = None,
) -> Path:
    """
    Plot columns of multi-seed runs against env steps: per label the mean over seeds and a ±1 std band, one
    panel per column. A column that is all NaN for a label (e.g. ``eps_m`` of model-free SAC) is skipped.

    :param runs: label -> CSV files of its seeds (``eval.csv`` for returns, ``diagnostics.csv`` for
        ``eps_m``, ``eps_pi``, ``td_error``)
    :param out_png: image to write
    :param columns: the columns to plot, one panel each
    :param title: figure title
    :param random_return: the random policy's return, drawn in the ``mean_return`` panel (``None``: not drawn)
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
        if column == "mean_return":
            _random_line(axes, random_return)
        axes.set_xlabel("env steps")
        axes.set_ylabel(column)
        if axes.lines:  # no legend for a panel no label has data for
            axes.legend(fontsize="small")
    if title is not None:
        figure.suptitle(title)
    figure.savefig(out_png, dpi=120)
    return Path(out_png)


def plot_interval_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    out_png: str | os.PathLike,
    title: str | None = None,
    random_return: float | None = None,
    ylabel: str = "return",
) -> Path:
    """
    Plot aggregate curves with their intervals (e.g. the interquartile mean over seeds and its bootstrap 95 %
    interval), with the random policy's return as the floor.

    :param curves: label -> ``(timesteps, estimate, interval low, interval high)``
    :param out_png: image to write
    :param title: figure title
    :param random_return: the random policy's return (``None``: not drawn)
    :param ylabel: the y axis' label
    :return: the path of the image
    """
    figure = _figure(figsize=(5.5, 3.8))
    axes = figure.add_subplot(1, 1, 1)
    for label, (timesteps, estimate, low, high) in curves.items():
        axes.plot(timesteps, estimate, marker="o", markersize=3, label=label)
        axes.fill_between(timesteps, low, high, alpha=0.2)
    _random_line(axes, random_return)
    axes.set_xlabel("env steps")
    axes.set_ylabel(ylabel)
    axes.legend(fontsize="small")
    if title is not None:
        figure.suptitle(title)
    figure.savefig(out_png, dpi=120)
    return Path(out_png)


def _random_line(axes, random_return: float | None) -> None:  # noqa: ANN001 (matplotlib is imported lazily)
    if random_return is not None:
        axes.axhline(random_return, color="grey", linestyle="--", label=f"random policy ({random_return:.0f})")


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
    random_return: float | None = None,
    note: str | None = None,
) -> Path:
    """
    Plot mean evaluation return against env steps, one line per CSV, with a ±1 std band over the episodes.

    :param csv_paths: CSV files written by ``MetaEvalCallback``
    :param out_png: image to write
    :param labels: legend entries (default: the CSV files' folder names)
    :param title: figure title
    :param random_return: the random policy's return, drawn as a dashed line (``None``: not drawn)
    :param note: a line under the axes (e.g. the budget and the evaluation episodes)
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
    _random_line(axes, random_return)
    axes.set_xlabel("env steps" if note is None else f"env steps\n{note}")
    axes.set_ylabel("mean evaluation return")
    if title is not None:
        axes.set_title(title)
    axes.legend()
    figure.savefig(out_png, dpi=120)
    return Path(out_png)


def random_policy_return(run_folders: Sequence[str | os.PathLike]) -> float | None:
    """
    :param run_folders: run folders of :mod:`m3po_sb3.run.train`
    :return: the random policy's mean return over the runs that measured it (``None``: none did)
    """
    paths = [Path(folder) / RANDOM_POLICY_CSV for folder in run_folders]
    returns = [read_eval_csv(path)["mean_return"][0] for path in paths if path.is_file()]
    return float(np.mean(returns)) if returns else None


def plot_runs(folder: str | os.PathLike, out: str | os.PathLike | None = None) -> list[Path]:
    """
    Plot every finished or interrupted run under ``folder``: per env, the mean ± std over seeds of each
    algorithm's evaluation return, with the random policy's return.

    :param folder: searched recursively for run folders (``config.json`` beside an ``eval.csv``)
    :param out: folder of the images (default: ``folder``)
    :return: the images written, one per env
    """
    runs: dict[str, dict[str, list[Path]]] = {}
    for config_path in sorted(Path(folder).rglob("config.json")):
        if (config_path.parent / "eval.csv").is_file():
            config = json.loads(config_path.read_text())
            runs.setdefault(config["env"], {}).setdefault(config["algo"], []).append(config_path.parent)
    if not runs:
        raise FileNotFoundError(f"no run (config.json beside an eval.csv) under {folder}")
    out = Path(folder if out is None else out)
    out.mkdir(parents=True, exist_ok=True)
    images = []
    for env, by_algo in runs.items():
        curves = {algo: [run / "eval.csv" for run in algo_runs] for algo, algo_runs in by_algo.items()}
        floor = random_policy_return([run for algo_runs in by_algo.values() for run in algo_runs])
        images.append(plot_seed_curves(curves, out / f"{env}_returns.png", title=f"{env}: evaluation return", random_return=floor))
    return images


def build_parser() -> argparse.ArgumentParser:
    """:return: the command line parser of ``python -m m3po_sb3.plotting``"""
    parser = argparse.ArgumentParser(prog="python -m m3po_sb3.plotting", description=__doc__.split("\n\n")[1], allow_abbrev=False)
    parser.add_argument("folder", help="a sweep's folder, or any folder holding run folders")
    parser.add_argument("--out", default=None, help="folder of the images (default: FOLDER)")
    return parser


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """
    :param argv: command line arguments (default: ``sys.argv[1:]``)
    :return: the images written
    """
    args = build_parser().parse_args(argv)
    images = plot_runs(args.folder, args.out)
    for image in images:
        print(f"Saved to {image}")
    return images


if __name__ == "__main__":
    main()
