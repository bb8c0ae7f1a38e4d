"""Cost of a model fit as ``D_env`` grows: the fit at 200 000 real transitions against the fit at
20 000, with ``fit``'s default epochs of a fixed number of rows (``epoch_rows``) and with MBPO's one pass per epoch.

    python benchmarks/bench_model_fit.py [--env HalfCheetahFwdBwd-v0] [--small 20000] [--large 200000] [--seeds 0 1] [--hidden 400]

Per seed: random-action transitions of the env; a fresh model (the same initial weights for every fit of a
seed) is fit on the first ``--small`` of them, on all ``--large`` with the default ``epoch_rows``, and on all ``--large``
without it; each is scored on 5 000 transitions of another seed's episodes. Printed: seconds, epochs, test
NLL per fit, and per seed the ratio large-capped / small (target <= 2) and the NLL of capped minus uncapped
(target: within seed noise). Medians over seeds close the output. ``--warm-refits N`` refits the small and the
large capped model N more times from their own weights on the same data with a new split each time, as a run's
epochs do; printed: each refit, the ratio of the refits' median seconds, and the NLL gap after the last refit.
``--fits`` runs a subset of the three fits (the uncapped one takes ~16 min at 64 hidden units).

``--run-schedule`` measures the fits as a run makes them instead (the per-epoch fit of a run, which
starts from the previous epoch's weights): a fresh fit on the first 5 000 transitions (MBPO's first),
then warm refits on a growing prefix: every ``--step`` rows (1 000: a run's ``E``), and ten refits 1 000 rows
apart ending at ``--small`` and at ``--large``, timed. After ``--small`` the schedule runs twice from the same
model, with the default ``epoch_rows`` ("capped") and without it ("uncapped"; below 25 000 rows the two fits are
the same); ``--fits`` picks one. Printed per seed: the mean and the median seconds, and row updates (epochs x
rows per epoch, immune to the machine's drifting speed), of the refits timed at ``--large`` over those at
``--small`` (target <= 2), and each sequence's last test NLL (target: capped within seed noise of uncapped),
also as the median over test transitions (robust to the few test rows that dominate some seeds' mean).

``--starting-weights-compete`` makes every fit of ``--run-schedule`` use the rule ``fit`` had until 2026-12-04
(``first_epoch_counts=False``: a warm refit whose epochs do not beat the weights it started from returns them)
instead of MBPO's (the first epoch counts as progress).

``--normalisers`` also measures what the target statistics do at a refit: a model fit on the small
set is refit on the large one with the targets' statistics kept (the default) or recomputed; printed: the
previous weights' test NLL right after the statistics change, and the refit's.
"""

import argparse
import copy
import time

import numpy as np
import torch as th
from model_data import collect_transitions

from m3po_sb3.models.networks import DynamicsModel
from m3po_sb3.history import HistoryLayout
from m3po_sb3.models.training import ModelTrainer


def timed_fit(model: DynamicsModel, data: tuple[np.ndarray, ...], seed: int, **fit_kwargs: object) -> tuple[float, int, int]:
    """:return: seconds, epochs and rows per member per epoch of ``model.fit``"""
    start = time.perf_counter()
    info = ModelTrainer(model).fit(*data, rng=np.random.default_rng(seed), **fit_kwargs)
    return time.perf_counter() - start, info["epochs"], info["rows_per_epoch"]


def median_row_nll(model: DynamicsModel, test: tuple[np.ndarray, ...]) -> float:
    """
    The median over test transitions of ``model.nll`` (one call per transition): on seeds 2 and 3 the mean is
    dominated by ~3 % of the test rows (benchmarks/README.md), the median is not.
    """
    return float(np.median([model.nll(*(x[i : i + 1] for x in test)) for i in range(len(test[0]))]))


def new_model(layout: HistoryLayout, seed: int, hidden: int) -> DynamicsModel:
    th.manual_seed(seed)
    return DynamicsModel(layout, hidden_units=hidden, device="cpu")


def refit_normalisers(layout: HistoryLayout, data: tuple[np.ndarray, ...], test: tuple[np.ndarray, ...], small: int, seed: int, hidden: int) -> None:
    """Refit a model fit on ``data[:small]`` on all of ``data``, keeping or recomputing the target statistics."""
    for recompute in (False, True):
        model = new_model(layout, seed, hidden)
        ModelTrainer(model).fit(*(x[:small] for x in data), rng=np.random.default_rng(seed))
        before = model.nll(*test)
        if recompute:
            model.targets_standardised.fill_(False)
        # The statistics the refit will use, applied to the previous weights.
        tensors = model.as_tensors(*data)
        ModelTrainer(model).fit_normalisers(*tensors)
        after = model.nll(*test)
        if recompute:
            model.targets_standardised.fill_(False)
        seconds, epochs, _ = timed_fit(model, data, seed)
        label = "recomputed" if recompute else "kept      "
        print(
            f"  target statistics {label}: previous weights' test NLL {before:.3f} -> {after:.3f} after the statistics change; "
            f"refit: {model.nll(*test):.3f} ({epochs} epochs, {seconds:.0f} s)",
            flush=True,
        )


FINE_STEP = 1_000  # rows between the timed refits: a run refits every E = 1 000 real steps (Table 2)
TIMED_REFITS = 10  # per end of the schedule: a refit's epochs vary several-fold (heavy-tailed at small D_env)


def run_schedule(small: int, large: int, step: int) -> tuple[list[int], list[int], set[int]]:
    """
    :return: the prefix sizes shared by both sequences (fresh fit first), those of the capped and the uncapped
        sequence after them, and the sizes whose refits are timed
    """
    first = TIMED_REFITS * FINE_STEP  # the first timed refit adds FINE_STEP rows to an untimed one
    timed_small, timed_large = ([end - i * FINE_STEP for i in reversed(range(TIMED_REFITS))] for end in (small, large))
    shared = [5_000, *range(5_000 + step, small - first, step), small - first, *timed_small]
    after = [*range(small + step, large - first, step), large - first, *timed_large]
    return shared, after, {*timed_small, *timed_large}


def warm_refits(model: DynamicsModel, data: tuple[np.ndarray, ...], test: tuple[np.ndarray, ...], sizes: list[int], timed: set[int], seed: int, label: str, **fit_kwargs: object) -> dict[int, tuple[float, int]]:
    """
    Refit ``model`` on each prefix of ``data`` in turn.

    :return: seconds and row updates (epochs x rows per member per epoch; unlike seconds, immune to the machine's
        drifting speed) of the refits whose size is in ``timed``
    """
    cost_at = {}
    for rows in sizes:
        seconds, epochs, rows_per_epoch = timed_fit(model, tuple(x[:rows] for x in data), 1000 * seed + rows // FINE_STEP, **fit_kwargs)
        if rows in timed:
            cost_at[rows] = (seconds, epochs * rows_per_epoch)
        print(f"  {label} {rows:7d} rows: {seconds:6.1f} s, {epochs:3d} epochs of {rows_per_epoch} rows, test NLL {model.nll(*test):.3f}", flush=True)
    return cost_at


def main_run_schedule(args: argparse.Namespace, layout: HistoryLayout, test: tuple[np.ndarray, ...]) -> None:
    """``--run-schedule`` (module docstring)."""
    shared, after, timed = run_schedule(args.small, args.large, args.step)
    rule = dict(first_epoch_counts=False) if args.starting_weights_compete else {}
    summaries: dict[str, list[float]] = {}
    pooled: dict[str, list[tuple[float, int]]] = {"small": [], "large": []}  # timed refits of all seeds
    for seed in args.seeds:
        _, data = collect_transitions(args.env, args.large, seed)
        model = new_model(layout, seed, args.hidden)
        cost = warm_refits(model, data, test, shared, timed, seed, "shared  ", **rule)
        uncapped = copy.deepcopy(model)
        line = []
        if "capped" in args.fits:
            cost |= warm_refits(model, data, test, after, timed, seed, "capped  ", **rule)
            at = {end: [cost[rows] for rows in sizes if rows in timed] for end, sizes in (("small", shared), ("large", after))}
            for end in at:
                pooled[end] += at[end]
            line += cost_ratios(summaries, np.array(at["large"]), np.array(at["small"]), args)
            nll_capped = model.nll(*test)
            line.append(summary(summaries, "NLL capped", nll_capped))
            line.append(summary(summaries, "median row NLL capped", median_row_nll(model, test)))
        if "uncapped" in args.fits:
            warm_refits(uncapped, data, test, after, timed, seed, "uncapped", epoch_rows=None, **rule)
            nll_uncapped = uncapped.nll(*test)
            line.append(summary(summaries, "NLL uncapped", nll_uncapped))
            line.append(summary(summaries, "median row NLL uncapped", median_row_nll(uncapped, test)))
        if {"capped", "uncapped"} <= set(args.fits):
            line.append(summary(summaries, "NLL capped - uncapped", nll_capped - nll_uncapped))
        print(f"seed {seed}: " + "; ".join(line), flush=True)
    print(f"median over {len(args.seeds)} seeds: " + "; ".join(f"{name} {np.median(values):+.3f}" for name, values in summaries.items()))
    if pooled["large"] and len(args.seeds) > 1:
        print("timed refits of all seeds pooled: " + "; ".join(cost_ratios({}, np.array(pooled["large"]), np.array(pooled["small"]), args)))
    for name in ("NLL capped", "NLL uncapped"):
        if len(summaries.get(name, [])) > 1:
            print(f"seed noise: standard deviation of the {name} over seeds {np.std(summaries[name], ddof=1):.3f}")


def cost_ratios(summaries: dict[str, list[float]], at_large: np.ndarray, at_small: np.ndarray, args: argparse.Namespace) -> list[str]:
    """Ratios of the mean and of the median refit cost (columns: seconds, row updates) at ``--large`` over ``--small``."""
    line = []
    for unit, name in enumerate(("seconds", "row updates")):
        for statistic in (np.mean, np.median):
            ratio = statistic(at_large[:, unit]) / statistic(at_small[:, unit])
            line.append(summary(summaries, f"{statistic.__name__} refit {name} at {args.large} / at {args.small} (target <= 2)", ratio))
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="HalfCheetahFwdBwd-v0")
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--hidden", type=int, default=400, help="hidden units of the model's two layers (Table 2: 400)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--normalisers", action="store_true", help="also measure keeping vs recomputing the target statistics")
    parser.add_argument("--warm-refits", type=int, default=0, help="refit the small and large capped models this many times from their weights")
    parser.add_argument("--fits", nargs="+", choices=FITS, default=list(FITS), help="which fits to run")
    parser.add_argument("--run-schedule", action="store_true", help="warm refits on a growing D_env, as a run makes them")
    parser.add_argument("--step", type=int, default=10_000, help="rows between the untimed refits of --run-schedule")
    parser.add_argument(
        "--starting-weights-compete", action="store_true", help="--run-schedule: fit(first_epoch_counts=False), the rule before 2026-12-04"
    )
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    layout, test = collect_transitions(args.env, 5000, seed=1000)
    if args.run_schedule:
        main_run_schedule(args, layout, test)
        return
    summaries: dict[str, list[float]] = {}
    for seed in args.seeds:
        _, data = collect_transitions(args.env, args.large, seed)
        results, refit_seconds = {}, {}
        for name in args.fits:
            rows, fit_kwargs = FITS[name](args)
            model = new_model(layout, seed, args.hidden)
            seconds, epochs, _ = timed_fit(model, tuple(x[:rows] for x in data), seed, **fit_kwargs)
            results[name] = (seconds, model.nll(*test))
            print(f"seed {seed} {name:8s} {rows:7d} rows: {seconds:7.1f} s, {epochs:3d} epochs, test NLL {results[name][1]:.3f}", flush=True)
            for refit in range(args.warm_refits if name != "uncapped" else 0):  # as a run refits every epoch
                seconds, epochs, _ = timed_fit(model, tuple(x[:rows] for x in data), 1000 * seed + refit + 1, **fit_kwargs)
                refit_seconds.setdefault(name, []).append(seconds)
                results[name] = (results[name][0], model.nll(*test))
                print(f"  warm-started refit {refit + 1}: {seconds:7.1f} s, {epochs:3d} epochs, test NLL {results[name][1]:.3f}", flush=True)
        line = []
        if {"small", "capped"} <= results.keys():
            line.append(summary(summaries, "time capped / small (target <= 2)", results["capped"][0] / results["small"][0]))
            if args.warm_refits:
                ratio = np.median(refit_seconds["capped"]) / np.median(refit_seconds["small"])
                line.append(summary(summaries, "median warm refit capped / small", ratio))
        if {"capped", "uncapped"} <= results.keys():
            line.append(summary(summaries, "NLL capped - uncapped", results["capped"][1] - results["uncapped"][1]))
        print(f"seed {seed}: " + "; ".join(line), flush=True)
        if args.normalisers:
            refit_normalisers(layout, data, test, args.small, seed, args.hidden)
    print(f"median over {len(args.seeds)} seeds: " + "; ".join(f"{name} {np.median(values):+.3f}" for name, values in summaries.items()))


FITS = {
    "small": lambda args: (args.small, {}),
    "capped": lambda args: (args.large, {}),
    "uncapped": lambda args: (args.large, dict(epoch_rows=None)),
}


def summary(summaries: dict[str, list[float]], name: str, value: float) -> str:
    """Record a per-seed figure for the medians and format it."""
    summaries.setdefault(name, []).append(value)
    return f"{name} = {value:+.3f}"


if __name__ == "__main__":
    main()
