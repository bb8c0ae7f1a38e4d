"""Projected wall time of a full Table-2 run (N epochs of E env steps) from measured per-part costs.

    python benchmarks/bench_wall_time.py [--preset HalfCheetahFwdBwd-v0] [--threads 1] [--fit-sizes 1000 4000]

Parts, each timed on its own with the preset's networks (medians over ``--repeats``):

- env steps: one real step as ``learn`` makes it (policy action on the current history, env step, D_env
  insertion), from a ``learn`` without updates (G = 0, one step per call after the warm-up);
- rollouts: ``M3PO.rollout_dynamics(M)``, the M one-step branched rollouts of one env step;
- updates: ``M3PO.train(G, batch_size)``, the G SAC updates of one env step, on D_model;
- model fit: ``M3PO.train_dynamics()`` on D_env of each ``--fit-sizes`` random-action steps, each a refit
  from the previous fit's weights, as in a run. A fit costs (its epochs) × (rows per member per epoch) ×
  (seconds per row and epoch, measured); the rows per epoch follow ``ModelTrainer.fit`` (``fit_sizes``: the
  training split, capped at ``epoch_rows``) as D_env holds ``e · E`` rows at epoch ``e``, up to
  ``env_buffer_size``; the epochs of a refit are the last measured fit's, or ``--refit-epochs``. The same
  sum with ``epoch_rows=None`` (one pass of D_env per epoch, MBPO's and this package's fit before its epochs were capped)
  is printed for comparison.

Projected run = N · E · (env step + rollouts + updates) + Σ_e fit(e · E); printed with each part's share.
"""

import argparse
import inspect
import time
from collections.abc import Callable

import numpy as np
import torch as th

from m3po_sb3 import M3PO
from m3po_sb3.models.networks import DynamicsModel
from m3po_sb3.models.training import fit_sizes
from m3po_sb3.run.config import get_preset
from m3po_sb3.run.registry import make_agent, make_env


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return float(np.median(timings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="HalfCheetahFwdBwd-v0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fit-sizes", type=int, nargs="+", default=[1000, 4000], help="D_env rows of the timed model fits")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--refit-epochs", type=int, help="epochs per refit in the projection (default: the last measured fit's)")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    config = get_preset(args.preset, "m3po")
    n_epochs, epoch_length = config["n_epochs"], config["epoch_length"]
    gradient_steps, rollouts, batch_size = config["gradient_steps"], config["rollouts_per_step"], config["batch_size"]

    # One long epoch of random actions (learning_starts = E) grows D_env to each fit size in turn.
    warm_up = max(args.fit_sizes)
    agent = make_agent("m3po", make_env(args.preset, config["history_length"]), dict(config, epoch_length=warm_up, env_buffer_size=warm_up), seed=0, device="cpu")
    assert isinstance(agent, M3PO)
    fits = {}
    for rows in sorted(args.fit_sizes):
        agent.learn(rows - agent.num_timesteps, reset_num_timesteps=False)  # random actions only: no model side yet
        seconds = median_seconds(agent.train_dynamics, 1)  # from the previous fit's weights, as a refit in a run
        stats = agent.last_model_fit_stats
        fits[rows] = (seconds, stats["epochs"], stats["rows_per_epoch"])
        print(f"model fit on {rows} real transitions: {seconds:.1f} s ({stats['epochs']} epochs of {stats['rows_per_epoch']} rows per member)")
    agent.rollout_dynamics(rollouts * 5)  # D_model holds rows to sample
    rollout_s = median_seconds(lambda: agent.rollout_dynamics(rollouts), args.repeats)
    update_s = median_seconds(lambda: agent.train(gradient_steps, batch_size), args.repeats) / gradient_steps
    # Env steps as learn makes them once the policy acts (no updates, no model side): a history-SAC with G = 0.
    acting = make_agent("sac", make_env(args.preset, config["history_length"]), dict(config, gradient_steps=0, env_buffer_size=10_000), seed=0, device="cpu")
    acting.learning_starts = 0
    acting.learn(100)
    env_step_s = median_seconds(lambda: acting.learn(200, reset_num_timesteps=False), args.repeats) / 200

    per_row_epoch = float(np.median([seconds / (epochs * rows_per_epoch) for seconds, epochs, rows_per_epoch in fits.values()]))
    refit_epochs = args.refit_epochs or fits[max(fits)][1]  # early stopping makes a refit's epochs vary, not grow with D_env
    fit_kwargs = {name: p.default for name, p in inspect.signature(DynamicsModel.fit).parameters.items() if p.default is not p.empty}
    fit_kwargs.update(agent.model_fit_kwargs)
    split = {key: fit_kwargs[key] for key in ("holdout_ratio", "max_holdout", "min_epoch_rows", "epoch_rows")}
    data = np.minimum(np.arange(1, n_epochs + 1) * epoch_length, config["env_buffer_size"])

    def run_fit_seconds(**change: object) -> float:
        return sum(refit_epochs * fit_sizes(int(rows), **(split | change))[1] * per_row_epoch for rows in data)

    total_steps = n_epochs * epoch_length
    parts = {
        "env steps (act, step, store)": total_steps * env_step_s,
        f"model fit ({n_epochs} refits, epochs of <= {split['epoch_rows']} rows)": run_fit_seconds(),
        f"rollouts (M = {rollouts} per step)": total_steps * rollout_s,
        f"SAC updates (G = {gradient_steps} per step)": total_steps * gradient_steps * update_s,
    }
    total = sum(parts.values())
    print(f"preset {args.preset}: {n_epochs} epochs x {epoch_length} steps, torch threads {th.get_num_threads()}")
    print(f"per env step: env {env_step_s * 1e3:.2f} ms, rollouts {rollout_s * 1e3:.1f} ms, one update {update_s * 1e3:.1f} ms")
    largest = fit_sizes(int(data[-1]), **split)[1]
    print(
        f"model fit: {per_row_epoch * 1e6:.1f} s per epoch and 10^6 rows, {refit_epochs} epochs per refit: "
        f"{per_row_epoch * refit_epochs * largest:.0f} s at {data[-1]} rows ({largest} rows per epoch)"
    )
    print("| part | projected hours | share |")
    print("|---|---|---|")
    for name, seconds in parts.items():
        print(f"| {name} | {seconds / 3600:.1f} | {seconds / total:.1%} |")
    print(f"| total | {total / 3600:.1f} ({total / 86400:.1f} days) | 100% |")
    print(f"for comparison, a fit passing over all of D_env each epoch (epoch_rows=None): fit {run_fit_seconds(epoch_rows=None) / 3600:.1f} h")


if __name__ == "__main__":
    main()
