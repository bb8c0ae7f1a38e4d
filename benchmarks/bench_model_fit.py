"""Cost of a model fit as ``D_env`` grows (issue 8): the fit at 200 000 real transitions against the fit at
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

``--normalisers`` also measures what the target statistics do at a refit (issue 9): a model fit on the small
set is refit on the large one with the targets' statistics kept (the default) or recomputed; printed: the
previous weights' test NLL right after the statistics change, and the refit's.
"""

import argparse
import time

import numpy as np
import torch as th
from model_data import collect_transitions

from m3po_sb3.dynamics import DynamicsModel
from m3po_sb3.history import HistoryLayout


def timed_fit(model: DynamicsModel, data: tuple[np.ndarray, ...], seed: int, **fit_kwargs: object) -> tuple[float, int]:
    """:return: seconds and epochs of ``model.fit``"""
    start = time.perf_counter()
    info = model.fit(*data, rng=np.random.default_rng(seed), **fit_kwargs)
    return time.perf_counter() - start, info["epochs"]


def new_model(layout: HistoryLayout, seed: int, hidden: int) -> DynamicsModel:
    th.manual_seed(seed)
    return DynamicsModel(layout, hidden_units=hidden, device="cpu")


def refit_normalisers(layout: HistoryLayout, data: tuple[np.ndarray, ...], test: tuple[np.ndarray, ...], small: int, seed: int, hidden: int) -> None:
    """Refit a model fit on ``data[:small]`` on all of ``data``, keeping or recomputing the target statistics."""
    for recompute in (False, True):
        model = new_model(layout, seed, hidden)
        model.fit(*(x[:small] for x in data), rng=np.random.default_rng(seed))
        before = model.nll(*test)
        if recompute:
            model.targets_standardised.fill_(False)
        # The statistics the refit will use, applied to the previous weights.
        tensors = model._as_tensors(*data)
        model._fit_normalisers(*tensors)
        after = model.nll(*test)
        if recompute:
            model.targets_standardised.fill_(False)
        seconds, epochs = timed_fit(model, data, seed)
        label = "recomputed" if recompute else "kept      "
        print(
            f"  target statistics {label}: previous weights' test NLL {before:.3f} -> {after:.3f} after the statistics change; "
            f"refit: {model.nll(*test):.3f} ({epochs} epochs, {seconds:.0f} s)",
            flush=True,
        )


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
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    layout, test = collect_transitions(args.env, 5000, seed=1000)
    summaries: dict[str, list[float]] = {}
    for seed in args.seeds:
        _, data = collect_transitions(args.env, args.large, seed)
        results, refit_seconds = {}, {}
        for name in args.fits:
            rows, fit_kwargs = FITS[name](args)
            model = new_model(layout, seed, args.hidden)
            seconds, epochs = timed_fit(model, tuple(x[:rows] for x in data), seed, **fit_kwargs)
            results[name] = (seconds, model.nll(*test))
            print(f"seed {seed} {name:8s} {rows:7d} rows: {seconds:7.1f} s, {epochs:3d} epochs, test NLL {results[name][1]:.3f}", flush=True)
            for refit in range(args.warm_refits if name != "uncapped" else 0):  # as a run refits every epoch
                seconds, epochs = timed_fit(model, tuple(x[:rows] for x in data), 1000 * seed + refit + 1, **fit_kwargs)
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
