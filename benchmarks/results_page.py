"""The result tables and figures of ``benchmarks/README.md`` and ``README.md``, generated from the committed runs.

    python benchmarks/results_page.py            # rewrite the generated parts of both pages in place
    python benchmarks/results_page.py --check    # exit 1, naming each part that differs, if a page is stale

The single source is the run folders under ``benchmarks/comparison/``:
``[FOLDER/]ENV/ALGO/seed_N/eval.csv`` (one row per evaluation) and ``random_policy.csv``; only finished runs
(``status.json``) count, and a folder that is a link to another (a study reusing the main comparison's
baselines) is read once, where it lives. The pages say what they want; this script only computes it:

- a block ``<!-- results:KIND ARGS begin -->`` ... ``<!-- results:KIND ARGS end -->`` holds a generated table:
  ``comparison ENV`` (every agent of the main comparison on ENV, IQM at fixed steps),
  ``table STEP GROUP ...`` (one row per group of runs at STEP), ``diagnostics STEP GROUP ...`` (the
  diagnostics ε_m, ε_π and TD error at the first epoch and at STEP) and ``orders STEP PAIR ...`` (PAIR is
  ``GROUP>GROUP``: the probability that the first improves on the second, and a rank test);
- an inline figure ``<!-- r:KIND ARGS -->`` ... ``<!-- /r -->`` holds one number: ``iqm GROUP STEP``,
  ``iqm5 GROUP STEP``, ``random GROUP`` (the random policy on the group's evaluation episodes),
  ``poi GROUP GROUP STEP``, ``mwp GROUP GROUP STEP``, ``seeds GROUP``.

A GROUP is ``FOLDERS:ENV:ALGO``, FOLDERS being ``main`` (the top-level ENV folders) or folder names joined by
``+`` (their seeds pooled). Every IQM is over seeds with a 95 % stratified-bootstrap interval (``rliable``, a fixed
bootstrap seed, so the output is deterministic); "last 5" is each seed's mean over its last five evaluations up
to STEP (fewer where a table's runs have fewer; its header says how many), beside the single evaluation at STEP,
because one evaluation of 5 episodes swings a lot between steps.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script from anywhere: compare.py is a sibling
from compare import DIAGNOSTICS, iqm_with_interval, read_csv_columns, seeded_interval_estimates  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "comparison"
PAGES = (ROOT / "benchmarks" / "README.md", ROOT / "README.md")
MAIN = "main"
REPS = 1000  # bootstrap replications: enough for intervals to the page's precision, and --check runs in seconds
BOOTSTRAP_SEED = 0
LAST = 5  # evaluations averaged in the "last 5" columns
COMPARISON_STEPS = (5_000, 10_000, 15_000, 20_000)
ALGO_NAMES = {"m3po": "M3PO", "m2po": "M2PO", "m3po-h": "M3PO-h", "sac": "history-SAC", "oracle": "oracle", "rl2": "RL²", "pearl": "PEARL", "grbal": "GrBAL", "rebal": "ReBAL", "ghp-mdp": "GHP-MDP", "sb3-sac": "SAC (SB3)"}
DIAGNOSTIC_NAMES = {"eps_m": "ε_m", "eps_pi": "ε_π", "td_error": "TD error"}
MODEL_BASED = ("m3po", "m2po", "m3po-h")  # fit a model: marked on the pages where their runs predate a change of the fit
# The folders whose model-based runs were made before the model fit's first-epoch rule became the default (†).
BEFORE_FIRST_EPOCH_RULE = (
    MAIN, "ablation_learned_reward", "ablation_model_data_only", "calibrated_model", "known_action_reward",
    "model_patience_20", "real_ratio", "rollout_length_5",
)  # fmt: skip
# Arguments of config.json that describe the budget, logging or machine, not the agent's setting.
NOT_A_SETTING = {
    "env", "algo", "timesteps", "seed", "log_folder", "out", "resume", "trained_agent", "env_kwargs", "preset", "eval_freq",
    "eval_episodes", "save_freq", "tensorboard_log", "diagnostics", "device", "torch_threads", "verbose", "progress_bar",
}  # fmt: skip
BLOCK = re.compile(r"(<!-- results:(?P<spec>[^\n]*?) begin -->\n)(?P<body>.*?)(<!-- results:(?P=spec) end -->)", re.DOTALL)
INLINE = re.compile(r"(<!-- r:(?P<spec>[^\n]*?) -->)(?P<body>[^<\n]*)(<!-- /r -->)")


@dataclass(frozen=True)
class Run:
    seed: int
    steps: np.ndarray
    returns: np.ndarray
    random_return: float
    options: str  # the run's non-default agent options, as command-line flags
    diagnostics: dict[str, np.ndarray]  # ``timesteps`` and the diagnostics per epoch; empty for a run without them


def number(value: float, digits: int = 0) -> str:
    """:return: ``value`` as the pages write numbers: a space between thousands, a true minus sign"""
    return f"{value:,.{digits}f}".replace(",", " ").replace("-", "−")


def interval(estimate: float, low: float, high: float, digits: int = 0) -> str:
    return f"{number(estimate, digits)} [{number(low, digits)}, {number(high, digits)}]"


def read_run(folder: Path) -> Run | None:
    """:return: a finished run's evaluations and setting, ``None`` for an unfinished one"""
    if json.loads((folder / "status.json").read_text())["status"] != "finished":
        return None
    args = json.loads((folder / "config.json").read_text())["args"]
    flags = [f"--{key.replace('_', '-')}" + ("" if value is True else f" {value}") for key, value in sorted(args.items()) if key not in NOT_A_SETTING and value not in (None, False)]
    evals = read_csv_columns(folder / "eval.csv")
    random_policy = read_csv_columns(folder / "random_policy.csv")["mean_return"]
    diagnostics = read_csv_columns(folder / "diagnostics.csv") if (folder / "diagnostics.csv").is_file() else {}
    return Run(int(args["seed"]), evals["timesteps"].astype(int), evals["mean_return"], float(random_policy[0]), " ".join(flags), diagnostics)


@functools.cache
def load_group(group: str, runs_root: Path = RUNS) -> list[Run]:
    """:return: the finished runs of ``FOLDERS:ENV:ALGO``, by seed; a seed found twice is an error"""
    try:
        folders, env, algo = group.split(":")
    except ValueError:
        raise ValueError(f"a group is FOLDERS:ENV:ALGO, got {group!r}") from None
    runs: dict[int, Run] = {}
    for folder in folders.split("+"):
        algo_folder = runs_root / ("" if folder == MAIN else folder) / env / algo
        if not algo_folder.is_dir() or algo_folder.is_symlink():
            raise ValueError(f"{group!r}: no run folder {algo_folder.relative_to(runs_root)}")
        for seed_folder in sorted(algo_folder.glob("seed_*")):
            run = read_run(seed_folder)
            if run is None:
                continue
            if run.seed in runs:
                raise ValueError(f"{group!r}: seed {run.seed} twice")
            runs[run.seed] = run
    if not runs:
        raise ValueError(f"{group!r}: no finished run")
    return [runs[seed] for seed in sorted(runs)]


def scores_at(runs: list[Run], step: int, last: int = 1) -> np.ndarray:
    """:return: per seed, the mean of the ``last`` evaluations up to ``step`` (every seed must have reached it)"""
    scores = []
    for run in runs:
        position = np.flatnonzero(run.steps == step)
        if position.size == 0 or position[0] + 1 < last:
            raise ValueError(f"seed {run.seed} has no {last} evaluation(s) up to step {step}")
        scores.append(run.returns[position[0] + 1 - last : position[0] + 1].mean())
    return np.array(scores)


def evaluations_up_to(runs: list[Run], step: int) -> int:
    """:return: how many of the last evaluations up to ``step`` every seed has, at most :data:`LAST` (runs that
    evaluate less often than the main comparison have fewer)"""
    return min(LAST, *(int(np.count_nonzero(run.steps <= step)) for run in runs))


def iqm(runs: list[Run], points: list[tuple[int, int]]) -> list[str]:
    """
    :param points: ``(step, last)`` pairs: each seed's mean of its ``last`` evaluations up to ``step``
    :return: per point, ``IQM [95 % interval]`` over the seeds, each point bootstrapped on its own so that a
        figure is the same in every table that shows it
    """
    return [iqm_cell(tuple(scores_at(runs, step, last))) for step, last in points]


@functools.cache
def iqm_cell(scores: tuple[float, ...]) -> str:
    """:return: ``IQM [95 % interval]`` of the seeds' ``scores`` (cached: the pages show many figures twice)"""
    estimate, low, high = iqm_with_interval(np.array(scores)[:, None], REPS, BOOTSTRAP_SEED)
    return interval(estimate[0], low[0], high[0])


def improvement_probability(x: np.ndarray, y: np.ndarray) -> float:
    """
    :param x: shape ``(runs, 1)``, as ``y``
    :return: the share of (x run, y run) pairs in which x scores higher, ties counted half: ``rliable``'s
        ``probability_of_improvement`` on one task, without the rank test it runs per call (milliseconds, thousands of times)
    """
    difference = x[:, None, 0] - y[None, :, 0]
    return float(np.mean((difference > 0) + 0.5 * (difference == 0)))


def random_policy(runs: list[Run]) -> str:
    """:return: ``IQM [95 % interval]`` over the seeds of the random policy's return on each run's evaluation episodes"""
    return iqm_cell(tuple(run.random_return for run in runs))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """:return: P(a run of ``x`` scores above a run of ``y``), and its 95 % stratified-bootstrap interval (``rliable``)"""
    return improvement_cell(tuple(x), tuple(y))


@functools.cache
def improvement_cell(x_scores: tuple[float, ...], y_scores: tuple[float, ...]) -> tuple[float, float, float]:
    x, y = np.array(x_scores), np.array(y_scores)
    pair = {"x>y": [x[:, None], y[:, None]]}  # (runs, 1 task)
    estimates, intervals = seeded_interval_estimates(pair, improvement_probability, REPS, BOOTSTRAP_SEED)
    low, high = np.ravel(intervals["x>y"])
    return float(estimates["x>y"]), float(low), float(high)


def mann_whitney_p(x: np.ndarray, y: np.ndarray) -> float:
    """:return: the one-sided p-value of the Mann-Whitney U test that ``x`` tends to score above ``y`` (exact for small samples)"""
    from scipy.stats import mannwhitneyu  # a dependency of rliable's

    return float(mannwhitneyu(x, y, alternative="greater").pvalue)


def group_name(group: str) -> str:
    folders, _, algo = group.split(":")
    mark = " †" if algo in MODEL_BASED and any(folder in BEFORE_FIRST_EPOCH_RULE for folder in folders.split("+")) else ""
    return f"{ALGO_NAMES.get(algo, algo)}{mark}" + ("" if folders == MAIN else f" (`{folders}`)")


def settings(runs: list[Run]) -> str:
    return " ".join(f"`{options}`" for options in sorted({run.options for run in runs} - {""})) or "–"


def comparison_table(env: str, runs_root: Path = RUNS) -> str:
    """:return: every agent of the main comparison on ``env``: IQM at fixed steps and at the end of its budget"""
    order = list(ALGO_NAMES)
    algo_folders = sorted((path for path in (runs_root / env).iterdir() if path.is_dir()), key=lambda path: (order.index(path.name) if path.name in order else len(order), path.name))
    header = " | ".join(number(step) for step in COMPARISON_STEPS)
    lines = [
        f"| agent | seeds | {header} | end of budget | at the end, IQM [95 % CI] | mean of its last {LAST} evaluations |",
        "|---|---|" + "---|" * len(COMPARISON_STEPS) + "---|---|---|",
    ]
    random_runs: dict[int, Run] = {}  # one per seed: every agent of a seed is evaluated on the same episodes
    for algo_folder in algo_folders:
        group = f"{MAIN}:{env}:{algo_folder.name}"
        runs = load_group(group, runs_root)
        random_runs.update({run.seed: run for run in runs})
        end = int(min(run.steps.max() for run in runs))
        steps = [step for step in COMPARISON_STEPS if all(step in run.steps for run in runs)]
        *at_steps, at_end, at_end_last = iqm(runs, [(step, 1) for step in steps] + [(end, 1), (end, LAST)])
        cells = [at_steps.pop(0).split(" [")[0] if step in steps else "–" for step in COMPARISON_STEPS]
        lines.append(f"| {group_name(group)} | {len(runs)} | {' | '.join(cells)} | {number(end)} | {at_end} | {at_end_last} |")
    lines.append(f"| random policy | {len(random_runs)} | " + " | ".join("" for _ in COMPARISON_STEPS) + f" | | {random_policy(list(random_runs.values()))} | |")
    return "\n".join(lines) + "\n"


def groups_table(step: int, groups: list[str], runs_root: Path = RUNS) -> str:
    """:return: one row per group: its setting, seeds, IQM at ``step`` and of the last evaluations"""
    loaded = [load_group(group, runs_root) for group in groups]
    n_last = min(evaluations_up_to(runs, step) for runs in loaded)
    lines = [
        f"| agent (folder) | options beyond the folder's preset | seeds | IQM at {number(step)} [95 % CI] | mean of the last {n_last} evaluations |",
        "|---|---|---|---|---|",
    ]
    for group, runs in zip(groups, loaded):
        at_step, last = iqm(runs, [(step, 1), (step, n_last)])
        lines.append(f"| {group_name(group)} | {settings(runs)} | {len(runs)} | {at_step} | {last} |")
    return "\n".join(lines) + "\n"


def diagnostics_table(step: int, groups: list[str], runs_root: Path = RUNS) -> str:
    """:return: per group, the IQM over seeds of each diagnostic at the first epoch that has it and at ``step`` [95 % CI]"""
    lines = [
        "| agent (folder) | seeds | " + " | ".join(f"{DIAGNOSTIC_NAMES[name]}: first epoch → {number(step)} [95 % CI]" for name in DIAGNOSTICS) + " |",
        "|---|---|" + "---|" * len(DIAGNOSTICS),
    ]
    for group in groups:
        runs = load_group(group, runs_root)
        cells = []
        for name in DIAGNOSTICS:
            if any(not run.diagnostics or np.isnan(run.diagnostics[name]).all() for run in runs):
                cells.append("–")
                continue
            first_step = int(max(run.diagnostics["timesteps"][np.isfinite(run.diagnostics[name])].min() for run in runs))
            first, last = (np.array([[run.diagnostics[name][run.diagnostics["timesteps"] == at][0]] for run in runs]) for at in (first_step, step))
            estimate, low, high = iqm_with_interval(last, REPS, BOOTSTRAP_SEED)
            cells.append(f"{number(iqm_with_interval(first, REPS, BOOTSTRAP_SEED)[0][0], 2)} → {interval(estimate[0], low[0], high[0], digits=2)}")
        lines.append(f"| {group_name(group)} | {len(runs)} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def verdict(x: np.ndarray, y: np.ndarray, x_last: np.ndarray, y_last: np.ndarray) -> tuple[str, tuple, tuple, float]:
    """
    An order is settled only where every test agrees: P(x > y)'s interval excludes 0.5 both at the last evaluation
    and over the last evaluations' means, and the one-sided rank test in that direction gives p < 0.05.

    :return: "A ahead", "B ahead" or "not settled", P(x > y) at the last evaluation and over the means (each with
        its interval), and the one-sided p-value that x scores above y
    """
    poi, poi_last = probability_of_improvement(x, y), probability_of_improvement(x_last, y_last)
    p_above, p_below = mann_whitney_p(x, y), mann_whitney_p(y, x)
    if poi[1] > 0.5 and poi_last[1] > 0.5 and p_above < 0.05:
        return "A ahead", poi, poi_last, p_above
    if poi[2] < 0.5 and poi_last[2] < 0.5 and p_below < 0.05:
        return "B ahead", poi, poi_last, p_above
    return "not settled", poi, poi_last, p_above


def orders_table(step: int, pairs: list[str], runs_root: Path = RUNS) -> str:
    """:return: per ``A>B`` pair, P(A > B) at ``step`` and over the last evaluations, the rank test, and what they settle (:func:`verdict`)"""
    loaded = [tuple(load_group(group, runs_root) for group in pair.split(">")) for pair in pairs]
    n_last = min(evaluations_up_to(runs, step) for pair_runs in loaded for runs in pair_runs)
    lines = [
        f"| A > B at {number(step)} steps | seeds | P(A > B) [95 % CI] | Mann-Whitney p (one-sided) | P(A > B), mean of the last {n_last} evaluations | settled? |",
        "|---|---|---|---|---|---|",
    ]
    for pair, (x_runs, y_runs) in zip(pairs, loaded):
        first, second = pair.split(">")
        x, y = scores_at(x_runs, step), scores_at(y_runs, step)
        settled, poi, poi_last, p_above = verdict(x, y, scores_at(x_runs, step, n_last), scores_at(y_runs, step, n_last))
        lines.append(
            f"| {group_name(first)} > {group_name(second)} | {len(x)} / {len(y)} | {interval(*poi, digits=2)} | {p_above:.2f} | {interval(*poi_last, digits=2)} | {settled} |"
        )
    return "\n".join(lines) + "\n"


def inline_figure(spec: str, runs_root: Path = RUNS) -> str:
    """:return: the one figure an inline marker asks for"""
    kind, *args = spec.split()
    if kind == "seeds" and len(args) == 1:
        return str(len(load_group(args[0], runs_root)))
    if kind in ("iqm", "iqm5") and len(args) == 2:
        return iqm(load_group(args[0], runs_root), [(int(args[1]), LAST if kind == "iqm5" else 1)])[0]
    if kind == "random" and len(args) == 1:
        return random_policy(load_group(args[0], runs_root))
    if kind in ("poi", "mwp") and len(args) == 3:
        x, y = (scores_at(load_group(group, runs_root), int(args[2])) for group in args[:2])
        return interval(*probability_of_improvement(x, y), digits=2) if kind == "poi" else f"{mann_whitney_p(x, y):.2f}"
    raise ValueError(f"unknown inline figure {spec!r}")


def block(spec: str, runs_root: Path = RUNS) -> str:
    """:return: the table a block marker asks for"""
    kind, *args = spec.split()
    if kind == "comparison" and len(args) == 1:
        return comparison_table(args[0], runs_root)
    if kind == "table" and len(args) >= 2:
        return groups_table(int(args[0]), args[1:], runs_root)
    if kind == "diagnostics" and len(args) >= 2:
        return diagnostics_table(int(args[0]), args[1:], runs_root)
    if kind == "orders" and len(args) >= 2:
        return orders_table(int(args[0]), args[1:], runs_root)
    raise ValueError(f"unknown block {spec!r}")


def render(text: str, runs_root: Path = RUNS) -> tuple[str, list[str]]:
    """:return: the page with every generated part recomputed, and the specs of the parts that changed"""
    changed = []

    def fill(match: re.Match, compute) -> str:  # noqa: ANN001
        body = compute(match["spec"], runs_root)
        if body != match["body"]:
            changed.append(match["spec"])
        return match.group(1) + body + match.group(4)

    text = BLOCK.sub(lambda match: fill(match, block), text)
    text = INLINE.sub(lambda match: fill(match, inline_figure), text)
    return text, changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 and name the parts that differ from the run data")
    parser.add_argument("pages", nargs="*", type=Path, default=list(PAGES), help="pages to fill (default: benchmarks/README.md, README.md)")
    args = parser.parse_args(argv)
    stale = 0
    for page in args.pages:
        text = page.read_text()
        new_text, changed = render(text)
        for spec in changed:
            print(f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page}: {'stale' if args.check else 'updated'}: {spec}")
        stale += len(changed)
        if changed and not args.check:
            page.write_text(new_text)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
