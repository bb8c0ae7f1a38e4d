"""Learning comparison of M3PO, M2PO and the baselines (issues 5, 10): same networks, G, warm-up and seeds.

Trains the (env × algo × seed) grid in parallel with :mod:`m3po_sb3.run.sweep` (each run is
``python -m m3po_sb3.train ... --diagnostics``), then writes into ``--results``:

- ``returns.csv`` and ``diagnostics.csv``: every run's evaluations and diagnostics (of the runs trained with
  ``--diagnostics``), one row per (run, step);
- ``ENV_returns.png`` (with the random policy's return) and ``ENV_diagnostics.png``: mean ± std over seeds;
- ``table.md``: evaluation return (mean ± std over seeds) at fixed sample counts;
- on a direction env (``HalfCheetahFwdBwd-v0``, ``AntFwdBwd-v0``, ``HumanoidDirec-v0``): ``direction.csv``
  (``env, algo, seed, timesteps`` and the fractions) and a table of the fraction of steps the final agent moves
  in the task's direction, overall and in the first 50 steps after each reversal, with the random policy's;
  each run's replays are kept in its folder (``direction.csv``);
- with ``rliable`` installed (``pip install -e .[bench]``): ``iqm.csv`` (``env, algo, timesteps, iqm,
  ci_low, ci_high, n_seeds``), ``ENV_iqm.png`` and IQM tables: the interquartile mean over seeds of the
  evaluation return with its stratified-bootstrap 95 % interval (Agarwal et al. 2021), per evaluation step.

``--aggregate-only`` re-reads the runs; only finished runs are aggregated. Everything after ``--`` goes to every run's training command
line (the default is the CPU budget described in benchmarks/README.md); ``--algo-args ALGO=ARGS`` adds
arguments to one algorithm's runs (e.g. ``"rl2=--timesteps 100000"``). Runs log diagnostics unless
``--no-diagnostics``, except RL² (``rl2``), which has no replay buffer to compute them on.
"""

import argparse
import csv
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np

from meta_mujoco_envs.direction import DirectionTaskEnv
from m3po_sb3.run.enjoy import play_episode
from m3po_sb3.callbacks.evaluation import RandomPolicy
from m3po_sb3.run.plotting import mean_over_seeds, plot_interval_curves, plot_seed_curves, random_policy_return, read_csv_columns
from m3po_sb3.run.folders import load_run, read_config, read_status
from m3po_sb3.run.sweep import BACKENDS, grid, run_dir, run_sweep

DEFAULT_TRAIN_ARGS = (
    "--preset demo --epoch-length 500 --gradient-steps 1 --eval-freq 500 --eval-episodes 3 --no-progress-bar"
).split()
WITHOUT_DIAGNOSTICS = ("rl2",)  # on-policy: no replay buffer
DIAGNOSTICS = ("eps_m", "eps_pi", "td_error")
DIRECTION_EPISODES = 10  # replayed episodes of a final agent on a direction env
DIRECTION_COLUMNS = ("right_direction", "right_direction_after_switch")


def write_long_csv(path: Path, runs: dict[tuple[str, str, int], Path], file_name: str) -> None:
    """
    Concatenate one CSV of every run, prefixed with ``env, algo, seed`` columns.

    :param path: the file to write
    :param runs: (env, algo, seed) -> run folder
    :param file_name: the CSV of each run folder (``eval.csv`` or ``diagnostics.csv``)
    """
    with open(path, "w", newline="") as file:
        writer = None
        for (env, algo, seed), folder in runs.items():
            with open(folder / file_name, newline="") as run_file:
                for row in csv.DictReader(run_file):
                    if writer is None:
                        writer = csv.DictWriter(file, ["env", "algo", "seed", *row])
                        writer.writeheader()
                    writer.writerow(dict(env=env, algo=algo, seed=seed, **row))


def markdown_table(env: str, paths: dict[str, list[Path]], sample_counts: Sequence[int]) -> str:
    """
    :param env: the env id (table caption)
    :param paths: algo -> the ``eval.csv`` of its seeds
    :param sample_counts: env steps to report (each must be an evaluation step of every run)
    :return: a markdown table of the mean ± std over seeds of the evaluation return
    """
    lines = [f"**{env}**: evaluation return, mean ± std over seeds", "", "| algo | seeds | " + " | ".join(f"{n} steps" for n in sample_counts) + " |"]
    lines.append("|---" * (len(sample_counts) + 2) + "|")
    for algo, algo_paths in paths.items():
        at = {int(t): (m, s) for t, m, s in zip(*mean_over_seeds(algo_paths, "mean_return"))}
        cells = [f"{at[n][0]:.1f} ± {at[n][1]:.1f}" if n in at else "n/a" for n in sample_counts]
        lines.append(f"| {algo} | {len(algo_paths)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def diagnostics_table(env: str, paths: dict[str, list[Path]]) -> str:
    """
    :param env: the env id (table caption)
    :param paths: algo -> the ``diagnostics.csv`` of its seeds
    :return: a markdown table of each diagnostic (mean ± std over seeds) at the last step all seeds logged
    """
    lines = [f"**{env}**: diagnostics at the last epoch, mean ± std over seeds", "", "| algo | steps | " + " | ".join(DIAGNOSTICS) + " |"]
    lines.append("|---" * (len(DIAGNOSTICS) + 2) + "|")
    for algo, algo_paths in paths.items():
        last = [mean_over_seeds(algo_paths, name) for name in DIAGNOSTICS]
        cells = [f"{mean[-1]:.3g} ± {std[-1]:.2g}" if np.isfinite(mean[-1]) else "n/a" for _, mean, std in last]
        lines.append(f"| {algo} | {int(last[0][0][-1])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


IQMCurve = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def iqm_curves(evals: dict[str, list[Path]], reps: int = 2000, seed: int = 0) -> dict[str, IQMCurve]:
    """
    Interquartile mean over seeds of the evaluation return, with stratified-bootstrap 95 % intervals, at every
    evaluation step all of an algorithm's seeds reached, by ``rliable`` (an optional dependency).

    :param evals: algo -> the ``eval.csv`` of its seeds
    :param reps: bootstrap replications
    :param seed: seed of the bootstrap
    :return: algo -> ``(timesteps, iqm, ci_low, ci_high)``
    """
    curves = {}
    for algo, paths in evals.items():
        columns = [read_csv_columns(path) for path in paths]
        steps = sorted(set.intersection(*(set(column["timesteps"]) for column in columns)))
        scores = np.array([[column["mean_return"][list(column["timesteps"]).index(step)] for step in steps] for column in columns])
        curves[algo] = (np.array(steps, dtype=int), *iqm_with_interval(scores, reps, seed))
    return curves


def iqm_with_interval(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    :param scores: shape ``(runs, points)``
    :return: per point, the IQM over runs and its stratified-bootstrap 95 % interval (``rliable``)
    """
    from rliable import library as rly
    from rliable import metrics

    np.random.seed(seed)  # rliable's bootstrap draws from numpy's global generator

    def iqm(runs_tasks_points: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(runs_tasks_points[..., point]) for point in range(runs_tasks_points.shape[-1])])

    estimates, intervals = rly.get_interval_estimates({"": scores[:, None, :]}, iqm, reps=reps)  # (runs, 1 task, points)
    return estimates[""], intervals[""][0], intervals[""][1]


def iqm_table(env: str, curves: dict[str, IQMCurve], n_seeds: dict[str, int], sample_counts: Sequence[int]) -> str:
    """:return: a markdown table of the IQM [95 % interval] at ``sample_counts`` (``–`` where a curve has no point)"""
    lines = [f"**{env}**: evaluation return, IQM over seeds [stratified-bootstrap 95 % interval]", ""]
    lines += ["| algo | seeds | " + " | ".join(f"{n} steps" for n in sample_counts) + " |", "|---" * (len(sample_counts) + 2) + "|"]
    for algo, (steps, estimate, low, high) in curves.items():
        at = {int(t): f"{m:.0f} [{lo:.0f}, {hi:.0f}]" for t, m, lo, hi in zip(steps, estimate, low, high)}
        lines.append(f"| {algo} | {n_seeds[algo]} | " + " | ".join(at.get(n, "–") for n in sample_counts) + " |")
    return "\n".join(lines) + "\n"


def direction_csv(folder: Path, episodes: int = DIRECTION_EPISODES) -> Path | None:
    """
    Replay a finished run's final agent on its direction env (seeds ``0 .. episodes - 1``, deterministic) and
    write, per episode, the fraction of steps moving in the task's direction, overall and in the first 50
    steps after each reversal (:func:`m3po_sb3.run.enjoy.play_episode`). Kept in the run folder, so the figures
    outlive the agent (which is not committed).

    :return: the run's ``direction.csv``; ``None`` on an env without direction tasks, or without the file and
        the agent to make it
    """
    path = folder / "direction.csv"
    if not path.is_file() and (folder / "model.zip").is_file():
        env = gym.make(read_config(folder)["env"])
        env.close()
        if not isinstance(env.unwrapped, DirectionTaskEnv):
            return None
        agent, env = load_run(folder)
        rows = [play_episode(agent, env, seed=episode, deterministic=True) for episode in range(episodes)]
        with open(path, "w", newline="") as file:
            writer = csv.DictWriter(file, ["episode", "return", *DIRECTION_COLUMNS], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(dict(row, episode=episode) for episode, row in enumerate(rows))
    return path if path.is_file() else None


class SingleRandomPolicy(RandomPolicy):
    """:class:`~m3po_sb3.callbacks.evaluation.RandomPolicy` for one observation at a time (``play_episode``)."""

    def predict(self, observation, state=None, episode_start=None, deterministic=False):  # noqa: ANN001, ANN201
        return super().predict(np.asarray(observation)[None])[0][0], state


def direction_table(env: str, runs: dict[tuple[str, int], Path], episodes: int = DIRECTION_EPISODES) -> tuple[str, list[dict]]:
    """
    :param env: a direction env id
    :param runs: (algo, seed) -> run folder with a ``direction.csv``
    :param episodes: episodes of the random policy (the floor)
    :return: a markdown table of the fractions, per algorithm over its seeds' means (IQM [95 % interval] with
        ``rliable``, else mean ± std), the random policy's (mean ± std over episodes) first; and one row per run (``env, algo, seed,
        timesteps`` and the fractions)
    """
    random_env = gym.make(env)
    random_agent = SingleRandomPolicy(random_env.action_space, seed=0)
    random_rows = [play_episode(random_agent, random_env, seed=episode, deterministic=False) for episode in range(episodes)]
    means = {"random": [[row[name] for name in DIRECTION_COLUMNS] for row in random_rows]}  # per episode
    rows = []
    for (algo, seed), folder in runs.items():
        columns = read_csv_columns(folder / "direction.csv")
        mean = [float(np.nanmean(columns[name])) for name in DIRECTION_COLUMNS]
        means.setdefault(algo, []).append(mean)
        rows.append(dict(env=env, algo=algo, seed=seed, timesteps=read_status(folder)["num_timesteps"], **dict(zip(DIRECTION_COLUMNS, mean))))
    lines = [f"**{env}**: fraction of steps moving in the task's direction (final agents, {episodes} deterministic episodes each)", ""]
    lines += ["| algo | seeds | all steps | first 50 steps after a reversal |", "|---|---|---|---|"]
    for algo, algo_means in ((algo, np.array(values)) for algo, values in means.items()):
        if importlib.util.find_spec("rliable") is not None and algo != "random" and len(algo_means) > 1:
            cells = [f"{m:.2f} [{lo:.2f}, {hi:.2f}]" for m, lo, hi in zip(*iqm_with_interval(algo_means))]
        else:  # the random policy: mean ± std over episodes
            cells = [f"{m:.2f} ± {sd:.2f}" for m, sd in zip(np.nanmean(algo_means, axis=0), np.nanstd(algo_means, axis=0))]
        lines.append(f"| {algo} | {len(algo_means) if algo != 'random' else '–'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", rows


def aggregate(runs: dict[tuple[str, str, int], Path], results: Path, sample_counts: Sequence[int] | None) -> str:
    """
    Write the CSVs, PNGs and markdown table of finished runs.

    :param runs: (env, algo, seed) -> run folder
    :param results: output folder
    :param sample_counts: table columns (default: every evaluation step common to all runs)
    :return: the markdown tables
    """
    results.mkdir(parents=True, exist_ok=True)
    unfinished = [folder for folder in runs.values() if (read_status(folder) or {}).get("status") != "finished"]
    if unfinished:
        print(f"aggregating {len(runs) - len(unfinished)} finished runs of {len(runs)}; not finished: " + ", ".join(map(str, unfinished)))
    runs = {key: folder for key, folder in runs.items() if folder not in unfinished}
    write_long_csv(results / "returns.csv", runs, "eval.csv")
    diagnosed = {key: folder for key, folder in runs.items() if (folder / "diagnostics.csv").is_file()}  # trained with --diagnostics
    if diagnosed:
        write_long_csv(results / "diagnostics.csv", diagnosed, "diagnostics.csv")
    tables: list[str] = []
    iqm_rows: list[tuple] = []
    direction_rows: list[dict] = []
    for env in dict.fromkeys(env for env, _, _ in runs):
        by_algo: dict[str, list[Path]] = {}
        for (run_env, algo, _), folder in runs.items():
            if run_env == env:
                by_algo.setdefault(algo, []).append(folder)
        evals = {algo: [folder / "eval.csv" for folder in folders] for algo, folders in by_algo.items()}
        floor = random_policy_return([folder for folders in by_algo.values() for folder in folders])
        plot_seed_curves(evals, results / f"{env}_returns.png", title=f"{env}: evaluation return", random_return=floor)
        if sample_counts is None:
            common = set.intersection(*(set(read_csv_columns(path)["timesteps"]) for paths in evals.values() for path in paths))
            sample_counts = [int(t) for t in sorted(common)]
        tables.append(markdown_table(env, evals, sample_counts))
        if importlib.util.find_spec("rliable") is not None:
            curves = iqm_curves(evals)
            iqm_rows.extend((env, algo, *row, len(evals[algo])) for algo, curve in curves.items() for row in zip(*curve))
            plot_interval_curves(curves, results / f"{env}_iqm.png", title=f"{env}: IQM over seeds, 95 % interval", random_return=floor)
            tables.append(iqm_table(env, curves, {algo: len(paths) for algo, paths in evals.items()}, sample_counts))
        diagnostics = {algo: [folder / "diagnostics.csv" for folder in folders if folder in diagnosed.values()] for algo, folders in by_algo.items()}
        if all(diagnostics.values()):
            plot_seed_curves(diagnostics, results / f"{env}_diagnostics.png", columns=DIAGNOSTICS, title=f"{env}: diagnostics")
            tables.append(diagnostics_table(env, diagnostics))
        directions = {(algo, seed): folder for (run_env, algo, seed), folder in runs.items() if run_env == env and direction_csv(folder)}
        if directions:
            table, rows = direction_table(env, directions)
            tables.append(table)
            direction_rows += rows
    if direction_rows:
        with open(results / "direction.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, list(direction_rows[0]))
            writer.writeheader()
            writer.writerows(direction_rows)
    if iqm_rows:
        with open(results / "iqm.csv", "w", newline="") as file:
            csv.writer(file).writerows([("env", "algo", "timesteps", "iqm", "ci_low", "ci_high", "n_seeds"), *iqm_rows])
    (results / "table.md").write_text("\n".join(tables))
    return "\n".join(tables)


def build_parser() -> argparse.ArgumentParser:
    """:return: the command line parser of ``python benchmarks/compare.py``"""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--envs", nargs="+", default=["HalfCheetahFwdBwd-v0", "HalfCheetahPier-v0"])
    parser.add_argument("--algos", nargs="+", default=["m3po", "m2po", "sac"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=3000, help="env steps per run")
    parser.add_argument("--runs", default="benchmarks/runs", help="folder of the runs (models, per-run CSVs)")
    parser.add_argument("--results", default="benchmarks/results", help="folder of the aggregated outputs")
    parser.add_argument("--sample-counts", nargs="+", type=int, default=None, help="table columns (default: every evaluation)")
    parser.add_argument("--backend", choices=BACKENDS, default="process")
    parser.add_argument("--workers", type=int, default=None, help="local processes (default: the CPU count)")
    parser.add_argument("--aggregate-only", action="store_true", help="do not train, aggregate the runs found")
    parser.add_argument("--algo-args", nargs="+", default=[], metavar="ALGO=ARGS", help='arguments of one algorithm\'s runs, e.g. "rl2=--timesteps 100000"')
    parser.add_argument("--no-diagnostics", dest="diagnostics", action="store_false", help="runs without --diagnostics")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="after --: arguments of every run")
    return parser


def main(argv: Sequence[str] | None = None) -> str:
    """
    :param argv: command line arguments (default: ``sys.argv[1:]``)
    :return: the markdown tables
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    train_args = [*(train_args or DEFAULT_TRAIN_ARGS), "--timesteps", str(args.timesteps)]
    algo_args = {algo: ["--diagnostics"] if args.diagnostics and algo not in WITHOUT_DIAGNOSTICS else [] for algo in args.algos}
    for item in args.algo_args:
        algo, sep, text = item.partition("=")
        if not sep or algo not in algo_args:
            parser.error(f"--algo-args takes ALGO=ARGS with ALGO one of --algos ({', '.join(args.algos)}), got {item!r}")
        algo_args[algo] += text.split()
    if not args.aggregate_only:
        run_sweep(grid(args.algos, args.envs, args.seeds, args.runs, train_args, algo_args), args.backend, args.workers)
    runs = {(env, algo, seed): run_dir(args.runs, env, algo, seed) for env in args.envs for algo in args.algos for seed in args.seeds}
    tables = aggregate(runs, Path(args.results), args.sample_counts)
    print(tables)
    return tables


if __name__ == "__main__":
    main()
